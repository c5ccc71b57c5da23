//! A client session's server-to-client SSE streams: the standalone GET stream (stream 0) and
//! one stream per POST answered with SSE (streams 1, 2, …). Every event gets an id
//! `<stream>.<seq>`, `seq` counting per session, so ids are unique in the session and name
//! their stream. The last `replay_events` events are kept: a client that lost a stream opens a
//! GET with `Last-Event-ID` and receives what that stream missed, then (if the stream is still
//! running) the rest of it live.
//!
//! A stream outlives the client's connection: a POST stream whose client went away keeps being
//! fed (and recorded) until the backend's answer arrives, so a resumed stream ends with it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use ringmux_core::sse;

/// The standalone GET stream's number.
pub const GET_STREAM: u32 = 0;

/// One recorded event, encoded.
struct Logged {
    stream: u32,
    seq: u64,
    event: Box<[u8]>,
}

pub struct Streams {
    seq: Cell<u64>,
    next_stream: Cell<u32>,
    /// Streams whose client is connected now, with the sender their response reads.
    live: RefCell<Vec<(u32, UnboundedSender<Vec<u8>>)>>,
    /// POST streams still waiting for their answer.
    open: RefCell<Vec<u32>>,
    replay: RefCell<VecDeque<Logged>>,
    replay_cap: usize,
    retry_ms: u64,
    /// Whether streams start with a priming event: only for clients of 2025-11-25 on, as the
    /// official SDKs do (earlier clients may take an event without data for a message).
    prime: bool,
}

/// Where a `Last-Event-ID` points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub stream: u32,
    pub seq: u64,
}

impl Resume {
    pub fn parse(id: &str) -> Option<Resume> {
        let (stream, seq) = id.split_once('.')?;
        Some(Resume {
            stream: stream.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl Streams {
    pub fn new(replay_cap: usize, retry_ms: u64, prime: bool) -> Streams {
        Streams {
            prime,
            seq: Cell::new(0),
            next_stream: Cell::new(1),
            live: RefCell::new(Vec::new()),
            open: RefCell::new(Vec::new()),
            replay: RefCell::new(VecDeque::new()),
            replay_cap,
            retry_ms,
        }
    }

    fn next_id(&self, stream: u32) -> (u64, String) {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        (seq, format!("{stream}.{seq}"))
    }

    /// Sends a priming event for `stream` (a resumable id and the retry delay, no data) when
    /// the client's version has them.
    fn prime(&self, tx: &UnboundedSender<Vec<u8>>, stream: u32) {
        if !self.prime {
            return;
        }
        let (_, id) = self.next_id(stream);
        let mut prime = Vec::with_capacity(48);
        sse::write_priming(&mut prime, &id, self.retry_ms);
        let _ = tx.unbounded_send(prime);
    }

    /// Opens a POST stream: its number and the receiver the client's response reads, primed
    /// with an event that carries a resumable id and the retry delay.
    pub fn open_post(&self) -> (u32, UnboundedReceiver<Vec<u8>>) {
        let stream = self.next_stream.get();
        self.next_stream.set(stream.wrapping_add(1).max(1));
        let (tx, rx) = unbounded();
        self.prime(&tx, stream);
        self.live.borrow_mut().push((stream, tx));
        self.open.borrow_mut().push(stream);
        (stream, rx)
    }

    /// Sends one JSON-RPC message on `stream`: recorded for replay, and written to the client
    /// if it is connected. Returns whether a client received it now.
    pub fn send(&self, stream: u32, message: &[u8]) -> bool {
        let (seq, id) = self.next_id(stream);
        let mut event = Vec::with_capacity(message.len() + id.len() + 16);
        sse::write_event(&mut event, Some(&id), None, message);
        let mut delivered = false;
        {
            let mut live = self.live.borrow_mut();
            if let Some(i) = live.iter().position(|(s, _)| *s == stream) {
                if live[i].1.unbounded_send(event.clone()).is_ok() {
                    delivered = true;
                } else {
                    live.swap_remove(i);
                }
            }
        }
        if self.replay_cap > 0 {
            let mut replay = self.replay.borrow_mut();
            if replay.len() == self.replay_cap {
                replay.pop_front();
            }
            replay.push_back(Logged {
                stream,
                seq,
                event: event.into_boxed_slice(),
            });
        }
        delivered
    }

    /// A POST stream got its answer: the client's response ends (a resumed one too).
    pub fn close(&self, stream: u32) {
        self.open.borrow_mut().retain(|s| *s != stream);
        self.live.borrow_mut().retain(|(s, _)| *s != stream);
    }

    /// Whether a client is connected to the GET stream.
    pub fn has_get(&self) -> bool {
        self.live
            .borrow()
            .iter()
            .any(|(s, tx)| *s == GET_STREAM && !tx.is_closed())
    }

    /// Whether `resume` names an event this session could have sent: a stream it opened and
    /// a sequence number it reached. (Its events may since have left the replay buffer.)
    pub fn knows(&self, resume: Resume) -> bool {
        (resume.stream == GET_STREAM || resume.stream < self.next_stream.get())
            && resume.seq <= self.seq.get()
    }

    /// Attaches a client GET: a fresh standalone stream, or with `resume` the stream that id
    /// belongs to, replaying what it missed. A new GET stream replaces an earlier one (whose
    /// response then ends): a client reconnecting over a half-dead connection must not be
    /// refused. A resumed POST stream that already ended replays its rest and ends.
    pub fn attach(&self, resume: Option<Resume>) -> UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = unbounded();
        let stream = resume.map_or(GET_STREAM, |r| r.stream);
        match resume {
            Some(r) => {
                for logged in self.replay.borrow().iter() {
                    if logged.stream == r.stream && logged.seq > r.seq {
                        let _ = tx.unbounded_send(logged.event.to_vec());
                    }
                }
            }
            None => self.prime(&tx, GET_STREAM),
        }
        let running = stream == GET_STREAM || self.open.borrow().contains(&stream);
        if running {
            let mut live = self.live.borrow_mut();
            live.retain(|(s, _)| *s != stream);
            live.push((stream, tx));
        }
        rx
    }

    /// Makes `tx` the GET stream (a legacy HTTP+SSE client's stream, opened before the
    /// session existed).
    pub fn adopt_get(&self, tx: UnboundedSender<Vec<u8>>) {
        let mut live = self.live.borrow_mut();
        live.retain(|(s, _)| *s != GET_STREAM);
        live.push((GET_STREAM, tx));
    }

    /// The gateway is shutting down: the GET stream (a legacy client's one stream) gets a
    /// `retry` hint and ends; POST streams run on until their answers.
    pub fn end_get(&self, retry_ms: u64) {
        let mut live = self.live.borrow_mut();
        if let Some(i) = live.iter().position(|(s, _)| *s == GET_STREAM) {
            let (_, tx) = live.swap_remove(i);
            let _ = tx.unbounded_send(format!("retry: {retry_ms}\n\n").into_bytes());
        }
    }

    /// Ends every stream (the session is over).
    pub fn end_all(&self) {
        self.live.borrow_mut().clear();
        self.open.borrow_mut().clear();
        self.replay.borrow_mut().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmux_core::sse::{Event, SseDecoder};

    fn drain(rx: &mut UnboundedReceiver<Vec<u8>>) -> Vec<Event> {
        let mut d = SseDecoder::new(1 << 20);
        while let Ok(chunk) = rx.try_recv() {
            d.feed(&chunk);
        }
        let mut out = Vec::new();
        while let Some(e) = d.next_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn post_stream_is_primed_and_resumable_after_disconnect() {
        let s = Streams::new(16, 500, true);
        let (n, mut rx) = s.open_post();
        let first = drain(&mut rx);
        assert_eq!(first.len(), 1);
        assert!(first[0].data.is_empty());
        assert_eq!(first[0].retry, Some(500));
        let prime = Resume::parse(first[0].id.as_deref().unwrap()).unwrap();
        assert_eq!(prime.stream, n);
        drop(rx);
        assert!(!s.send(n, b"{\"progress\":1}"));
        assert!(!s.send(n, b"{\"progress\":2}"));
        // Another stream's events are not replayed on this one.
        let (other, _orx) = s.open_post();
        s.send(other, b"{\"other\":1}");
        let mut resumed = s.attach(Some(prime));
        let got = drain(&mut resumed);
        let data: Vec<_> = got.iter().map(|e| e.data.clone()).collect();
        assert_eq!(
            data,
            vec![b"{\"progress\":1}".to_vec(), b"{\"progress\":2}".to_vec()]
        );
        // Still running: the answer arrives live on the resumed response, which then ends.
        assert!(s.send(n, b"{\"result\":{}}"));
        s.close(n);
        assert_eq!(drain(&mut resumed)[0].data, b"{\"result\":{}}");
        assert!(resumed.try_recv().unwrap_err().is_closed(), "ended");
    }

    #[test]
    fn resuming_from_a_middle_event_replays_only_later_ones() {
        let s = Streams::new(16, 500, true);
        let mut get = s.attach(None);
        for i in 0..3 {
            s.send(GET_STREAM, format!("{{\"n\":{i}}}").as_bytes());
        }
        let events = drain(&mut get);
        assert_eq!(events.len(), 4, "priming + 3");
        let second = Resume::parse(events[2].id.as_deref().unwrap()).unwrap();
        let mut again = s.attach(Some(second));
        assert!(
            get.try_recv().unwrap_err().is_closed(),
            "the replaced GET stream ends"
        );
        let replayed = drain(&mut again);
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed[0].data, b"{\"n\":2}");
        assert!(s.has_get());
    }

    #[test]
    fn replay_buffer_is_bounded() {
        let s = Streams::new(2, 500, true);
        let (n, rx) = s.open_post();
        drop(rx);
        for i in 0..5 {
            s.send(n, format!("{{\"n\":{i}}}").as_bytes());
        }
        s.close(n);
        let mut r = s.attach(Some(Resume { stream: n, seq: 0 }));
        let data: Vec<_> = drain(&mut r).into_iter().map(|e| e.data).collect();
        assert_eq!(data, vec![b"{\"n\":3}".to_vec(), b"{\"n\":4}".to_vec()]);
        assert!(
            r.try_recv().unwrap_err().is_closed(),
            "a finished stream ends after its replay"
        );
    }

    #[test]
    fn older_clients_get_no_priming_event() {
        let s = Streams::new(16, 500, false);
        let (n, mut rx) = s.open_post();
        let mut get = s.attach(None);
        assert!(drain(&mut rx).is_empty() && drain(&mut get).is_empty());
        s.send(n, b"{}");
        let got = drain(&mut rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].data, b"{}");
        assert!(Resume::parse(got[0].id.as_deref().unwrap()).is_some());
    }

    #[test]
    fn event_ids_parse_strictly() {
        assert_eq!(Resume::parse("3.9"), Some(Resume { stream: 3, seq: 9 }));
        for bad in ["", "3", "a.1", "1.b", "1.2.3", "-1.2"] {
            assert_eq!(Resume::parse(bad), None, "{bad}");
        }
    }
}
