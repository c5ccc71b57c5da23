//! What a 2026-07-28 principal session holds beyond an ordinary session
//! ([`crate::handlers::modern`] serves it): its open `subscriptions/listen` streams, the backend calls
//! parked on the client's input, the backend requests that came outside any call, and whether
//! its backend sessions were first initialized.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use futures_channel::mpsc::{self, UnboundedSender};
use futures_util::future::{abortable, AbortHandle};
use ringmux_core::jsonrpc::{self, raw_str, Message};
use ringmux_core::sse::{self, Event};
use serde_json::value::RawValue;

use crate::backend::upstream::{EventStream, Pool, UpstreamError};
use crate::session::InFlight;

pub(crate) const META_SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

/// What a principal session holds beyond an ordinary session.
pub struct State {
    /// Open `subscriptions/listen` streams.
    pub(crate) listeners: RefCell<Vec<Listener>>,
    /// Backend calls waiting for the client's input, by park number.
    pub(crate) parked: RefCell<HashMap<u64, Parked>>,
    pub(crate) next: Cell<u64>,
    /// Backend requests that came outside any call (backend, message).
    pub(crate) held: RefCell<Vec<(u16, Vec<u8>)>>,
    /// Calls in progress waiting for [`State::hold`].
    pub(crate) held_waiters: Waiters,
    /// Open once the backend sessions were first initialized.
    pub(crate) ready: Cell<bool>,
    pub(crate) ready_waiters: Waiters,
}

/// Tasks of this shard waiting for a condition on a [`State`].
#[derive(Default)]
pub(crate) struct Waiters(RefCell<Vec<Waker>>);

impl Waiters {
    /// Returns once `cond` holds; rechecked each time [`Waiters::wake`] runs.
    pub(crate) async fn until(&self, cond: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if cond() {
                return Poll::Ready(());
            }
            let mut wakers = self.0.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    pub(crate) fn wake(&self) {
        for w in self.0.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

pub(crate) struct Listener {
    /// The listen request's id (the subscription id).
    pub(crate) id: Box<RawValue>,
    /// `relay::list_bit`s of the lists it hears of.
    pub(crate) lists: u8,
    /// Resources it hears `updated` of (as the client knows them).
    pub(crate) uris: Vec<String>,
    pub(crate) tx: UnboundedSender<Vec<u8>>,
}

/// Backend requests waiting for the client's answers.
pub(crate) struct Parked {
    pub(crate) asks: Vec<Ask>,
    /// The backend call that asked (its pool, its stream, its in-flight key). `None`: the asks
    /// came outside any call, and the client's request goes to its backend once they are
    /// answered.
    pub(crate) call: Option<(Rc<Pool>, Feed, InFlight)>,
    pub(crate) expires: Instant,
}

/// A backend call's events, read by a task of their own so that waiting for them can be
/// given up (a call parks) without losing a byte. The reader ends with the feed.
pub(crate) struct Feed {
    pub(crate) rx: mpsc::UnboundedReceiver<Result<Option<Event>, UpstreamError>>,
    pub(crate) reader: AbortHandle,
}

impl Feed {
    pub(crate) fn new(mut events: Box<EventStream>) -> Feed {
        // A parked call's backend may stay quiet as long as the client takes to answer; the
        // pump bounds the waits it makes itself.
        events.wait_forever();
        let (tx, rx) = mpsc::unbounded();
        let (task, reader) = abortable(async move {
            loop {
                match events.next().await {
                    Ok(Some(ev)) => {
                        if tx.unbounded_send(Ok(Some(ev))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        let _ = tx.unbounded_send(Ok(None));
                        events.finish();
                        return;
                    }
                    Err(e) => {
                        let _ = tx.unbounded_send(Err(e));
                        return;
                    }
                }
            }
        });
        monoio::spawn(task);
        Feed { rx, reader }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One backend request put to a sessionless client.
pub(crate) struct Ask {
    /// The `inputRequests` key the client answers under.
    pub(crate) key: String,
    pub(crate) backend: u16,
    /// The id the backend gave it.
    pub(crate) id: Box<RawValue>,
    /// `{"method":…,"params":…}` as the client sees it.
    pub(crate) request: Vec<u8>,
}

impl Ask {
    pub(crate) fn new(backend: &Pool, msg: &Message<'_>, data: &[u8]) -> Option<Ask> {
        let id = msg.id?;
        let key = match raw_str(id) {
            Some(s) => format!("{}#{s}", backend.name()),
            None => format!("{}#{}", backend.name(), id.get()),
        };
        let mut request = Vec::with_capacity(data.len());
        request.extend_from_slice(b"{\"method\":");
        jsonrpc::write_str(&mut request, &msg.method);
        if let Some(p) = serde_json::from_slice::<AskedParams<'_>>(data)
            .ok()
            .and_then(|p| p.params)
        {
            request.extend_from_slice(b",\"params\":");
            request.extend_from_slice(p.get().as_bytes());
        }
        request.push(b'}');
        Some(Ask {
            key,
            backend: backend.index,
            id: id.to_boxed(),
            request,
        })
    }
}

/// Requests a backend sent outside any call, kept for the client's next call.
const MAX_HELD: usize = 16;

impl State {
    pub fn new() -> State {
        State {
            listeners: RefCell::new(Vec::new()),
            parked: RefCell::new(HashMap::new()),
            next: Cell::new(1),
            held: RefCell::new(Vec::new()),
            held_waiters: Waiters::default(),
            ready: Cell::new(false),
            ready_waiters: Waiters::default(),
        }
    }

    pub(crate) fn next(&self) -> u64 {
        let n = self.next.get();
        self.next.set(n + 1);
        n
    }

    /// Lets requests that found the session initializing go on.
    pub fn open(&self) {
        self.ready.set(true);
        self.ready_waiters.wake();
    }

    pub(crate) async fn ready(&self) {
        self.ready_waiters.until(|| self.ready.get()).await
    }

    /// The gateway is shutting down: listen streams get a `retry` hint and end.
    pub fn end_listeners(&self, retry_ms: u64) {
        for l in self.listeners.borrow_mut().drain(..) {
            let _ =
                l.tx.unbounded_send(format!("retry: {retry_ms}\n\n").into_bytes());
        }
    }

    /// Whether a listen stream is open or a call is parked (the session must not expire).
    pub fn busy(&self) -> bool {
        self.listeners.borrow_mut().retain(|l| !l.tx.is_closed());
        !self.listeners.borrow().is_empty() || !self.parked.borrow().is_empty()
    }

    /// Takes the parked calls past their expiry `now` (their backend calls end as they are
    /// dropped; [`crate::handlers::lifecycle::sweep`] tells the backends that asked).
    pub(crate) fn expire(&self, now: Instant) -> Vec<Parked> {
        self.parked
            .borrow_mut()
            .extract_if(|_, p| p.expires <= now)
            .map(|(_, p)| p)
            .collect()
    }

    /// Keeps a backend's request that came outside any call (a stateful backend asking for
    /// roots after its session began, say): the client is asked at its next call.
    pub fn hold(&self, backend: u16, data: &[u8]) {
        let mut held = self.held.borrow_mut();
        if held.len() == MAX_HELD {
            tracing::warn!("too many backend requests waiting for a sessionless client's next call; the oldest is dropped");
            held.remove(0);
        }
        held.push((backend, data.to_vec()));
        drop(held);
        self.held_waiters.wake();
    }

    /// Ready once a backend request is held.
    pub(crate) async fn held_waiting(&self) {
        self.held_waiters
            .until(|| !self.held.borrow().is_empty())
            .await
    }

    /// Tells the listen streams that asked for it: `list` (a `relay::list_bit`) changed, or
    /// resource `uri` was updated.
    pub fn publish(&self, method: &str, list: u8, uri: Option<&str>) {
        let mut listeners = self.listeners.borrow_mut();
        listeners.retain(|l| !l.tx.is_closed());
        for l in listeners.iter() {
            let wanted = match uri {
                Some(u) => l.uris.iter().any(|x| x == u),
                None => l.lists & list != 0,
            };
            if !wanted {
                continue;
            }
            let mut msg = Vec::with_capacity(160);
            msg.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
            jsonrpc::write_str(&mut msg, method);
            msg.extend_from_slice(b",\"params\":{");
            if let Some(u) = uri {
                msg.extend_from_slice(b"\"uri\":");
                jsonrpc::write_str(&mut msg, u);
                msg.push(b',');
            }
            msg.extend_from_slice(b"\"_meta\":{\"");
            msg.extend_from_slice(META_SUBSCRIPTION.as_bytes());
            msg.extend_from_slice(b"\":");
            msg.extend_from_slice(l.id.get().as_bytes());
            msg.extend_from_slice(b"}}}");
            let _ = l.tx.unbounded_send(event(&msg));
        }
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

/// One SSE `message` event carrying `data`.
pub(crate) fn event(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 24);
    sse::write_event(&mut out, None, Some("message"), data);
    out
}

#[derive(serde::Deserialize)]
struct AskedParams<'a> {
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}
