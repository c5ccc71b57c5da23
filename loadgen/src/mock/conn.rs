//! The HTTP/1.1 connection loop, the only code that reads a socket: read a request head and
//! body, hand them to [`routes`](super::routes), and go round again on the same keep-alive
//! connection.

use std::io;
use std::ops::Range;
use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;
use ringmux_core::http::chunked::ChunkedDecoder;
use ringmux_core::http::{self, BodyKind, HeadError, RequestHead};

use super::emit::Io;
use super::{routes, Shared};

/// Largest request head; MCP requests carry a handful of short headers.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body (413 beyond).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// Read buffer size: one typical request (head and body) in one read.
const READ_BUF: usize = 16 * 1024;
/// Buffers grown past this by one big request are given back afterwards.
const KEEP_BUF: usize = 256 * 1024;

/// Why a request could not be read.
enum ReadError {
    /// The peer closed (or the socket failed): nothing to answer.
    Closed,
    /// Answer with this error's status, then close.
    Http(HeadError),
}

/// Where the body of the current request is.
enum BodyAt {
    /// In the read buffer.
    Buf(Range<usize>),
    /// Decoded from chunks into the side buffer.
    Decoded,
}

/// Serves one connection until it closes or errs.
pub(crate) async fn serve(stream: TcpStream, sh: Arc<Shared>) {
    let mut io = Io::new(stream);
    let mut rbuf = Vec::with_capacity(READ_BUF);
    let mut decoded = Vec::new();
    let mut out = Vec::with_capacity(READ_BUF);
    loop {
        let (head, body, consumed) = match read_request(io.socket(), &mut rbuf, &mut decoded).await
        {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(ReadError::Http(e)) => {
                let status = e.status();
                io.respond(
                    status,
                    Some("text/plain"),
                    e.to_string().as_bytes(),
                    false,
                    &[],
                );
                let _ = io.flush().await;
                return;
            }
        };
        let body = match body {
            BodyAt::Buf(r) => &rbuf[r],
            BodyAt::Decoded => &decoded[..],
        };
        let keep = matches!(
            routes::handle(&sh, &mut io, &rbuf, &head, body, &mut out).await,
            Ok(true)
        );
        if !keep {
            return;
        }
        rbuf.drain(..consumed);
        for buf in [&mut rbuf, &mut decoded, &mut out] {
            if buf.capacity() > KEEP_BUF {
                buf.shrink_to(READ_BUF.max(buf.len()));
            }
        }
    }
}

/// Reads more bytes onto the end of `buf`; `Ok(0)` means the peer closed.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < READ_BUF / 4 {
        buf.reserve(READ_BUF);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let (res, slice) = stream.read(std::mem::take(buf).slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

async fn fill_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), ReadError> {
    match fill(stream, buf).await {
        Ok(0) | Err(_) => Err(ReadError::Closed),
        Ok(_) => Ok(()),
    }
}

/// Reads one request: its head, where its body is, and how many bytes of `rbuf` it used.
async fn read_request(
    stream: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    decoded: &mut Vec<u8>,
) -> Result<(RequestHead, BodyAt, usize), ReadError> {
    let head = loop {
        if !rbuf.is_empty() {
            match http::parse_request(rbuf, MAX_HEAD, MAX_BODY) {
                Ok(Some(head)) => break head,
                Ok(None) => {}
                Err(e) => return Err(ReadError::Http(e)),
            }
        }
        fill_some(stream, rbuf).await?;
    };
    let start = head.head_len;
    match head.body {
        BodyKind::Empty | BodyKind::UntilClose => Ok((head, BodyAt::Buf(start..start), start)),
        BodyKind::Length(n) => {
            let end = start + n;
            rbuf.reserve(end.saturating_sub(rbuf.len()));
            while rbuf.len() < end {
                fill_some(stream, rbuf).await?;
            }
            Ok((head, BodyAt::Buf(start..end), end))
        }
        BodyKind::Chunked => {
            decoded.clear();
            let mut decoder = ChunkedDecoder::new();
            loop {
                let used = decoder
                    .decode(&rbuf[start..], decoded, MAX_BODY)
                    .map_err(ReadError::Http)?;
                // Drop the framing as it is decoded: chunk extensions must not grow the
                // buffer past the body limit. The head before `start` stays put.
                rbuf.drain(start..start + used);
                if decoder.is_done() {
                    return Ok((head, BodyAt::Decoded, start));
                }
                fill_some(stream, rbuf).await?;
            }
        }
    }
}
