//! A client request as a front made it ([`Request`]), and its owned form for the hop to the
//! owner shard: who is calling, in which era, which session, what, and the body. The pipeline
//! ([`crate::pipeline`]) reads nothing else.

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// Nobody in particular (no credential, where `auth.mode` allows that, or no `auth`).
    Anonymous,
    /// Named by the configured `modern.principal_header` (trusted as given: set it only
    /// behind a proxy that authenticates clients).
    Header(Box<str>),
    /// The subject of a verified JWT access token.
    User(std::sync::Arc<Identity>),
    /// The name of a configured API key.
    Key(std::sync::Arc<str>),
    /// A client certificate verified against `tls.client_ca`.
    Cert(std::sync::Arc<CertIdentity>),
}

/// A verified client certificate. Who it is: its issuer's and its subject's names as encoded
/// in the certificate (and its subjectAltNames when the subject is empty), by their SHA-256;
/// not the subject's text, which two different names can share (a comma inside a value, an
/// unprintable name, an empty subject, one subject from two CAs).
#[derive(Debug)]
pub struct CertIdentity {
    /// SHA-256 of issuer DER, subject DER and the subjectAltNames, as 64 hex digits.
    pub key: Box<str>,
    /// The subject as text, for logs and rules, e.g. `CN=alice, O=Example`.
    pub subject: Box<str>,
    /// Its subjectAltNames (`dns:`, `uri:`, `email:`), for authorization rules.
    pub names: Box<[Box<str>]>,
}

impl PartialEq for CertIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for CertIdentity {}

impl std::hash::Hash for CertIdentity {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.key.hash(h);
    }
}

/// A verified token's subject. Two tokens of the same issuer and subject are the same
/// principal whatever their scopes (a step-up keeps the session).
#[derive(Debug)]
pub struct Identity {
    pub issuer: Box<str>,
    pub subject: Box<str>,
    /// Space-separated.
    pub scopes: Box<str>,
    /// Every claim of the token, for authorization rules (`principal.claims`).
    pub claims: serde_json::Value,
}

impl PartialEq for Identity {
    fn eq(&self, other: &Self) -> bool {
        self.issuer == other.issuer && self.subject == other.subject
    }
}

impl Eq for Identity {}

impl std::hash::Hash for Identity {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.issuer.hash(h);
        self.subject.hash(h);
    }
}

impl Principal {
    /// Whether `other` is this very principal, its claims included (two tokens of one subject
    /// are one principal for sessions, but may carry different claims for authorization).
    pub fn same(&self, other: &Principal) -> bool {
        match (self, other) {
            (Principal::User(a), Principal::User(b)) => std::sync::Arc::ptr_eq(a, b),
            _ => self == other,
        }
    }

    /// The principal as text, for keys and logs; two different principals never give the
    /// same text (each kind has its own tag, and an issuer its length): `anonymous`,
    /// `header:<value>`, `jwt:<len(iss)>:<iss><sub>`, `key:<name>`, `cert:<digest>`.
    /// [`Principal::id`] written into `out`.
    pub fn write_id(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self {
            Principal::Anonymous => write!(out, "anonymous"),
            Principal::Header(v) => write!(out, "header:{v}"),
            Principal::User(u) => write!(out, "jwt:{}:{}{}", u.issuer.len(), u.issuer, u.subject),
            Principal::Key(k) => write!(out, "key:{k}"),
            Principal::Cert(c) => write!(out, "cert:{}", c.key),
        };
    }

    pub fn id(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Principal::Anonymous => "anonymous".into(),
            Principal::Header(v) => format!("header:{v}").into(),
            Principal::User(u) => {
                format!("jwt:{}:{}{}", u.issuer.len(), u.issuer, u.subject).into()
            }
            Principal::Key(k) => format!("key:{k}").into(),
            Principal::Cert(c) => format!("cert:{}", c.key).into(),
        }
    }
}

/// What a request carried that authorization rules may read (the `request` variable):
/// gathered by the front only when a rule of its endpoint reads `request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The client's address (the TCP peer's: a proxy in front is the client here).
    pub address: Option<std::net::IpAddr>,
    /// The endpoint's path.
    pub path: Box<str>,
    /// (lowercase name, value) of each header `authz.request_headers` names that it carried;
    /// a header sent more than once has its values joined with `, ` (RFC 9110 §5.3).
    pub headers: Vec<(Box<str>, Box<str>)>,
}

impl Facts {
    /// Gathers the facts of a request: `head` its head's bytes, `names` the headers to keep.
    pub fn gather(
        head: &[u8],
        names: &[String],
        address: Option<std::net::IpAddr>,
        path: &str,
    ) -> Facts {
        let mut headers = Vec::new();
        for name in names {
            let mut value: Option<String> = None;
            for v in ringmux_core::http::header_values(head, name.as_bytes()) {
                let v = String::from_utf8_lossy(v);
                match &mut value {
                    None => value = Some(v.into_owned()),
                    Some(all) => {
                        all.push_str(", ");
                        all.push_str(&v);
                    }
                }
            }
            if let Some(v) = value {
                headers.push((name.as_str().into(), v.into()));
            }
        }
        Facts {
            address,
            path: path.into(),
            headers,
        }
    }

    /// The `request` variable.
    pub fn to_json(&self) -> serde_json::Value {
        let headers: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(&**v)))
            .collect();
        serde_json::json!({
            "address": self.address.map(|a| a.to_canonical().to_string()).unwrap_or_default(),
            "path": &*self.path,
            "headers": headers,
        })
    }
}

/// The client's protocol era and transport, as its front saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEra {
    /// Streamable HTTP, 2025-03-26 … 2025-11-25.
    Stateful,
    /// The legacy HTTP+SSE transport (2024-11-05): answers go on the session's one stream.
    Legacy,
    /// 2026-07-28: no session of its own; `session` is its principal session's key.
    Sessionless,
}

impl ClientEra {
    /// Which era's statuses its errors carry.
    pub fn error_era(self) -> ringmux_core::error::ErrorEra {
        match self {
            ClientEra::Sessionless => ringmux_core::error::ErrorEra::Sessionless,
            ClientEra::Stateful | ClientEra::Legacy => ringmux_core::error::ErrorEra::Stateful,
        }
    }
}

/// What the client asked of the session, at the HTTP level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// One JSON-RPC message (the body); `sse`: the client accepts an event stream in answer.
    Message { sse: bool },
    /// Open the session's GET stream, or resume one after `last_event_id`.
    Get { last_event_id: Option<Box<str>> },
    /// End the session.
    Delete,
}

/// A message its front had to parse already (the 2026-07-28 front checks the body against
/// the routing headers): the pipeline takes it as it is rather than parsing again.
pub struct Parsed<'a> {
    pub msg: ringmux_core::jsonrpc::Message<'a>,
    pub env: ringmux_core::modern::EnvelopeParams<'a>,
}

/// One client request, as a front made it: nothing else is read by the stages.
pub struct Request<'a> {
    pub principal: Principal,
    pub era: ClientEra,
    /// The session it targets (`Mcp-Session-Id`, a legacy `sessionId`, or a 2026-07-28
    /// principal session's key); `None` for `initialize`.
    pub session: Option<&'a str>,
    pub op: Op,
    pub body: &'a [u8],
    /// `body` parsed, when the front parsed it (not carried across a hop: the owner shard
    /// parses it again).
    pub parsed: Option<&'a Parsed<'a>>,
    /// The `Authorization` header's value, for stage 2; `None` once `principal` is the
    /// authenticated one (after a hop, or when the front authenticated already).
    pub credential: Credential<'a>,
    /// The endpoint it came to: 0 the main one, else a virtual server (`routes:`).
    pub route: u8,
    /// What rules may read of it (`None`: no rule of its endpoint reads `request`).
    pub facts: Option<std::sync::Arc<Facts>>,
    /// The client's `traceparent` header (read only with `traces:`).
    pub trace: Option<ringmux_core::trace::Incoming>,
}

/// What a request presents to authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// Not authenticated yet: the `Authorization` header's value, if any.
    Header(Option<&'a [u8]>),
    /// `principal` is the authenticated one already.
    Done,
}

/// A [`Request`] that owns its parts, to cross to the owner shard.
pub struct OwnedRequest {
    pub principal: Principal,
    pub era: ClientEra,
    pub session: Option<Box<str>>,
    pub op: Op,
    pub body: Vec<u8>,
    pub route: u8,
    /// Its route's key ([`crate::shard::route_key`], of its path): the owner shard may run
    /// another config generation, whose index for the route differs.
    pub route_key: u64,
    pub facts: Option<std::sync::Arc<Facts>>,
    pub trace: Option<ringmux_core::trace::Incoming>,
}

impl Request<'_> {
    pub fn to_owned(&self) -> OwnedRequest {
        let mut body = crate::bufs::take_with(self.body.len());
        body.extend_from_slice(self.body);
        OwnedRequest {
            principal: self.principal.clone(),
            era: self.era,
            session: self.session.map(Box::from),
            op: self.op.clone(),
            body,
            route: self.route,
            route_key: 0,
            facts: self.facts.clone(),
            trace: self.trace.clone(),
        }
    }
}

impl OwnedRequest {
    pub fn borrow(&self) -> Request<'_> {
        Request {
            principal: self.principal.clone(),
            era: self.era,
            session: self.session.as_deref(),
            op: self.op.clone(),
            body: &self.body,
            parsed: None,
            credential: Credential::Done,
            route: self.route,
            facts: self.facts.clone(),
            trace: self.trace.clone(),
        }
    }
}
