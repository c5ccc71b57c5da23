//! A connection as the HTTP code sees it, a client's or a backend's: a plain socket, or TLS
//! over one ([`crate::tls::TlsConn`]). Reads append to the connection's buffer; writes take it
//! whole.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};

use crate::TlsConn;

/// `C`: `rustls::ServerConnection` (a client's connection) or `rustls::ClientConnection` (a
/// backend's).
pub enum Stream<C> {
    Plain(TcpStream),
    Tls(Box<TlsConn<C>>),
}

impl<C, S> Stream<C>
where
    C: std::ops::DerefMut + std::ops::Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.tcp,
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }

    /// Appends what arrives to `buf` (with room for at least `min_spare` more first). 0: the
    /// end of the stream. `write_timeout` bounds each write a TLS read must make (a key
    /// update's answer).
    pub async fn read_more(
        &mut self,
        buf: Vec<u8>,
        min_spare: usize,
        write_timeout: Option<Duration>,
    ) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Plain(s) => read_more(s, buf, min_spare).await,
            // Boxed: a TLS read's future (reads, decryption, the writes a key update needs, their
            // timers) is several times a plain read's, and unboxed it would make every plain
            // read's future that large too, copied at each await (callgrind: +1.3 k
            // instructions per proxied call in memcpy alone). ringmux's hot paths match on
            // the stream themselves and await `read_more` directly: through this method the
            // plain read measured 150 instructions more per call.
            Stream::Tls(t) => Box::pin(t.read_more(buf, min_spare, write_timeout)).await,
        }
    }

    /// Writes all of `buf`. A peer that takes no byte for `write_timeout` (if given: `None`
    /// sets no timer, for a caller whose whole exchange has a deadline) is an error (a slow
    /// reader that makes progress is not). On an error the buffer may be gone (a cancelled
    /// write keeps it): the connection ends anyway.
    pub async fn write_all(
        &mut self,
        buf: Vec<u8>,
        write_timeout: Option<Duration>,
    ) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Plain(s) => write_all(s, buf, write_timeout).await,
            // Boxed, as in `read_more`.
            Stream::Tls(t) => {
                let res = Box::pin(t.write_all(&buf, write_timeout)).await;
                (res, buf)
            }
        }
    }

    /// Ends the write side (TLS: after a close_notify).
    pub async fn shutdown(&mut self, write_timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(t) => t.shutdown(write_timeout).await,
        }
    }
}

/// Reads more into `buf` from a plain socket, appending after its contents (growing it by at
/// least `min_spare` free bytes first). Returns the number of bytes read; 0 means the end of
/// the stream.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: Vec<u8>,
    min_spare: usize,
) -> (io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let len = buf.len();
    let (res, slice) = stream.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

/// Writes all of `buf` to a plain socket; each write must take a byte within `write_timeout`
/// (if given). On a timeout the buffer went with the cancelled write.
pub async fn write_all(
    s: &mut TcpStream,
    mut buf: Vec<u8>,
    write_timeout: Option<Duration>,
) -> (io::Result<()>, Vec<u8>) {
    let mut pos = 0;
    while pos < buf.len() {
        let end = buf.len();
        let write = s.write(buf.slice(pos..end));
        let (res, slice) = match write_timeout {
            None => write.await,
            Some(t) => match monoio::time::timeout(t, write).await {
                Ok(done) => done,
                Err(_) => return (Err(crate::timed_out()), Vec::new()),
            },
        };
        buf = slice.into_inner();
        match res {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => pos += n,
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}
