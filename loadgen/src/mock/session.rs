//! Sessions, shared by every server thread (a client's connections may land on any of them):
//! the listeners of each session's GET streams, its pending server→client requests, and (in
//! conformance mode) the event logs of its POST streams for `Last-Event-ID` replay.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures_channel::{mpsc, oneshot};
use ringmux_core::affinity::{encode_session_id, SESSION_ID_LEN};
use ringmux_core::jsonrpc::{raw_str, Raw};

/// A minted session id (visible ASCII).
pub(crate) type SessionId = [u8; SESSION_ID_LEN];

/// POST streams whose events a session keeps for replay; older logs are dropped. The
/// conformance suite resumes only the stream it just opened.
const LOGGED_STREAMS: usize = 16;

/// Prefix of the ids of server→client requests (`"srv-7"`).
const REQUEST_ID_PREFIX: &str = "srv-";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these collections half-updated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Live sessions kept at most; past this the oldest is forgotten. Clients that never send
/// DELETE (the conformance suite, a benchmark initializing per iteration) must not grow the
/// mock without bound; 100k sessions is a few tens of MB.
const MAX_SESSIONS: usize = 100_000;

/// All live sessions of one mock server.
#[derive(Default)]
pub(crate) struct Sessions {
    live: RwLock<Live>,
}

#[derive(Default)]
struct Live {
    map: HashMap<SessionId, Arc<Session>>,
    /// Ids in creation order (deleted ones too, until pruned), for eviction.
    order: VecDeque<SessionId>,
}

impl Sessions {
    /// Mints and registers a new session.
    pub fn create(&self) -> io::Result<Arc<Session>> {
        self.create_bounded(MAX_SESSIONS)
    }

    fn create_bounded(&self, max: usize) -> io::Result<Arc<Session>> {
        let mut random = [0u8; 24];
        getrandom::fill(&mut random).map_err(|e| io::Error::other(e.to_string()))?;
        let session = Arc::new(Session::new(encode_session_id(&random)));
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let live = &mut *live;
        while live.map.len() >= max {
            let Some(oldest) = live.order.pop_front() else {
                break;
            };
            live.map.remove(&oldest);
        }
        if live.order.len() >= 2 * max {
            let map = &live.map;
            live.order.retain(|id| map.contains_key(id));
        }
        live.map.insert(session.id, session.clone());
        live.order.push_back(session.id);
        Ok(session)
    }

    pub fn get(&self, id: &[u8]) -> Option<Arc<Session>> {
        let id: &SessionId = id.try_into().ok()?;
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        live.map.get(id).cloned()
    }

    /// Forgets a session; its GET streams end once no request of it is still running.
    pub fn remove(&self, id: &[u8]) -> bool {
        let Ok(id) = <&SessionId>::try_from(id) else {
            return false;
        };
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        live.map.remove(id).is_some()
    }

    /// Sends `msg` on every open GET stream of every session.
    pub fn notify_all(&self, msg: &[u8]) {
        let msg: Arc<[u8]> = msg.into();
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        for session in live.map.values() {
            session.notify(&msg);
        }
    }
}

/// One POST stream's events, for replay.
struct StreamLog {
    stream: u64,
    events: Vec<(u64, Arc<[u8]>)>,
    /// The final response has been logged.
    done: bool,
    /// GET streams waiting for the next event.
    waiters: Vec<oneshot::Sender<()>>,
}

/// What a resuming GET stream gets: the events after its cursor and, unless the stream has
/// ended, a signal for the next event.
pub(crate) struct Replayed {
    pub events: Vec<(u64, Arc<[u8]>)>,
    pub wake: Option<oneshot::Receiver<()>>,
}

pub(crate) struct Session {
    pub id: SessionId,
    listeners: Mutex<Vec<mpsc::UnboundedSender<Arc<[u8]>>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    next_request: AtomicU64,
    logs: Mutex<(u64, VecDeque<StreamLog>)>,
    /// Notifications received (`method`, or `method:requestId` for cancellations).
    seen: Mutex<Vec<String>>,
}

impl Session {
    /// A session no client names: what 2026-07-28 (sessionless) requests run in.
    pub fn unregistered() -> Arc<Session> {
        Arc::new(Session::new([b'-'; SESSION_ID_LEN]))
    }

    fn new(id: SessionId) -> Self {
        Session {
            id,
            listeners: Mutex::default(),
            pending: Mutex::default(),
            next_request: AtomicU64::new(1),
            logs: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// Records a notification the client sent (kept to the last 64).
    pub fn record(&self, what: String) {
        let mut seen = lock(&self.seen);
        if seen.len() == 64 {
            seen.remove(0);
        }
        seen.push(what);
    }

    pub fn seen(&self) -> Vec<String> {
        lock(&self.seen).clone()
    }

    /// Registers a GET stream; the receiver ends when the session is dropped.
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Arc<[u8]>> {
        let (tx, rx) = mpsc::unbounded();
        lock(&self.listeners).push(tx);
        rx
    }

    /// Sends `msg` on this session's GET streams, forgetting closed ones.
    pub fn notify(&self, msg: &Arc<[u8]>) {
        lock(&self.listeners).retain(|tx| tx.unbounded_send(msg.clone()).is_ok());
    }

    /// Starts a server→client request: its id (`"srv-N"`, JSON-encoded) and where the
    /// client's response body will arrive.
    pub fn ask(&self) -> (u64, String, oneshot::Receiver<Vec<u8>>) {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(n, tx);
        (n, format!("\"{REQUEST_ID_PREFIX}{n}\""), rx)
    }

    /// Gives up on a server→client request.
    pub fn forget(&self, n: u64) {
        lock(&self.pending).remove(&n);
    }

    /// Routes a client's JSON-RPC response (the whole body) to the request it answers.
    /// Returns whether one was waiting.
    pub fn answer(&self, id: Raw<'_>, body: &[u8]) -> bool {
        let n = raw_str(id).and_then(|s| s.strip_prefix(REQUEST_ID_PREFIX)?.parse::<u64>().ok());
        let Some(tx) = n.and_then(|n| lock(&self.pending).remove(&n)) else {
            return false;
        };
        tx.send(body.to_vec()).is_ok()
    }

    /// Opens a replay log for a new POST stream and returns the stream's number.
    pub fn open_log(&self) -> u64 {
        let mut logs = lock(&self.logs);
        logs.0 += 1;
        let stream = logs.0;
        if logs.1.len() == LOGGED_STREAMS {
            logs.1.pop_front();
        }
        logs.1.push_back(StreamLog {
            stream,
            events: Vec::new(),
            done: false,
            waiters: Vec::new(),
        });
        stream
    }

    /// Logs event `seq` of `stream`; `last`: it is the final response.
    pub fn log_event(&self, stream: u64, seq: u64, data: &[u8], last: bool) {
        let mut logs = lock(&self.logs);
        let Some(log) = logs.1.iter_mut().find(|l| l.stream == stream) else {
            return;
        };
        log.events.push((seq, data.into()));
        log.done |= last;
        for waiter in log.waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Whether `stream` still has a replay log.
    pub fn has_log(&self, stream: u64) -> bool {
        lock(&self.logs).1.iter().any(|l| l.stream == stream)
    }

    /// The events of `stream` after `after`; `None` when the stream is unknown.
    pub fn replay(&self, stream: u64, after: u64) -> Option<Replayed> {
        let mut logs = lock(&self.logs);
        let log = logs.1.iter_mut().find(|l| l.stream == stream)?;
        let events: Vec<_> = log
            .events
            .iter()
            .filter(|(seq, _)| *seq > after)
            .cloned()
            .collect();
        let wake = (!log.done).then(|| {
            let (tx, rx) = oneshot::channel();
            log.waiters.push(tx);
            rx
        });
        Some(Replayed { events, wake })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_get_remove() {
        let sessions = Sessions::default();
        let s = sessions.create().unwrap();
        assert!(sessions.get(&s.id).is_some());
        assert!(sessions.get(b"short").is_none());
        assert!(sessions.remove(&s.id));
        assert!(!sessions.remove(&s.id));
        assert!(sessions.get(&s.id).is_none());
    }

    #[test]
    fn oldest_sessions_are_evicted() {
        let sessions = Sessions::default();
        let first = sessions.create_bounded(2).unwrap();
        let second = sessions.create_bounded(2).unwrap();
        sessions.remove(&second.id);
        let third = sessions.create_bounded(2).unwrap();
        assert!(
            sessions.get(&first.id).is_some(),
            "room was left by the deleted one"
        );
        let fourth = sessions.create_bounded(2).unwrap();
        assert!(sessions.get(&first.id).is_none());
        assert!(sessions.get(&third.id).is_some() && sessions.get(&fourth.id).is_some());
        for _ in 0..10 {
            sessions.create_bounded(2).unwrap();
        }
        let live = sessions.live.read().unwrap();
        assert_eq!(live.map.len(), 2);
        assert!(live.order.len() <= 4);
    }

    #[test]
    fn answers_reach_the_asker() {
        let s = Session::new([b'a'; SESSION_ID_LEN]);
        let (_, id, mut rx) = s.ask();
        assert_eq!(id, "\"srv-1\"");
        let raw = Raw::new(&id).unwrap();
        assert!(!s.answer(Raw::new("\"srv-9\"").unwrap(), b"x"));
        assert!(s.answer(raw, b"{\"result\":{}}"));
        assert_eq!(rx.try_recv().unwrap().unwrap(), b"{\"result\":{}}");
        assert!(!s.answer(raw, b"again"));
    }

    #[test]
    fn replay_after_cursor_and_wake() {
        let s = Session::new([b'a'; SESSION_ID_LEN]);
        let stream = s.open_log();
        s.log_event(stream, 1, b"one", false);
        let mut r = s.replay(stream, 0).unwrap();
        assert_eq!(r.events.len(), 1);
        let mut wake = r.wake.take().unwrap();
        s.log_event(stream, 2, b"two", true);
        assert_eq!(wake.try_recv().unwrap(), Some(()));
        let r = s.replay(stream, 1).unwrap();
        assert_eq!(&*r.events[0].1, b"two");
        assert!(r.wake.is_none());
        assert!(s.replay(stream + 1, 0).is_none());
    }

    #[test]
    fn listeners_get_notifications_until_dropped() {
        let sessions = Sessions::default();
        let s = sessions.create().unwrap();
        let mut rx = s.listen();
        sessions.notify_all(b"changed");
        assert_eq!(&*rx.try_recv().unwrap(), b"changed");
        sessions.remove(&s.id);
        drop(s);
        assert!(rx.try_recv().unwrap_err().is_closed());
    }
}
