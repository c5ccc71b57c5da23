//! The `auth:` section: who may call, and how they prove it. ringmux is an OAuth 2.0 resource
//! server as the MCP authorization specification asks (RFC 9728 metadata, RFC 8707 audience),
//! and also takes API keys.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{err, ConfigError};

/// `auth:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// `strict`: every request needs a valid credential. `optional`: a request without one is
    /// anonymous, one with an invalid one is refused. `permissive`: an invalid one is
    /// anonymous too (and logged).
    #[serde(default)]
    pub mode: AuthMode,
    /// This endpoint's canonical URI as clients reach it (RFC 8707), e.g.
    /// `https://gw.example.com/mcp`: the audience a token must name, and the `resource` of the
    /// protected-resource metadata.
    pub resource: String,
    /// Authorization servers whose tokens are accepted (the metadata lists them).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes the metadata advertises.
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Scopes every bearer token must carry (else 403 `insufficient_scope`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// JWT access tokens.
    #[serde(default)]
    pub jwt: Option<JwtFile>,
    /// API keys (`Authorization: Bearer <key>`), stored as SHA-256 hashes.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyFile>,
    /// Authorization-server metadata (RFC 8414) for an identity provider that publishes none,
    /// or an incomplete one: served as given at `/.well-known/oauth-authorization-server` plus
    /// its `issuer`'s path. List that issuer (ringmux's own origin) in
    /// `authorization_servers`, and point the endpoints at the provider.
    #[serde(default)]
    pub authorization_server_metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Strict,
    Optional,
    Permissive,
}

/// `auth.jwt:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtFile {
    /// The `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry. Default: `auth.resource`.
    #[serde(default)]
    pub audience: Option<String>,
    /// The issuer's public keys, a JWK Set (a mapping, or its JSON text).
    #[serde(default)]
    pub jwks: Option<serde_json::Value>,
    /// Or a file holding the JWK Set, read when ringmux starts.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Or the URL of the issuer's JWK Set (`https://`, or `http://` on loopback), fetched when ringmux
    /// starts and then every `jwks_refresh_ms` by a thread of its own, never on the request
    /// path. A token naming a `kid` not in the set asks for a refresh (at most one per
    /// `jwks_min_refresh_ms`). A fetch that fails keeps the keys it had.
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh_ms")]
    pub jwks_refresh_ms: u64,
    /// PEM bundle of the CAs an `https://` `jwks_url` must chain to (default: the platform's
    /// roots).
    #[serde(default)]
    pub jwks_ca: Option<PathBuf>,
    /// Or find the JWK Set from the issuer's metadata (its `jwks_uri`): RFC 8414's
    /// `/.well-known/oauth-authorization-server`, else OpenID Connect's
    /// `/.well-known/openid-configuration`, each time the set is fetched.
    #[serde(default)]
    pub discover: bool,
    #[serde(default = "default_jwks_min_refresh_ms")]
    pub jwks_min_refresh_ms: u64,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_ms")]
    pub leeway_ms: u64,
}

fn default_leeway_ms() -> u64 {
    60_000
}

fn default_jwks_refresh_ms() -> u64 {
    300_000
}

fn default_jwks_min_refresh_ms() -> u64 {
    10_000
}

/// One API key as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyFile {
    /// The principal the key stands for.
    pub name: String,
    /// SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Free attributes (for authorization rules).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Checked `auth:`.
#[derive(Debug, Clone)]
pub struct Auth {
    pub mode: AuthMode,
    pub resource: String,
    /// Where the protected-resource metadata is served (the path-suffixed form for the
    /// resource's path, RFC 9728 §3.1), and the bare form.
    pub metadata_path: String,
    /// The metadata's full URL, for `WWW-Authenticate`.
    pub metadata_url: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub required_scopes: Vec<String>,
    pub jwt: Option<Jwt>,
    pub api_keys: Vec<ApiKey>,
    /// Served authorization-server metadata: its path and its JSON text.
    pub server_metadata: Option<(String, String)>,
}

/// Checked `auth.jwt:`.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub issuer: String,
    pub audience: String,
    pub jwks: Jwks,
    pub leeway: Duration,
}

/// Where the keys are.
#[derive(Debug, Clone)]
pub enum Jwks {
    /// A JWK Set's JSON text (checked to be a JSON object with `keys`).
    Inline(String),
    File(PathBuf),
    /// Fetched, and refreshed every `refresh` (and on an unknown `kid`, at most once per
    /// `min_refresh`).
    Url {
        url: super::HttpUrl,
        refresh: Duration,
        min_refresh: Duration,
        /// CA bundle for an `https://` URL (`None`: the platform's roots).
        ca: Option<PathBuf>,
        /// Discovery: the issuer's metadata documents to try in order (RFC 8414's, then
        /// OpenID Connect's), whose `jwks_uri` names the set (`url` is then the first of
        /// them). Empty: `url` is the set's.
        metadata: Vec<super::HttpUrl>,
    },
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub name: String,
    pub sha256: [u8; 32],
    pub attributes: BTreeMap<String, String>,
}

impl AuthFile {
    pub(super) fn check(self) -> Result<Auth, ConfigError> {
        let (origin, path) = split_resource(&self.resource)
            .ok_or_else(|| err("auth.resource", "an absolute http(s) URI without query or fragment, e.g. https://gw.example.com/mcp"))?;
        let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
        let metadata_url = format!("{origin}{metadata_path}");
        let jwt = match self.jwt {
            None => None,
            Some(j) => {
                if j.issuer.is_empty() {
                    return Err(err("auth.jwt.issuer", "required"));
                }
                let fetched = j.jwks_url.is_some() || j.discover;
                if j.jwks_ca.is_some() && !fetched {
                    return Err(err(
                        "auth.jwt.jwks_ca",
                        "goes with jwks_url or discover (over https)",
                    ));
                }
                if fetched && (j.jwks_refresh_ms == 0 || j.jwks_min_refresh_ms == 0) {
                    return Err(err("auth.jwt.jwks_refresh_ms", "must be greater than 0"));
                }
                let fetch = |url: super::HttpUrl, metadata: Vec<super::HttpUrl>| Jwks::Url {
                    url,
                    metadata,
                    refresh: Duration::from_millis(j.jwks_refresh_ms),
                    min_refresh: Duration::from_millis(j.jwks_min_refresh_ms),
                    ca: j.jwks_ca.clone(),
                };
                let jwks = match (j.jwks, j.jwks_file, j.jwks_url, j.discover) {
                    (Some(v), None, None, false) => Jwks::Inline(jwks_text(v)?),
                    (None, Some(p), None, false) => Jwks::File(p),
                    (None, None, Some(u), false) => {
                        let url =
                            super::parse_http_url(&u).map_err(|m| err("auth.jwt.jwks_url", m))?;
                        if !fetchable(&url) {
                            return Err(err("auth.jwt.jwks_url", IN_THE_CLEAR));
                        }
                        fetch(url, Vec::new())
                    }
                    (None, None, None, true) => {
                        let metadata =
                            metadata_urls(&j.issuer).map_err(|m| err("auth.jwt.issuer", m))?;
                        if !fetchable(&metadata[0]) {
                            return Err(err("auth.jwt.discover", IN_THE_CLEAR));
                        }
                        fetch(metadata[0].clone(), metadata)
                    }
                    _ => {
                        return Err(err(
                            "auth.jwt",
                            "exactly one of jwks, jwks_file, jwks_url and discover",
                        ))
                    }
                };
                Some(Jwt {
                    issuer: j.issuer,
                    audience: j.audience.unwrap_or_else(|| self.resource.clone()),
                    jwks,
                    leeway: Duration::from_millis(j.leeway_ms),
                })
            }
        };
        let mut api_keys: Vec<ApiKey> = Vec::with_capacity(self.api_keys.len());
        for (i, k) in self.api_keys.into_iter().enumerate() {
            let at = |f: &str| format!("auth.api_keys[{i}].{f}");
            if k.name.is_empty() {
                return Err(err(at("name"), "required"));
            }
            if api_keys.iter().any(|o| o.name == k.name) {
                return Err(err(at("name"), format!("duplicate key name {:?}", k.name)));
            }
            let sha256 = super::parse_key(k.sha256.trim())
                .ok_or_else(|| err(at("sha256"), "must be 64 hex digits (a SHA-256)"))?;
            api_keys.push(ApiKey {
                name: k.name,
                sha256,
                attributes: k.attributes,
            });
        }
        let server_metadata = match self.authorization_server_metadata {
            None => None,
            Some(doc) => {
                let at = "auth.authorization_server_metadata";
                let issuer = doc
                    .get("issuer")
                    .and_then(|i| i.as_str())
                    .ok_or_else(|| err(at, "an object with an issuer (RFC 8414)"))?;
                let (_, path) = split_resource(issuer).ok_or_else(|| {
                    err(
                        format!("{at}.issuer"),
                        "an absolute http(s) URI without query or fragment",
                    )
                })?;
                Some((
                    format!("/.well-known/oauth-authorization-server{path}"),
                    doc.to_string(),
                ))
            }
        };
        Ok(Auth {
            mode: self.mode,
            resource: self.resource,
            metadata_path,
            metadata_url,
            authorization_servers: self.authorization_servers,
            scopes_supported: self.scopes_supported,
            required_scopes: self.required_scopes,
            jwt,
            api_keys,
            server_metadata,
        })
    }
}

const IN_THE_CLEAR: &str = "an http:// URL must be on this machine (loopback); use https:// elsewhere: keys fetched in the clear could be swapped on the way";

/// Whether keys may be fetched from `url`: over TLS, or from this machine.
pub fn fetchable(url: &super::HttpUrl) -> bool {
    url.tls || matches!(url.host.as_str(), "localhost" | "::1") || url.host.starts_with("127.")
}

/// The issuer's metadata documents: RFC 8414 §3.1 (the well-known path inserted before the
/// issuer's path), then OpenID Connect Discovery §4 (appended).
fn metadata_urls(issuer: &str) -> Result<Vec<super::HttpUrl>, String> {
    let base = super::parse_http_url(issuer)?;
    let path = base.path.trim_end_matches('/');
    let scheme = if base.tls { "https" } else { "http" };
    let origin = format!("{scheme}://{}", base.authority);
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
    .iter()
    .map(|u| super::parse_http_url(u))
    .collect()
}

/// `https://host[:port]/path` → (`https://host[:port]`, `/path` without a trailing `/`).
fn split_resource(uri: &str) -> Option<(&str, &str)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    if uri.contains(['?', '#', ' ']) {
        return None;
    }
    let host_end = rest.find('/').unwrap_or(rest.len());
    if host_end == 0 {
        return None;
    }
    let origin_len = uri.len() - rest.len() + host_end;
    Some((&uri[..origin_len], uri[origin_len..].trim_end_matches('/')))
}

fn jwks_text(v: serde_json::Value) -> Result<String, ConfigError> {
    let v = match v {
        serde_json::Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| err("auth.jwt.jwks", format!("not JSON: {e}")))?
        }
        v => v,
    };
    if !v.get("keys").is_some_and(|k| k.is_array()) {
        return Err(err(
            "auth.jwt.jwks",
            "a JWK Set: an object with a keys array",
        ));
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_documents_follow_rfc_8414_then_openid_connect() {
        let urls: Vec<String> = metadata_urls("https://idp.example.com/tenant1/")
            .unwrap()
            .iter()
            .map(|u| format!("{}{}", u.authority, u.path))
            .collect();
        assert_eq!(
            urls,
            [
                "idp.example.com/.well-known/oauth-authorization-server/tenant1",
                "idp.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
        let root = metadata_urls("http://127.0.0.1:9").unwrap();
        assert_eq!(root[0].path, "/.well-known/oauth-authorization-server");
        assert_eq!(root[1].path, "/.well-known/openid-configuration");
        assert!(fetchable(&root[0]));
        assert!(!fetchable(
            &metadata_urls("http://idp.example.com").unwrap()[0]
        ));
    }

    #[test]
    fn resources_split_into_origin_and_path() {
        assert_eq!(
            split_resource("https://gw.example.com/mcp"),
            Some(("https://gw.example.com", "/mcp"))
        );
        assert_eq!(
            split_resource("http://127.0.0.1:8080/"),
            Some(("http://127.0.0.1:8080", ""))
        );
        assert_eq!(split_resource("https://gw"), Some(("https://gw", "")));
        assert_eq!(split_resource("gw.example.com/mcp"), None);
        assert_eq!(split_resource("https:///mcp"), None);
        assert_eq!(split_resource("https://gw/mcp?x=1"), None);
    }
}
