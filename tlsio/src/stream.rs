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
    /// end of the stream.
    pub async fn read_more(
        &mut self,
        mut buf: Vec<u8>,
        min_spare: usize,
        write_timeout: Duration,
    ) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Plain(s) => {
                if buf.capacity() - buf.len() < min_spare {
                    buf.reserve(min_spare);
                }
                let len = buf.len();
                let (res, slice) = s.read(buf.slice_mut(len..)).await;
                (res, slice.into_inner())
            }
            Stream::Tls(t) => t.read_more(buf, min_spare, write_timeout).await,
        }
    }

    /// Writes all of `buf`. A peer that takes no byte for `write_timeout` is an error (a slow
    /// reader that makes progress is not). On an error the buffer may be gone (a cancelled
    /// write keeps it): the connection ends anyway.
    pub async fn write_all(
        &mut self,
        mut buf: Vec<u8>,
        write_timeout: Duration,
    ) -> (io::Result<()>, Vec<u8>) {
        let s = match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => {
                let res = t.write_all(&buf, write_timeout).await;
                return (res, buf);
            }
        };
        let mut pos = 0;
        while pos < buf.len() {
            let end = buf.len();
            let write = s.write(buf.slice(pos..end));
            let Ok((res, slice)) = monoio::time::timeout(write_timeout, write).await else {
                return (
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the peer read nothing within the write timeout",
                    )),
                    Vec::new(),
                );
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

    /// Ends the write side (TLS: after a close_notify).
    pub async fn shutdown(&mut self, write_timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(t) => t.shutdown(write_timeout).await,
        }
    }
}
