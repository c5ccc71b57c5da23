//! rustls over monoio sockets, for ringmux's client connections, its connections to
//! `https://` backends, and ringmux-load's connections. rustls does all of TLS; this crate
//! moves bytes between it and io_uring with owned buffers ([`TlsConn`]), and lets the HTTP
//! code treat plain and TLS sockets alike ([`Stream`]).

mod conn;
mod stream;

pub use conn::TlsConn;
pub use stream::Stream;

/// Shrinks `buf` back to `keep` bytes of capacity once one large message grew it past 64 KiB.
fn trim(buf: &mut Vec<u8>, keep: usize) {
    if buf.capacity() > 64 << 10 {
        buf.shrink_to(keep.max(buf.len()));
    }
}
