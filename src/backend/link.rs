//! How a shard reaches a backend that child actors drive (stdio children, legacy HTTP+SSE
//! servers): the [`Link`] every pool of such a backend holds, the messages its actor takes
//! ([`ToChild`]), and what comes back ([`Answer`], [`Failure`]). The actor is
//! [`super::stdio`]'s.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use ringmux_core::config::Backend;
use ringmux_core::jsonrpc::{self, Kind};

use crate::metrics::ShardMetrics;

use super::http::{Status, Verb};
use super::process::{STOP_GRACE, TERM_GRACE};
use super::stdio::run;

/// Where the messages of one request, or a session's unprompted ones, go.
pub type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// The way to an actor; `Send`, so any shard can hold one.
pub type Handle = mpsc::UnboundedSender<ToChild>;

pub type Inbox = mpsc::UnboundedReceiver<ToChild>;

/// Messages to an actor.
pub enum ToChild {
    /// A session joins, with its `initialize` request. The reply is its attach number and
    /// the `initialize` response (with the request's id), or why the child is not available.
    Attach {
        init: Vec<u8>,
        reply: oneshot::Sender<Result<(u64, Vec<u8>), String>>,
    },
    /// The session ended.
    Detach { attach: u64 },
    /// A request; its progress, related messages and response go to `to`.
    Request {
        attach: u64,
        body: Vec<u8>,
        to: Outbox,
    },
    /// A notification, or the answer to one of the child's requests.
    Send { attach: u64, body: Vec<u8> },
    /// The session's stream for unprompted messages (replaces an older one).
    Listen { attach: u64, to: Outbox },
    /// The gateway is shutting down: stop the child.
    Shutdown,
}

/// Creates the channel of a shared child's actor.
pub fn channel() -> (Handle, Inbox) {
    mpsc::unbounded()
}

/// One shard's view of a stdio backend: the actor (shared) or how to start one per session,
/// and the shard's backend sessions on it.
pub struct Link {
    backend: Backend,
    metrics: Arc<ShardMetrics>,
    shared: Option<Handle>,
    /// Backend session id (as ringmux numbers them) → (actor, attach number).
    sessions: std::cell::RefCell<HashMap<u64, (Handle, u64)>>,
    next: std::cell::Cell<u64>,
}

/// What [`Link::exchange`] answers.
pub enum Answer {
    /// Nothing but how it went: [`Status::Accepted`] for a notification or an answer,
    /// [`Status::Ok`] for an end, [`Status::SessionGone`] for an attachment the link does not
    /// know (detached, or its actor ended).
    Status(Status),
    /// A session attached (`initialize` answered): the link's key for the attachment (what
    /// the backend session is named by from now on) and the `initialize` response.
    Attached(String, Vec<u8>),
    /// The request's response, when it came first.
    Message(Vec<u8>),
    /// Messages until the response (`first` already arrived), or a session's unprompted
    /// messages (a listen).
    Messages(Option<Vec<u8>>, mpsc::UnboundedReceiver<Vec<u8>>),
}

/// Why an exchange failed.
pub enum Failure {
    Timeout,
    Unavailable(String),
}

impl Link {
    pub fn new(backend: Backend, metrics: Arc<ShardMetrics>, shared: Option<Handle>) -> Link {
        Link {
            backend,
            metrics,
            shared,
            sessions: Default::default(),
            next: std::cell::Cell::new(1),
        }
    }

    /// One exchange: a send without a key attaches (`initialize`); with one it is a request
    /// or a notification; a listen opens the attachment's stream of unprompted messages; an
    /// end detaches.
    pub async fn exchange(
        &self,
        verb: Verb,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, Failure> {
        let Some(key) = key else {
            return match verb {
                Verb::Send => self.attach(body).await,
                // Nothing to listen to or end before an attachment.
                Verb::Listen | Verb::End => Ok(Answer::Status(Status::SessionGone)),
            };
        };
        let key = key.parse::<u64>().ok();
        let Some((handle, attach)) = key.and_then(|k| self.sessions.borrow().get(&k).cloned())
        else {
            return Ok(Answer::Status(Status::SessionGone));
        };
        let key = key.expect("found above");
        let gone = |this: &Self| {
            this.sessions.borrow_mut().remove(&key);
            Ok(Answer::Status(Status::SessionGone))
        };
        match verb {
            Verb::End => {
                self.sessions.borrow_mut().remove(&key);
                let _ = handle.unbounded_send(ToChild::Detach { attach });
                Ok(Answer::Status(Status::Ok))
            }
            Verb::Listen => {
                let (to, rx) = mpsc::unbounded();
                if handle
                    .unbounded_send(ToChild::Listen { attach, to })
                    .is_err()
                {
                    return gone(self);
                }
                Ok(Answer::Messages(None, rx))
            }
            Verb::Send => {
                let is_request = jsonrpc::parse(body).is_ok_and(|m| m.kind == Kind::Request);
                if !is_request {
                    let send = ToChild::Send {
                        attach,
                        body: body.to_vec(),
                    };
                    if handle.unbounded_send(send).is_err() {
                        return gone(self);
                    }
                    return Ok(Answer::Status(Status::Accepted));
                }
                let (to, mut rx) = mpsc::unbounded();
                let req = ToChild::Request {
                    attach,
                    body: body.to_vec(),
                    to,
                };
                if handle.unbounded_send(req).is_err() {
                    return gone(self);
                }
                let first = monoio::time::timeout(self.backend.request_timeout, rx.next())
                    .await
                    .map_err(|_| Failure::Timeout)?
                    .ok_or_else(|| Failure::Unavailable("the child's actor ended".into()))?;
                if jsonrpc::parse(&first).is_ok_and(|m| m.kind == Kind::Response) {
                    Ok(Answer::Message(first))
                } else {
                    Ok(Answer::Messages(Some(first), rx))
                }
            }
        }
    }

    async fn attach(&self, init: &[u8]) -> Result<Answer, Failure> {
        let handle = match &self.shared {
            Some(h) => h.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded();
                monoio::spawn(run(self.backend.clone(), self.metrics.clone(), rx));
                tx
            }
        };
        let (reply, answer) = oneshot::channel();
        let sent = handle.unbounded_send(ToChild::Attach {
            init: init.to_vec(),
            reply,
        });
        if sent.is_err() {
            return Err(Failure::Unavailable("the child's actor ended".into()));
        }
        // Starting a child and its `initialize` are bounded by the request timeout; allow
        // for the stop of a failed attempt on top.
        let limit = self.backend.request_timeout + STOP_GRACE + TERM_GRACE;
        let (attach, response) = match monoio::time::timeout(limit, answer).await {
            Err(_) => return Err(Failure::Timeout),
            Ok(Err(_)) => return Err(Failure::Unavailable("the child's actor ended".into())),
            Ok(Ok(Err(why))) => return Err(Failure::Unavailable(why)),
            Ok(Ok(Ok(attached))) => attached,
        };
        let key = self.next.get();
        self.next.set(key + 1);
        self.sessions.borrow_mut().insert(key, (handle, attach));
        Ok(Answer::Attached(key.to_string(), response))
    }
}

/// One shard's link to `backend` if child actors drive it (stdio, legacy SSE); `shared` is
/// the handle of its shared child, if it has one.
pub fn link_for(
    backend: &Backend,
    metrics: &Arc<ShardMetrics>,
    shared: Option<&Handle>,
) -> Option<Rc<Link>> {
    backend
        .actor_driven()
        .then(|| Rc::new(Link::new(backend.clone(), metrics.clone(), shared.cloned())))
}
