//! Authentication, the pipeline's stage 1 ([`crate::pipeline::authenticate`]): who is calling,
//! from the request's `Authorization: Bearer` credential.
//!
//! - A token with a JWT's shape is verified with the configured JWK Set (`auth.jwt`): the
//!   algorithm comes from the key, never from the token (a key's `alg`, else its type: RSA
//!   RS256, EC P-256 ES256 / P-384 ES384, OKP EdDSA); symmetric (`oct`) and encryption keys
//!   are skipped when loading, so no token can be verified with a public key as an HMAC
//!   secret, and `none` never verifies. `iss`, `aud` (the resource, RFC 8707), `exp` and a
//!   non-empty `sub` are required, `nbf` checked, both times with `leeway_ms` of skew.
//! - Anything else is an API key: its SHA-256 looked up among the configured hashes, compared
//!   in constant time.
//! - A credential that verified is cached on the shard until it expires (a JWT's `exp`), so a
//!   session's later requests cost a hash lookup, not a signature check. The cache is bounded
//!   ([`MAX_CACHED`]) and emptied when the shard gets a new key set.
//! - The keys are read (or fetched) once for every shard ([`start_keys`]); a `jwks_url` is
//!   refreshed by a thread of its own, and each shard takes the new set over a channel.
//!
//! Refusals carry RFC 6750 challenges ([`ringmux_core::auth::Refusal`]) pointing at the
//! RFC 9728 protected-resource metadata ([`Authenticator::metadata`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ringmux_core::auth::{self as credential, Refusal};
use ringmux_core::config::{Auth, AuthMode, Jwks};

use crate::reply::Reply;
use crate::request::{Identity, Principal};

/// Verified credentials kept per shard; past this the expired ones are dropped, and if that
/// frees nothing the cache starts over.
pub const MAX_CACHED: usize = 10_000;

/// One shard's authenticator.
pub struct Authenticator {
    cfg: Auth,
    /// The issuer's keys: loaded at start, or the latest set the JWKS fetcher sent.
    keys: RefCell<Keys>,
    /// From the JWKS fetcher (`jwks_url`), when there is one. (Handed to the next
    /// generation's authenticator by a reload: [`Authenticator::reconfigured`].)
    feed: RefCell<Option<KeyFeed>>,
    /// SHA-256 of each API key → its principal.
    api_keys: Vec<([u8; 32], Principal)>,
    /// Keyed by the xxh3 of the credential's bytes (one pass; std's SipHash over a 700-byte
    /// token measured about 0.3 µs of the lookup), the bytes compared on a hit.
    cache: RefCell<HashMap<u64, Cached, BuildHasherDefault<crate::prehashed::Prehashed>>>,
    /// `scope="…"` of the challenges: the required scopes, else the supported ones.
    scope: String,
}

/// A verified JWK Set, shared by the shards (each holds the latest it was sent).
pub type Keys = Arc<Vec<Key>>;

/// A shard's end of the key feed ([`start_keys`]).
pub struct KeyFeed {
    updates: mpsc::Receiver<Keys>,
    ask: mpsc::SyncSender<()>,
}

pub struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

struct Cached {
    credential: Box<[u8]>,
    principal: Principal,
    /// Unix seconds after which it must be verified again.
    expires: u64,
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    /// Required (RFC 9068): two tokens without one would be the same principal.
    sub: String,
    exp: u64,
    /// RFC 8693 / 9068: space-separated.
    #[serde(default)]
    scope: Option<String>,
    /// Some issuers use this instead: a list, or (Azure AD) a space-separated string.
    #[serde(default)]
    scp: Option<Scp>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Scp {
    List(Vec<String>),
    Text(String),
}

impl Authenticator {
    /// One shard's authenticator; the issuer's keys come through `feed` ([`start_keys`]: read
    /// once for every shard, or fetched).
    pub fn new(cfg: &Auth, feed: Option<KeyFeed>) -> Authenticator {
        let api_keys = cfg
            .api_keys
            .iter()
            .map(|k| (k.sha256, Principal::Key(Arc::from(k.name.as_str()))))
            .collect();
        let scope = if cfg.required_scopes.is_empty() {
            cfg.scopes_supported.join(" ")
        } else {
            cfg.required_scopes.join(" ")
        };
        Authenticator {
            cfg: cfg.clone(),
            keys: RefCell::new(Arc::new(Vec::new())),
            feed: RefCell::new(feed),
            api_keys,
            cache: RefCell::new(HashMap::default()),
            scope,
        }
    }

    /// The next generation's authenticator for `cfg` (a reload: [`crate::reload`]), whose
    /// `jwt:` is this one's or none. With this one's, it takes over the issuer's keys and
    /// their feed (this one keeps verifying with the keys it has, for requests still
    /// running); with none, it has no keys and accepts no token. Its cache of verified
    /// credentials starts empty, since keys, scopes or API keys may differ.
    pub fn reconfigured(&self, cfg: &Auth) -> Authenticator {
        if cfg.jwt.is_none() {
            // The issuer was dropped: its tokens stop verifying now (no keys, no feed).
            return Authenticator::new(cfg, None);
        }
        let mut next = Authenticator::new(cfg, self.feed.borrow_mut().take());
        next.keys = RefCell::new(self.keys.borrow().clone());
        next
    }

    /// The `auth:` block it was made from.
    pub fn config(&self) -> &Auth {
        &self.cfg
    }

    /// Who presents `header` (the `Authorization` value) at Unix time `now`: `Ok(None)` when
    /// nobody in particular (no credential, where the mode allows it).
    pub fn authenticate(
        &self,
        header: Option<&[u8]>,
        now: u64,
    ) -> Result<Option<Principal>, Refusal> {
        let Some(value) = header else {
            return match self.cfg.mode {
                AuthMode::Strict => Err(Refusal::Missing),
                AuthMode::Optional | AuthMode::Permissive => Ok(None),
            };
        };
        let verified = match credential::bearer(value) {
            Ok(token) => self.verify(token, now),
            Err(_) => Err(Refusal::BadRequest),
        };
        match verified {
            Ok(p) => Ok(Some(p)),
            Err(Refusal::InsufficientScope) => Err(Refusal::InsufficientScope),
            Err(why) if self.cfg.mode == AuthMode::Permissive => {
                tracing::debug!(
                    ?why,
                    "credential not accepted; anonymous (auth.mode: permissive)"
                );
                Ok(None)
            }
            Err(why) => Err(why),
        }
    }

    fn verify(&self, token: &[u8], now: u64) -> Result<Principal, Refusal> {
        let key = cache_key(token);
        if let Some(c) = self.cache.borrow().get(&key) {
            if c.expires > now && *c.credential == *token {
                return self.with_scopes(c.principal.clone());
            }
        }
        // Not seen before: checked whole, then verified.
        if !credential::is_b64token(token) {
            return Err(Refusal::BadRequest);
        }
        let (principal, expires) = if credential::looks_like_jwt(token) {
            // Without `jwt:` no token verifies (an API key never has a JWT's shape).
            if self.cfg.jwt.is_none() {
                return Err(Refusal::Invalid);
            }
            self.verify_jwt(token)?
        } else {
            (self.api_key(token)?, u64::MAX)
        };
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, c| c.expires > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                credential: token.into(),
                principal: principal.clone(),
                expires,
            },
        );
        drop(cache);
        self.with_scopes(principal)
    }

    fn verify_jwt(&self, token: &[u8]) -> Result<(Principal, u64), Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Invalid)?;
        if let Some(feed) = &*self.feed.borrow() {
            let mut changed = false;
            while let Ok(keys) = feed.updates.try_recv() {
                *self.keys.borrow_mut() = keys;
                changed = true;
            }
            if changed {
                // A key the issuer withdrew (compromised, say) stops verifying now, not at
                // its tokens' expiry.
                self.cache.borrow_mut().clear();
            }
        }
        let keys = self.keys.borrow().clone();
        // The token's kid picks the key; its alg must be the key's (checked by `decode`).
        let found = keys
            .iter()
            .find(|k| k.kid.is_some() && k.kid == header.kid)
            .or_else(|| match header.kid {
                None if keys.len() == 1 => keys.first(),
                _ => None,
            });
        let Some(key) = found else {
            // Perhaps the issuer rotated its keys: the fetcher looks (rate-limited).
            if let Some(feed) = &*self.feed.borrow() {
                let _ = feed.ask.try_send(());
            }
            return Err(Refusal::Invalid);
        };
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &key.validation)
            .map_err(|e| {
                tracing::debug!("token refused: {e}");
                Refusal::Invalid
            })?;
        let claims = data.claims;
        let c = <Claims as serde::Deserialize>::deserialize(&claims).map_err(|e| {
            tracing::debug!("token refused: {e}");
            Refusal::Invalid
        })?;
        let scopes = match (c.scope, c.scp) {
            (Some(s), _) | (None, Some(Scp::Text(s))) => s,
            (None, Some(Scp::List(list))) => list.join(" "),
            (None, None) => String::new(),
        };
        if c.sub.is_empty() {
            return Err(Refusal::Invalid);
        }
        let identity = Identity {
            issuer: c.iss.into(),
            subject: c.sub.into(),
            scopes: scopes.into(),
            claims,
        };
        Ok((Principal::User(Arc::new(identity)), c.exp))
    }

    fn api_key(&self, token: &[u8]) -> Result<Principal, Refusal> {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        let mut found = None;
        // Every configured hash is compared, in constant time.
        for (hash, principal) in &self.api_keys {
            if aws_lc_rs::constant_time::verify_slices_are_equal(hash, digest.as_ref()).is_ok() {
                found = Some(principal.clone());
            }
        }
        found.ok_or(Refusal::Invalid)
    }

    /// A token's principal if it carries the required scopes (API keys are trusted by the
    /// configuration: scopes are an OAuth token's).
    fn with_scopes(&self, p: Principal) -> Result<Principal, Refusal> {
        if let Principal::User(id) = &p {
            let has = |s: &String| id.scopes.split(' ').any(|t| t == s);
            if !self.cfg.required_scopes.iter().all(has) {
                return Err(Refusal::InsufficientScope);
            }
        }
        Ok(p)
    }

    /// The answer to a refused request: its status, the `WWW-Authenticate` challenge, and an
    /// OAuth error body (RFC 6750 §3).
    pub fn refuse(&self, why: Refusal) -> Reply {
        let (error, description) = match why {
            Refusal::Missing => (
                "invalid_request",
                "this endpoint needs a bearer token or API key",
            ),
            Refusal::Invalid => ("invalid_token", "the token or key is not valid here"),
            Refusal::BadRequest => (
                "invalid_request",
                "the Authorization header is not `Bearer <token>`",
            ),
            Refusal::InsufficientScope => (
                "insufficient_scope",
                "the token lacks a scope this endpoint requires",
            ),
        };
        let body = serde_json::json!({"error": error, "error_description": description});
        Reply::Challenge {
            status: why.status(),
            www_authenticate: why.challenge(&self.cfg.metadata_url, &self.scope).into(),
            body: body.to_string().into_bytes(),
        }
    }

    /// The path of the protected-resource metadata (RFC 9728 §3.1: the resource's path after
    /// `/.well-known/oauth-protected-resource`).
    pub fn metadata_path(&self) -> &str {
        &self.cfg.metadata_path
    }

    /// The authorization-server metadata ringmux serves for its provider, if configured: its
    /// path, and the document.
    pub fn server_metadata(&self, path: &[u8]) -> Option<Reply> {
        let (at, doc) = self.cfg.server_metadata.as_ref()?;
        (path == at.as_bytes()).then(|| Reply::Json {
            status: 200,
            body: doc.as_bytes().to_vec(),
            session: None,
        })
    }

    /// The protected-resource metadata document.
    pub fn metadata(&self) -> Reply {
        let doc = serde_json::json!({
            "resource": self.cfg.resource,
            "authorization_servers": self.cfg.authorization_servers,
            "scopes_supported": self.cfg.scopes_supported,
            "bearer_methods_supported": ["header"],
        });
        Reply::Json {
            status: 200,
            body: doc.to_string().into_bytes(),
            session: None,
        }
    }
}

/// The keys of an inline or file JWK Set (read now); `None` for a URL (fetched by
/// [`start_keys`]) or without `jwt`. What `ringmux check` and the start check.
pub fn load_keys(cfg: &Auth) -> Result<Option<Vec<Key>>, String> {
    Ok(match cfg.jwt.as_ref().map(|j| (j, &j.jwks)) {
        None | Some((_, Jwks::Url { .. })) => None,
        Some((jwt, Jwks::Inline(text))) => Some(keys_from(text, jwt)?),
        Some((jwt, Jwks::File(p))) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("auth.jwt.jwks_file {}: {e}", p.display()))?;
            Some(keys_from(&text, jwt)?)
        }
    })
}

/// The keys of a JWK Set's JSON text, each with the validation it verifies tokens by.
fn keys_from(text: &str, jwt: &ringmux_core::config::Jwt) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("auth.jwt: JWK Set: {e}"))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    let mut skipped = Vec::new();
    for jwk in &set.keys {
        // Issuers publish encryption keys beside their signing keys, and keys of types
        // ringmux does not verify with: those are skipped, not fatal.
        let signing = !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption));
        let Some((alg, key)) = algorithm_of(jwk)
            .filter(|_| signing)
            .and_then(|alg| Some((alg, DecodingKey::from_jwk(jwk).ok()?)))
        else {
            skipped.push(jwk.common.key_id.clone().unwrap_or_default());
            continue;
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&jwt.issuer]);
        validation.set_audience(&[&jwt.audience]);
        validation.leeway = jwt.leeway.as_secs();
        validation.validate_nbf = true;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .iter()
            .map(|c| c.to_string())
            .collect();
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            key,
            validation,
        });
    }
    if keys.is_empty() {
        return Err(format!(
            "auth.jwt: the JWK Set has no public signing key ringmux verifies with (RSA, EC P-256/P-384, Ed25519); skipped: {skipped:?}"
        ));
    }
    if !skipped.is_empty() {
        tracing::warn!(
            ?skipped,
            "JWK Set: keys that are not signing keys ringmux verifies with were skipped"
        );
    }
    Ok(keys)
}

/// Longest JWK Set accepted from a URL.
const MAX_JWKS: u64 = 1 << 20;
/// Connecting to and reading from the JWKS URL.
const JWKS_TIMEOUT: Duration = Duration::from_secs(10);

/// Every shard's end of the key feed. An inline or file JWK Set is read once, here, and sent
/// to every shard. With `jwks_url`, the set is fetched once now (a failure is logged and the
/// gateway starts with no keys, refusing tokens until a fetch succeeds), then refreshed by a
/// thread of its own every `refresh`, and when a shard meets an unknown `kid` (at most once per
/// `min_refresh`). A fetch that fails keeps the keys the shards have (logged,
/// `ringmux_jwks_refresh_failures_total` on shard 0's metrics). `None` for every shard
/// without `jwt`.
pub fn start_keys(
    cfg: &Auth,
    shards: usize,
    metrics: Arc<crate::metrics::ShardMetrics>,
) -> Result<Vec<Option<KeyFeed>>, String> {
    let Some(jwt) = &cfg.jwt else {
        return Ok((0..shards).map(|_| None).collect());
    };
    // One pending ask is enough: more while a fetch is due add nothing.
    let (ask_tx, ask_rx) = mpsc::sync_channel(1);
    let mut senders = Vec::with_capacity(shards);
    let mut feeds = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        feeds.push(Some(KeyFeed {
            updates: rx,
            ask: ask_tx.clone(),
        }));
    }
    let Jwks::Url {
        url,
        refresh,
        min_refresh,
        ca,
        metadata,
    } = &jwt.jwks
    else {
        let keys = Arc::new(load_keys(cfg)?.expect("an inline or file JWK Set"));
        for s in &senders {
            let _ = s.send(keys.clone());
        }
        return Ok(feeds);
    };
    // For https:// URLs (a discovered `jwks_uri` may be one); an error only when one is used.
    let tls = crate::tls::jwks_client_config(ca.as_deref());
    if url.tls {
        tls.clone()?;
    }
    let fetch = {
        let (url, metadata, jwt) = (url.clone(), metadata.clone(), jwt.clone());
        move |senders: &[mpsc::Sender<Keys>]| match fetch_set(&url, &metadata, &jwt.issuer, &tls)
            .and_then(|t| keys_from(&t, &jwt))
        {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), url = %url.authority, "JWK Set fetched");
                let keys = Arc::new(keys);
                for s in senders {
                    let _ = s.send(keys.clone());
                }
                true
            }
            Err(e) => {
                tracing::warn!("JWK Set not refreshed (the keys held are kept): {e}");
                false
            }
        }
    };
    if !fetch(&senders) {
        metrics.jwks_failures.add(1);
    }
    let (refresh, min_refresh) = (*refresh, *min_refresh);
    let spawned = std::thread::Builder::new()
        .name("ringmux-jwks".into())
        .spawn(move || {
            let mut last = Instant::now();
            loop {
                match ask_rx.recv_timeout(refresh.saturating_sub(last.elapsed())) {
                    Ok(()) => {
                        while ask_rx.try_recv().is_ok() {}
                        // Rate limit: an unknown kid asks at most once per `min_refresh`.
                        std::thread::sleep(min_refresh.saturating_sub(last.elapsed()));
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                last = Instant::now();
                if !fetch(&senders) {
                    metrics.jwks_failures.add(1);
                }
            }
        });
    spawned.map_err(|e| format!("the JWKS refresh thread did not start: {e}"))?;
    Ok(feeds)
}

/// The JWK Set's text: from `url`, or (discovery) from the `jwks_uri` of the first of the
/// issuer's `metadata` documents that answers, which must name `issuer` (RFC 8414 §3.3).
fn fetch_set(
    url: &ringmux_core::config::HttpUrl,
    metadata: &[ringmux_core::config::HttpUrl],
    issuer: &str,
    tls: &Result<Arc<rustls::ClientConfig>, String>,
) -> Result<String, String> {
    let get = |u: &ringmux_core::config::HttpUrl| match u.tls {
        false => fetch_jwks(u, None),
        true => fetch_jwks(u, Some(tls.as_ref().map_err(Clone::clone)?)),
    };
    if metadata.is_empty() {
        return get(url);
    }
    let mut why = String::new();
    for m in metadata {
        let doc = match get(m) {
            Ok(doc) => doc,
            Err(e) => {
                why = format!("{}{}: {e}", m.authority, m.path);
                continue;
            }
        };
        #[derive(serde::Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let found: Metadata = serde_json::from_str(&doc).map_err(|e| {
            format!(
                "{}{}: not authorization server metadata: {e}",
                m.authority, m.path
            )
        })?;
        if found.issuer != issuer {
            return Err(format!(
                "{}{} names issuer {:?}, not {issuer:?}",
                m.authority, m.path, found.issuer
            ));
        }
        let set = ringmux_core::config::parse_http_url(&found.jwks_uri)
            .map_err(|e| format!("jwks_uri {:?}: {e}", found.jwks_uri))?;
        if !ringmux_core::config::fetchable(&set) {
            return Err(format!(
                "jwks_uri {:?} is http:// and not on this machine: keys fetched in the clear could be swapped on the way",
                found.jwks_uri
            ));
        }
        return get(&set);
    }
    Err(format!("no metadata document answered (last: {why})"))
}

/// GETs a JWK Set over HTTP/1.0 (no chunked body to decode), bounded in size and time; over
/// TLS for an `https://` URL (`tls`).
fn fetch_jwks(
    url: &ringmux_core::config::HttpUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {}: {e}", url.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", url.host))?;
    // Connecting, the TLS handshake and the whole answer: one deadline, however slowly the
    // peer trickles (the first fetch runs at start-up, which must not hang).
    let deadline = Instant::now() + JWKS_TIMEOUT;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| "no whole answer within 10 s".to_string())
    };
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, JWKS_TIMEOUT)
        .map_err(|e| format!("connecting to {}: {e}", url.authority))?;
    tcp.set_write_timeout(Some(JWKS_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let socket = tcp.try_clone().map_err(|e| e.to_string())?;
    let mut s: Box<dyn ReadWrite> = match tls {
        None => Box::new(tcp),
        Some(cfg) => {
            let name = crate::tls::server_name(&url.host).map_err(|e| e.to_string())?;
            let mut conn =
                rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| e.to_string())?;
            while conn.is_handshaking() {
                socket
                    .set_read_timeout(Some(left()?))
                    .map_err(|e| e.to_string())?;
                match conn.complete_io(&mut tcp) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("TLS handshake: {e}")),
                }
            }
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
        url.path, url.authority
    );
    s.write_all(request.as_bytes())
        .and_then(|()| s.flush())
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let left = left()?;
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            // A server that closes without close_notify: HTTP/1.0 ends the body at the
            // socket's end anyway, and a cut JWK Set does not parse.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A signal landed on this thread during the read (seen at start-up): read again.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(n) if (buf.len() + n) as u64 > MAX_JWKS + 16 * 1024 => {
                return Err(format!("larger than {MAX_JWKS} bytes"))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
    let head = ringmux_core::http::parse_response(&buf, 16 * 1024)
        .map_err(|e| format!("bad response head: {e:?}"))?
        .ok_or("the response ended in its head")?;
    if head.status != 200 {
        return Err(format!("answered HTTP {}", head.status));
    }
    let body = &buf[head.head_len..];
    if body.len() as u64 > MAX_JWKS {
        return Err(format!("larger than {MAX_JWKS} bytes"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| "not UTF-8".into())
}

/// A socket, plain or TLS.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// A credential's cache key: the hash of its last 64 bytes, seeded with its length. A JWT's
/// end is its signature (an API key is random throughout), so tokens differ there; and a hit is
/// confirmed by comparing the whole credential, so a collision costs a verification, never a
/// wrong principal. Only verified credentials enter the cache, so no one can plant one that
/// collides with another's. (Hashing the whole of a 700-byte token cost 420 instructions a
/// request: bench/scripts/callgrind-call.sh with AUTH=jwt.)
fn cache_key(token: &[u8]) -> u64 {
    let tail = &token[token.len().saturating_sub(64)..];
    xxhash_rust::xxh3::xxh3_64_with_seed(tail, token.len() as u64)
}

/// The algorithm a JWK verifies with: its `alg` when it is an asymmetric signature algorithm,
/// else the one its key type implies. `None`: not a key ringmux verifies with (symmetric,
/// encryption-only, unknown).
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let from_alg = jwk.common.key_algorithm.and_then(|a| match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::RS384 => Some(Algorithm::RS384),
        KeyAlgorithm::RS512 => Some(Algorithm::RS512),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::PS384 => Some(Algorithm::PS384),
        KeyAlgorithm::PS512 => Some(Algorithm::PS512),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        KeyAlgorithm::ES384 => Some(Algorithm::ES384),
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        _ => None,
    });
    match (&jwk.algorithm, from_alg) {
        (AlgorithmParameters::OctetKey(_), _) => None,
        (_, Some(a)) => Some(a),
        (AlgorithmParameters::RSA(_), None) if jwk.common.key_algorithm.is_none() => {
            Some(Algorithm::RS256)
        }
        (AlgorithmParameters::EllipticCurve(p), None) if jwk.common.key_algorithm.is_none() => {
            match p.curve {
                EllipticCurve::P256 => Some(Algorithm::ES256),
                EllipticCurve::P384 => Some(Algorithm::ES384),
                _ => None,
            }
        }
        (AlgorithmParameters::OctetKeyPair(_), None) if jwk.common.key_algorithm.is_none() => {
            Some(Algorithm::EdDSA)
        }
        _ => None,
    }
}

/// The wall clock in Unix seconds (tokens carry their times in it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
