//! rustls over monoio sockets, for ringmux's client connections, its connections to
//! `https://` backends, and ringmux-load's connections. rustls does all of TLS; this crate
//! moves bytes between it and io_uring with owned buffers ([`TlsConn`]), and lets the HTTP
//! code treat plain and TLS sockets alike ([`Stream`]).

mod conn;
mod stream;

pub use conn::TlsConn;
pub use stream::{read_more, write_all, Stream};

/// Shrinks `buf` back to `keep` bytes of capacity once one large message grew it past 64 KiB.
fn trim(buf: &mut Vec<u8>, keep: usize) {
    if buf.capacity() > 64 << 10 {
        buf.shrink_to(keep.max(buf.len()));
    }
}

/// `f`, given up after `limit` (if any) with `TimedOut`: the peer took no byte in time.
async fn bounded<F: std::future::Future>(
    limit: Option<std::time::Duration>,
    f: F,
) -> std::io::Result<F::Output> {
    match limit {
        None => Ok(f.await),
        Some(t) => monoio::time::timeout(t, f).await.map_err(|_| timed_out()),
    }
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the peer read nothing within the write timeout",
    )
}
