//! The stdio multiplexer, sans-IO: many client sessions share one child process (or one
//! legacy HTTP+SSE connection) that knows nothing of them. This is the bookkeeping and every
//! decision; the actor in the gateway owns the child's pipes and the sessions' channels and
//! does what [`Mux`] says.
//!
//! - Every request the child sees gets a number of ringmux's as its id (and as its progress
//!   token when it has one), so concurrent sessions never collide; answers and progress are
//!   mapped back to the request's own id and token ([`Mux::request`], [`Mux::on_line`]).
//! - What the child sends unprompted goes to the session it can be attributed to: the only
//!   session attached, or the only one with requests in flight. A `list_changed` goes to
//!   every session, `resources/updated` to the sessions that subscribed to its URI.
//! - A server→client request that cannot be attributed is refused to the child; only the
//!   session asked may answer it ([`Mux::send`]).
//! - `ping` from the child is answered here.
//!
//! Numbers: attachments and requests are numbered from 1 by the mux; the child's own
//! `initialize` (id 0) is the actor's.

use std::collections::HashMap;

use crate::error::RpcError;
use crate::jsonrpc::{self, raw_str, span_of, Kind, Message};

/// One session attached to the child.
#[derive(Default)]
struct Attached {
    /// Resource URIs it subscribed to (as the child knows them).
    subscriptions: Vec<String>,
}

/// A request the child has not answered.
struct Pending {
    attach: u64,
    /// The request's id as the session sent it (JSON text).
    id: Box<str>,
    /// Its progress token as the session sent it (JSON text).
    token: Option<Box<str>>,
}

/// The multiplexer's state.
#[derive(Default)]
pub struct Mux {
    attaches: HashMap<u64, Attached>,
    next_attach: u64,
    pending: HashMap<u64, Pending>,
    /// The child's requests to sessions, by id (JSON text) → the session asked.
    asked: HashMap<Box<str>, u64>,
    next_id: u64,
}

/// What to do with one line from the child ([`Mux::on_line`]).
#[derive(Debug, PartialEq, Eq)]
pub enum FromChild {
    /// The answer to request `pending` (now done), with the session's id back in it.
    Answer { pending: u64, message: Vec<u8> },
    /// Progress of request `pending`, with the session's token back in it.
    Progress { pending: u64, message: Vec<u8> },
    /// The line as it is, for these sessions (unprompted: a server→client request, a
    /// notification).
    Sessions(Vec<u64>),
    /// Write this to the child (the answer to its `ping`, or the refusal of a request no
    /// session can be found for).
    Reply(Vec<u8>),
    /// A log message no session can be found for: for ringmux's own log.
    Log,
    /// Nothing to do; why, for a debug log.
    Dropped(&'static str),
    /// Not JSON-RPC.
    Garbage,
}

/// Why [`Mux::request`] sends nothing to the child.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a JSON-RPC request with an id: nothing to answer.
    NotARequest,
    /// The session is not attached (detached, or the child was restarted).
    NotAttached,
}

impl Mux {
    pub fn new() -> Mux {
        Mux {
            next_attach: 1,
            next_id: 1,
            ..Mux::default()
        }
    }

    /// A session joins; its number.
    pub fn attach(&mut self) -> u64 {
        let a = self.next_attach;
        self.next_attach += 1;
        self.attaches.insert(a, Attached::default());
        a
    }

    pub fn is_attached(&self, attach: u64) -> bool {
        self.attaches.contains_key(&attach)
    }

    /// Whether no session is attached.
    pub fn is_empty(&self) -> bool {
        self.attaches.is_empty()
    }

    /// A session leaves: its requests in flight are forgotten (their numbers, for the actor
    /// to drop their channels), and so are the child's requests to it.
    pub fn detach(&mut self, attach: u64) -> Vec<u64> {
        self.attaches.remove(&attach);
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.attach == attach)
            .map(|(n, _)| *n)
            .collect();
        for n in &gone {
            self.pending.remove(n);
        }
        self.asked.retain(|_, a| *a != attach);
        gone
    }

    /// The child is gone: every request in flight fails. Their numbers and the ids the
    /// sessions gave them (JSON text).
    pub fn fail_all(&mut self) -> Vec<(u64, Box<str>)> {
        self.asked.clear();
        self.pending.drain().map(|(n, p)| (n, p.id)).collect()
    }

    /// The requests session `attach` has in flight.
    pub fn in_flight(&self, attach: u64) -> impl Iterator<Item = u64> + '_ {
        self.pending
            .iter()
            .filter(move |(_, p)| p.attach == attach)
            .map(|(n, _)| *n)
    }

    /// A request from session `attach`: its number and the line for the child (the number
    /// as its id and progress token). Subscriptions are noted for `resources/updated`.
    pub fn request(&mut self, attach: u64, body: &[u8]) -> Result<(u64, Vec<u8>), Refused> {
        let msg = jsonrpc::parse(body).map_err(|_| Refused::NotARequest)?;
        let (Kind::Request, Some(id)) = (msg.kind, msg.id) else {
            return Err(Refused::NotARequest);
        };
        let Some(a) = self.attaches.get_mut(&attach) else {
            return Err(Refused::NotAttached);
        };
        if let Some(uri) = msg.params.uri.and_then(raw_str) {
            match &*msg.method {
                "resources/subscribe" if !a.subscriptions.iter().any(|s| *s == uri) => {
                    a.subscriptions.push(uri.into_owned())
                }
                "resources/unsubscribe" => a.subscriptions.retain(|s| *s != uri),
                _ => {}
            }
        }
        let n = self.next_id;
        self.next_id += 1;
        let token = msg.params.meta.as_ref().and_then(|m| m.progress_token);
        let mut spans = vec![span_of(body, id)];
        if let Some(t) = token {
            spans.push(span_of(body, t));
        }
        let line = splice_all(body, &mut spans, n.to_string().as_bytes());
        self.pending.insert(
            n,
            Pending {
                attach,
                id: id.get().into(),
                token: token.map(|t| t.get().into()),
            },
        );
        Ok((n, line))
    }

    /// A notification, or an answer to one of the child's requests, from session `attach`:
    /// the line for the child, if any. Only the session asked may answer; a cancellation
    /// names the request by the child's number for it; `notifications/initialized` is the
    /// actor's to send (once, when the child starts).
    pub fn send(&mut self, attach: u64, body: &[u8]) -> Option<Vec<u8>> {
        let msg = jsonrpc::parse(body).ok()?;
        match msg.kind {
            Kind::Response => {
                let id = msg.id.map(|i| i.get()).unwrap_or_default();
                if self.asked.get(id) != Some(&attach) {
                    return None;
                }
                self.asked.remove(id);
                Some(body.to_vec())
            }
            Kind::Notification => match &*msg.method {
                "notifications/initialized" => None,
                "notifications/cancelled" => {
                    let target = msg.params.request_id?;
                    let (n, _) = self
                        .pending
                        .iter()
                        .find(|(_, p)| p.attach == attach && *p.id == *target.get())?;
                    let mut spans = vec![span_of(body, target)];
                    Some(splice_all(body, &mut spans, n.to_string().as_bytes()))
                }
                _ => Some(body.to_vec()),
            },
            Kind::Request => None,
        }
    }

    /// One line from the child.
    pub fn on_line(&mut self, line: &[u8]) -> FromChild {
        let Ok(msg) = jsonrpc::parse(line) else {
            return FromChild::Garbage;
        };
        match msg.kind {
            Kind::Response => {
                let id = msg.id.expect("responses have ids");
                let number: Option<u64> = id.get().parse().ok();
                let Some((n, p)) = number.and_then(|n| Some((n, self.pending.remove(&n)?))) else {
                    return FromChild::Dropped("answer to no pending request");
                };
                let mut spans = vec![span_of(line, id)];
                FromChild::Answer {
                    pending: n,
                    message: splice_all(line, &mut spans, p.id.as_bytes()),
                }
            }
            Kind::Request => {
                let id = msg.id.expect("requests have ids");
                if msg.method == "ping" {
                    let mut pong = Vec::with_capacity(48);
                    jsonrpc::write_result(&mut pong, id, b"{}");
                    return FromChild::Reply(pong);
                }
                match self.attribution() {
                    Some(a) => {
                        self.asked.insert(id.get().into(), a);
                        FromChild::Sessions(vec![a])
                    }
                    None => {
                        let mut refusal = Vec::with_capacity(160);
                        jsonrpc::write_error(
                            &mut refusal,
                            Some(id),
                            &RpcError::Internal(format!(
                                "ringmux cannot tell which client session {} is for: this shared stdio backend serves several (use mode: per_session)",
                                msg.method
                            )),
                        );
                        FromChild::Reply(refusal)
                    }
                }
            }
            Kind::Notification => self.notification(&msg, line),
        }
    }

    fn notification(&mut self, msg: &Message<'_>, line: &[u8]) -> FromChild {
        let method = &*msg.method;
        match method {
            "notifications/progress" => {
                let Some(token) = msg.params.progress_token else {
                    return FromChild::Dropped("progress without a token");
                };
                let Some((n, p)) = token
                    .get()
                    .parse()
                    .ok()
                    .and_then(|n| Some((n, self.pending.get(&n)?)))
                else {
                    return FromChild::Dropped("progress of no pending request");
                };
                let original = p.token.as_deref().unwrap_or(&p.id);
                let mut spans = vec![span_of(line, token)];
                FromChild::Progress {
                    pending: n,
                    message: splice_all(line, &mut spans, original.as_bytes()),
                }
            }
            "notifications/cancelled" => {
                let asked = msg
                    .params
                    .request_id
                    .and_then(|id| self.asked.remove(id.get()));
                match asked {
                    Some(a) => FromChild::Sessions(vec![a]),
                    None => FromChild::Dropped("cancellation of nothing a session was asked"),
                }
            }
            "notifications/resources/updated" => {
                let uri = msg.params.uri.and_then(raw_str);
                let only = self.attaches.len() == 1;
                FromChild::Sessions(
                    self.attaches
                        .iter()
                        .filter(|(_, a)| {
                            only || uri
                                .as_deref()
                                .is_some_and(|u| a.subscriptions.iter().any(|s| s == u))
                        })
                        .map(|(k, _)| *k)
                        .collect(),
                )
            }
            m if m.ends_with("/list_changed") => {
                FromChild::Sessions(self.attaches.keys().copied().collect())
            }
            _ => match self.attribution() {
                Some(a) => FromChild::Sessions(vec![a]),
                None if method == "notifications/message" => FromChild::Log,
                None => FromChild::Dropped("notification with no session to go to"),
            },
        }
    }

    /// The session an unprompted message belongs to: the only one attached, else the only
    /// one with requests in flight.
    fn attribution(&self) -> Option<u64> {
        if self.attaches.len() == 1 {
            return self.attaches.keys().next().copied();
        }
        let mut owners = self.pending.values().map(|p| p.attach);
        let first = owners.next()?;
        owners.all(|a| a == first).then_some(first)
    }
}

/// `body` with every span in `spans` (one or two) replaced by `with`.
fn splice_all(body: &[u8], spans: &mut [std::ops::Range<usize>], with: &[u8]) -> Vec<u8> {
    let mut edits = [(0..0, with), (0..0, with)];
    for (e, s) in edits.iter_mut().zip(spans.iter()) {
        e.0 = s.clone();
    }
    let n = spans.len().min(2);
    let mut out = Vec::with_capacity(body.len() + n * with.len());
    jsonrpc::splice_all(&mut out, body, &mut edits[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(id: &str, method: &str, params: &str) -> Vec<u8> {
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
            .into_bytes()
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn ids_and_tokens_are_renumbered_and_mapped_back() {
        let mut m = Mux::new();
        let a = m.attach();
        let b = m.attach();
        let (n1, line1) = m
            .request(
                a,
                &req("\"x\"", "tools/call", r#"{"_meta":{"progressToken":"t"}}"#),
            )
            .unwrap();
        let (n2, line2) = m.request(b, &req("\"x\"", "tools/call", "{}")).unwrap();
        assert_ne!(n1, n2, "two sessions' equal ids become different numbers");
        assert_eq!(
            text(&line1),
            format!(
                r#"{{"jsonrpc":"2.0","id":{n1},"method":"tools/call","params":{{"_meta":{{"progressToken":{n1}}}}}}}"#
            )
        );
        assert!(text(&line2).contains(&format!("\"id\":{n2}")));
        let progress = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{n1},"progress":1}}}}"#
        );
        assert_eq!(
            m.on_line(progress.as_bytes()),
            FromChild::Progress {
                pending: n1,
                message: br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1}}"#.to_vec()
            }
        );
        let answer = format!(r#"{{"jsonrpc":"2.0","id":{n2},"result":{{}}}}"#);
        assert_eq!(
            m.on_line(answer.as_bytes()),
            FromChild::Answer {
                pending: n2,
                message: br#"{"jsonrpc":"2.0","id":"x","result":{}}"#.to_vec()
            }
        );
        assert_eq!(
            m.on_line(answer.as_bytes()),
            FromChild::Dropped("answer to no pending request"),
            "answered once"
        );
        assert_eq!(m.in_flight(a).collect::<Vec<_>>(), vec![n1]);
        assert_eq!(m.in_flight(b).count(), 0);
    }

    #[test]
    fn unprompted_requests_go_to_the_one_session_and_only_it_may_answer() {
        let mut m = Mux::new();
        let a = m.attach();
        let b = m.attach();
        let ask = br#"{"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage","params":{}}"#;
        // Two sessions, none busy: nobody to ask.
        match m.on_line(ask) {
            FromChild::Reply(r) => assert!(text(&r).contains("cannot tell which client session")),
            other => panic!("{other:?}"),
        }
        m.request(b, &req("1", "tools/call", "{}")).unwrap();
        assert_eq!(m.on_line(ask), FromChild::Sessions(vec![b]));
        let answer = br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;
        assert_eq!(m.send(a, answer), None, "a was not asked");
        assert_eq!(m.send(b, answer).as_deref(), Some(&answer[..]));
        assert_eq!(m.send(b, answer), None, "answered once");
        let ping = br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
        assert_eq!(
            m.on_line(ping),
            FromChild::Reply(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#.to_vec())
        );
    }

    #[test]
    fn notifications_reach_the_sessions_they_concern() {
        let mut m = Mux::new();
        let a = m.attach();
        let b = m.attach();
        m.request(
            a,
            &req("1", "resources/subscribe", r#"{"uri":"file:///x"}"#),
        )
        .unwrap();
        let updated =
            br#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x"}}"#;
        assert_eq!(m.on_line(updated), FromChild::Sessions(vec![a]));
        m.request(
            a,
            &req("2", "resources/unsubscribe", r#"{"uri":"file:///x"}"#),
        )
        .unwrap();
        assert_eq!(m.on_line(updated), FromChild::Sessions(vec![]));
        let changed = br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#;
        let FromChild::Sessions(mut all) = m.on_line(changed) else {
            panic!()
        };
        all.sort();
        assert_eq!(all, vec![a, b]);
        // Both a's requests are in flight: its log messages are its.
        let log = br#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#;
        assert_eq!(m.on_line(log), FromChild::Sessions(vec![a]));
        m.request(b, &req("3", "tools/call", "{}")).unwrap();
        assert_eq!(m.on_line(log), FromChild::Log);
        assert_eq!(m.on_line(b"not json"), FromChild::Garbage);
    }

    #[test]
    fn cancellations_name_the_childs_number_and_detach_forgets() {
        let mut m = Mux::new();
        let a = m.attach();
        let b = m.attach();
        let (n, _) = m.request(a, &req("\"r\"", "tools/call", "{}")).unwrap();
        let cancel =
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r"}}"#;
        assert_eq!(m.send(b, cancel), None, "b has no request r");
        assert_eq!(
            text(&m.send(a, cancel).unwrap()),
            format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{n}}}}}"#
            )
        );
        assert_eq!(
            m.send(
                a,
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
            ),
            None
        );
        assert_eq!(m.detach(a), vec![n]);
        assert!(!m.is_attached(a));
        assert_eq!(
            m.request(a, &req("1", "tools/call", "{}")),
            Err(Refused::NotAttached)
        );
        assert_eq!(
            m.request(b, br#"{"jsonrpc":"2.0","method":"x"}"#),
            Err(Refused::NotARequest)
        );
        let (n2, _) = m.request(b, &req("\"q\"", "tools/call", "{}")).unwrap();
        assert_eq!(m.fail_all(), vec![(n2, "\"q\"".into())]);
        assert_eq!(m.in_flight(b).count(), 0);
    }
}
