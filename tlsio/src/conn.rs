//! A rustls connection over a monoio socket: the socket's bytes go through rustls, owned buffers
//! go to io_uring. One type for both sides (a client's connection to ringmux's listener, and
//! ringmux's connection to an `https://` backend).
//!
//! Hand-written rather than monoio-rustls 0.4 (ARCHITECTURE.md, "TLS"): a connection handed to
//! another shard must carry every byte of its TLS state, and monoio-rustls keeps ciphertext
//! read from the socket in a private buffer that `into_parts` drops. Here that ciphertext is
//! [`TlsConn::into_parts`]'s second half, and the buffers are the connection's own, reused
//! for its life.

use std::io::{self, BufRead, Write};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};

/// Ciphertext read from the socket at a time.
const READ_CHUNK: usize = 16 << 10 | 512;

/// A TLS connection over a socket. `C` is `rustls::ServerConnection` or
/// `rustls::ClientConnection`.
pub struct TlsConn<C> {
    pub tcp: TcpStream,
    pub tls: C,
    /// Ciphertext read from the socket: `cin[cpos..]` is not yet given to rustls.
    cin: Vec<u8>,
    cpos: usize,
    /// Ciphertext rustls produced, on its way to the socket (kept for its allocation).
    cout: Vec<u8>,
    /// Set while a socket read or write is under way. A caller that gives up on an operation
    /// (a timeout drops its future) may leave a record half written or ciphertext read and
    /// lost; the connection is then unusable, and every later operation fails at once rather
    /// than sending or reading garbage.
    torn: bool,
}

impl<C, S> TlsConn<C>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// `pending`: ciphertext already read from the socket and not yet given to rustls (a
    /// connection handed over by another shard).
    pub fn new(tcp: TcpStream, tls: C, pending: Vec<u8>) -> TlsConn<C> {
        TlsConn {
            tcp,
            tls,
            cin: pending,
            cpos: 0,
            cout: Vec::new(),
            torn: false,
        }
    }

    /// The socket, the rustls state and the ciphertext rustls has not seen: everything the
    /// connection is.
    pub fn into_parts(mut self) -> (TcpStream, C, Vec<u8>) {
        self.cin.drain(..self.cpos);
        (self.tcp, self.tls, self.cin)
    }

    /// Runs the handshake to its end (each write bounded by `write_timeout`, if given; the
    /// caller bounds the whole).
    pub async fn handshake(&mut self, write_timeout: Option<Duration>) -> io::Result<()> {
        while self.tls.is_handshaking() {
            self.push(write_timeout).await?;
            if !self.tls.is_handshaking() {
                break;
            }
            if self.feed(write_timeout).await? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
        }
        self.push(write_timeout).await
    }

    /// Appends decrypted bytes to `buf` (first making room for at least `min_spare`). Ok(0)
    /// is the end of the stream (a close_notify, or the socket's end: HTTP's own framing tells
    /// a truncated message). Each write it must make (a key update's answer) is bounded by
    /// `write_timeout`.
    pub async fn read_more(
        &mut self,
        mut buf: Vec<u8>,
        min_spare: usize,
        write_timeout: Option<Duration>,
    ) -> (io::Result<usize>, Vec<u8>) {
        loop {
            match self.tls.reader().fill_buf() {
                Ok(plain) => {
                    let n = plain.len();
                    if buf.capacity() - buf.len() < min_spare.max(n) {
                        buf.reserve(min_spare.max(n));
                    }
                    buf.extend_from_slice(plain);
                    self.tls.reader().consume(n);
                    return (Ok(n), buf);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return (Ok(0), buf),
                Err(e) => return (Err(e), buf),
            }
            match self.feed(write_timeout).await {
                Ok(false) => {}
                // rustls was told; its reader says how the stream ended.
                Ok(true) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }

    /// Encrypts all of `data` and writes it out; each socket write must make progress within
    /// `write_timeout`.
    pub async fn write_all(
        &mut self,
        data: &[u8],
        write_timeout: Option<Duration>,
    ) -> io::Result<()> {
        let mut pos = 0;
        while pos < data.len() {
            // rustls takes what fits under its send-buffer limit; the rest after a push.
            pos += self.tls.writer().write(&data[pos..])?;
            self.push(write_timeout).await?;
        }
        Ok(())
    }

    /// Sends close_notify and shuts the socket's write side.
    pub async fn shutdown(&mut self, write_timeout: Option<Duration>) -> io::Result<()> {
        self.tls.send_close_notify();
        self.push(write_timeout).await?;
        self.tcp.shutdown().await
    }

    /// Reads ciphertext (when rustls has seen all it had) and gives it to rustls. Returns
    /// whether the socket ended. Writes what rustls has to say back (alerts, key updates).
    async fn feed(&mut self, write_timeout: Option<Duration>) -> io::Result<bool> {
        self.intact()?;
        let mut eof = false;
        if self.cpos == self.cin.len() {
            let mut cin = std::mem::take(&mut self.cin);
            self.cpos = 0;
            cin.clear();
            cin.reserve(READ_CHUNK);
            self.torn = true;
            let (res, slice) = self.tcp.read(cin.slice_mut(0..)).await;
            self.torn = false;
            self.cin = slice.into_inner();
            eof = res? == 0;
        }
        if eof {
            // A reader with nothing left tells rustls the stream ended.
            self.tls.read_tls(&mut io::empty())?;
        } else {
            let mut rest = &self.cin[self.cpos..];
            let before = rest.len();
            self.tls.read_tls(&mut rest)?;
            self.cpos += before - rest.len();
        }
        if let Err(e) = self.tls.process_new_packets() {
            // The alert rustls queued tells the peer why; best effort.
            let _ = self.push(write_timeout).await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        self.push(write_timeout).await?;
        Ok(eof)
    }

    /// Writes out every record rustls has queued.
    async fn push(&mut self, write_timeout: Option<Duration>) -> io::Result<()> {
        self.intact()?;
        while self.tls.wants_write() {
            let mut out = std::mem::take(&mut self.cout);
            out.clear();
            self.tls.write_tls(&mut out)?;
            self.torn = true;
            let mut pos = 0;
            while pos < out.len() {
                let end = out.len();
                let write = self.tcp.write(out.slice(pos..end));
                let (res, slice) = crate::bounded(write_timeout, write).await?;
                out = slice.into_inner();
                match res? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => pos += n,
                }
            }
            self.torn = false;
            // Cleared first: one large answer must not pin its size for the connection's life.
            out.clear();
            crate::trim(&mut out, 0);
            self.cout = out;
        }
        Ok(())
    }

    fn intact(&self) -> io::Result<()> {
        match self.torn {
            false => Ok(()),
            true => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "an earlier TLS read or write was abandoned part-way",
            )),
        }
    }
}
