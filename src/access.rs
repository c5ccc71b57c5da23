//! The access log (`access_log:`): one JSON line per MCP request the method stage accepted,
//! written by [`crate::observe::finish`] for every era and transport.
//!
//! Off the request path: a shard appends its lines to a batch of its own (a reused buffer, no
//! lock); a full batch ([`BATCH_BYTES`]), and every batch once a second, goes over a bounded
//! channel to one writer thread, which writes it with one `write` and hands the buffer back.
//! When the writer falls [`QUEUED_BATCHES`] batches behind (a full disk, a stalled pipe), a
//! shard drops its batch and counts its lines (`ringmux_access_log_dropped_lines_total`)
//! rather than wait. A shard's last batch is sent when it stops, and the writer is joined
//! before the process exits.
//!
//! A line: `time`, `principal` (its id, never a credential), `session`, `era`, `route`,
//! `method`, `name` (a tool's or prompt's, as the client wrote it), `uri`, `backend`,
//! `status` (HTTP), `code` and `side` (a JSON-RPC error's), `latency_us`, `bytes_in`,
//! `bytes_out` (a streamed answer's: 0, its events being the backend's), and with `traces:`
//! `trace_id`.

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::sync::mpsc;
use std::time::Duration;

use crate::record::{Finished, Side};
use crate::request::ClientEra;

/// One request's line, as [`crate::observe::finish`] hands it over.
pub struct Line<'a> {
    pub req: &'a Finished<'a>,
    /// The endpoint's path.
    pub route: &'a str,
    pub backend: Option<&'a str>,
    pub status: u16,
    pub bytes_out: usize,
    pub error: Option<(i64, Side)>,
    pub took: Duration,
    /// The 32 hex digits of the trace id, with `traces:`.
    pub trace_id: Option<&'a [u8]>,
}

/// A batch is sent to the writer when it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// Batches queued for the writer before shards start dropping theirs.
pub const QUEUED_BATCHES: usize = 64;

/// The writer thread: where the lines go. [`Writer::join`] waits for every shard's last
/// batch ([`Shard::close`]) and the last write.
pub struct Writer {
    tx: mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer on `out` (the file, appended to, or standard output).
    pub fn start(mut out: std::fs::File) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED_BATCHES);
        let spare = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let back = spare.clone();
        let thread = std::thread::Builder::new()
            .name("ringmux-access-log".into())
            .spawn(move || {
                let mut failing = false;
                while let Ok(mut batch) = rx.recv() {
                    match out.write_all(&batch) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!("access log write failed: {e}");
                        }
                        Err(_) => {}
                    }
                    batch.clear();
                    if let Ok(mut s) = back.lock() {
                        if s.len() < QUEUED_BATCHES {
                            s.push(batch);
                        }
                    }
                }
                let _ = out.flush();
            })?;
        Ok(Writer { tx, spare, thread })
    }

    /// A shard's end of the log.
    pub fn shard(&self) -> Shard {
        Shard {
            batch: RefCell::new(Vec::with_capacity(BATCH_BYTES + 1024)),
            tx: RefCell::new(Some(self.tx.clone())),
            spare: self.spare.clone(),
            second: Cell::new(u64::MAX),
            stamp: RefCell::new(Vec::with_capacity(24)),
            scratch: RefCell::new(String::with_capacity(64)),
        }
    }

    /// Waits for the shards' last batches (once every [`Shard`] is closed) to be written.
    pub fn join(self) {
        drop(self.tx);
        let _ = self.thread.join();
    }
}

/// A shard's end of the access log.
pub struct Shard {
    batch: RefCell<Vec<u8>>,
    /// `None` once the shard has stopped ([`Shard::close`]).
    tx: RefCell<Option<mpsc::SyncSender<Vec<u8>>>>,
    spare: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    /// The second `stamp` was written for (`YYYY-MM-DDTHH:MM:SS`).
    second: Cell<u64>,
    stamp: RefCell<Vec<u8>>,
    /// A principal's id, written here (no allocation per line).
    scratch: RefCell<String>,
}

impl Shard {
    /// Appends the line of a finished request.
    pub fn write(&self, line: &Line<'_>, metrics: &crate::metrics::ShardMetrics) {
        let req = line.req;
        let mut b = self.batch.borrow_mut();
        b.extend_from_slice(b"{\"time\":\"");
        self.time(&mut b);
        b.extend_from_slice(b"\",\"principal\":");
        let mut id = self.scratch.borrow_mut();
        id.clear();
        req.principal.write_id(&mut id);
        ringmux_core::jsonrpc::write_str(&mut b, &id);
        if let Some(s) = req.session {
            b.extend_from_slice(b",\"session\":");
            ringmux_core::jsonrpc::write_str(&mut b, s);
        }
        b.extend_from_slice(match req.era {
            ClientEra::Stateful => b",\"era\":\"streamable-http\"",
            ClientEra::Legacy => b",\"era\":\"http+sse\"",
            ClientEra::Sessionless => b",\"era\":\"2026-07-28\"",
        });
        b.extend_from_slice(b",\"route\":");
        ringmux_core::jsonrpc::write_str(&mut b, line.route);
        b.extend_from_slice(b",\"method\":\"");
        b.extend_from_slice(req.method.as_bytes());
        b.push(b'"');
        // Raw JSON string literals from the request, valid JSON as they are.
        if let Some(n) = req.name.filter(|n| n.get().starts_with('"')) {
            b.extend_from_slice(b",\"name\":");
            b.extend_from_slice(n.get().as_bytes());
        }
        if let Some(u) = req.uri.filter(|u| u.get().starts_with('"')) {
            b.extend_from_slice(b",\"uri\":");
            b.extend_from_slice(u.get().as_bytes());
        }
        if let Some(name) = line.backend {
            b.extend_from_slice(b",\"backend\":");
            ringmux_core::jsonrpc::write_str(&mut b, name);
        }
        let mut n = itoa_buf();
        b.extend_from_slice(b",\"status\":");
        b.extend_from_slice(fmt_u64(&mut n, line.status as u64));
        if let Some((code, side)) = line.error {
            b.extend_from_slice(b",\"code\":");
            if code < 0 {
                b.push(b'-');
            }
            b.extend_from_slice(fmt_u64(&mut n, code.unsigned_abs()));
            b.extend_from_slice(b",\"side\":\"");
            b.extend_from_slice(side.as_str().as_bytes());
            b.push(b'"');
        }
        b.extend_from_slice(b",\"latency_us\":");
        b.extend_from_slice(fmt_u64(&mut n, line.took.as_micros() as u64));
        b.extend_from_slice(b",\"bytes_in\":");
        b.extend_from_slice(fmt_u64(&mut n, req.bytes_in as u64));
        b.extend_from_slice(b",\"bytes_out\":");
        b.extend_from_slice(fmt_u64(&mut n, line.bytes_out as u64));
        if let Some(t) = line.trace_id {
            b.extend_from_slice(b",\"trace_id\":\"");
            b.extend_from_slice(t);
            b.push(b'"');
        }
        b.extend_from_slice(b"}\n");
        if b.len() >= BATCH_BYTES {
            self.send(&mut b, metrics);
        }
    }

    /// Sends the batch to the writer (the shard's once-a-second tick, and when full).
    pub fn flush(&self, metrics: &crate::metrics::ShardMetrics) {
        let mut b = self.batch.borrow_mut();
        if !b.is_empty() {
            self.send(&mut b, metrics);
        }
    }

    fn send(&self, b: &mut Vec<u8>, metrics: &crate::metrics::ShardMetrics) {
        let tx = self.tx.borrow();
        let Some(tx) = tx.as_ref() else {
            b.clear();
            return;
        };
        let next = self
            .spare
            .lock()
            .ok()
            .and_then(|mut s| s.pop())
            .unwrap_or_else(|| Vec::with_capacity(BATCH_BYTES + 1024));
        let full = std::mem::replace(b, next);
        if let Err(
            mpsc::TrySendError::Full(mut lost) | mpsc::TrySendError::Disconnected(mut lost),
        ) = tx.try_send(full)
        {
            metrics
                .access_log_dropped
                .add(memchr::memchr_iter(b'\n', &lost).count() as u64);
            lost.clear();
            *b = lost;
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, the date and time formatted once a second.
    fn time(&self, b: &mut Vec<u8>) {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut stamp = self.stamp.borrow_mut();
        if self.second.get() != d.as_secs() {
            self.second.set(d.as_secs());
            stamp.clear();
            crate::audit::write_rfc3339(
                &mut stamp,
                std::time::UNIX_EPOCH + Duration::from_secs(d.as_secs()),
            );
            stamp.truncate(19);
        }
        b.extend_from_slice(&stamp);
        let ms = d.subsec_millis();
        b.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
            b'Z',
        ]);
    }
}

impl Shard {
    /// The shard has stopped: its last batch is sent (waiting for room if need be) and its
    /// end closed, so the writer ends once every shard's is.
    pub fn close(&self) {
        let b = std::mem::take(&mut *self.batch.borrow_mut());
        if let Some(tx) = self.tx.borrow_mut().take() {
            if !b.is_empty() {
                let _ = tx.send(b);
            }
        }
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// `n` in decimal, written at the end of `buf`.
fn fmt_u64(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_decimal() {
        let mut b = super::itoa_buf();
        assert_eq!(super::fmt_u64(&mut b, 0), b"0");
        assert_eq!(
            super::fmt_u64(&mut b, 18_446_744_073_709_551_615),
            b"18446744073709551615"
        );
        assert_eq!(super::fmt_u64(&mut b, 1200), b"1200");
    }
}
