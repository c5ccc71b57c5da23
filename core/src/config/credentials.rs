//! `backends[].credentials`: what ringmux presents to a backend. A client's own credential is
//! never passed on (the MCP authorization specification forbids token passthrough); a backend
//! that needs one gets the one configured for it, whose value comes from an environment
//! variable or a file (never from the config file, which may be committed). Read when the
//! gateway starts ([`Credentials::value`] is filled then); per-user credentials (token
//! exchange, a user's own upstream OAuth) are left to a later issue and would plug in here.

use std::path::PathBuf;

use serde::Deserialize;

use super::{err, ConfigError};

/// `credentials:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsFile {
    /// The environment variable holding the secret.
    #[serde(default)]
    pub env: Option<String>,
    /// Or the file holding it (trailing whitespace trimmed).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// The header to send it in. Default `authorization`, as `Bearer <secret>`; any other
    /// header carries the secret as it is.
    #[serde(default)]
    pub header: Option<String>,
}

/// Where a backend's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// Checked `credentials:`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub source: SecretSource,
    /// Lowercase.
    pub header: String,
    /// The header's value, read when the gateway starts (`None` before).
    pub value: Option<Secret>,
}

/// A secret: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub Box<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl CredentialsFile {
    pub(super) fn check(self, at: &str) -> Result<Credentials, ConfigError> {
        let source = match (self.env, self.file) {
            (Some(v), None) if !v.is_empty() => SecretSource::Env(v),
            (None, Some(p)) => SecretSource::File(p),
            _ => return Err(err(at, "exactly one of env and file")),
        };
        let header = self
            .header
            .unwrap_or_else(|| "authorization".into())
            .to_ascii_lowercase();
        if header.is_empty()
            || !header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(format!("{at}.header"), "a header name"));
        }
        Ok(Credentials {
            source,
            header,
            value: None,
        })
    }
}

impl Credentials {
    /// Reads the secret (when the gateway starts) and makes the header value.
    pub fn load(&mut self) -> Result<(), String> {
        let secret = match &self.source {
            SecretSource::Env(v) => {
                std::env::var(v).map_err(|_| format!("environment variable {v} is not set"))?
            }
            SecretSource::File(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .trim_end()
                .to_owned(),
        };
        if secret.is_empty() || secret.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err("the secret is empty or holds control characters".into());
        }
        let value = if self.header == "authorization" {
            format!("Bearer {secret}")
        } else {
            secret
        };
        self.value = Some(Secret(value.into()));
        Ok(())
    }
}
