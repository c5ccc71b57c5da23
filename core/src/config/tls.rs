//! TLS settings: the listener's (`tls:`, certificate and key, client certificates) and a
//! backend's (`backends[].tls:`, for `https://` URLs). Paths only: the gateway reads the files
//! (and reads them again when they change).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{err, ConfigError};

/// `tls:` as written: the MCP listener terminates TLS 1.2 and 1.3 (ALPN `http/1.1`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted (mutual TLS). Absent: no
    /// client certificate is asked for.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (a connection without a valid client certificate fails its
    /// handshake) or `optional` (one without any is accepted; an invalid one still fails).
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// How often the three files are looked at; a change (their modification time or size)
    /// loads them again and new handshakes use them. Connections already open keep theirs.
    #[serde(default = "default_reload_ms")]
    pub reload_ms: u64,
    /// How long a client has to complete its handshake.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_reload_ms() -> u64 {
    5_000
}

fn default_handshake_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

/// Checked `tls:`.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The client CA bundle and whether a client certificate is required.
    pub client_ca: Option<(PathBuf, ClientAuth)>,
    pub reload: Duration,
    pub handshake_timeout: Duration,
}

impl TlsFile {
    pub(super) fn check(self) -> Result<Tls, ConfigError> {
        for (k, v) in [
            ("tls.reload_ms", self.reload_ms),
            ("tls.handshake_timeout_ms", self.handshake_timeout_ms),
        ] {
            if v == 0 {
                return Err(err(k, "must be greater than 0"));
            }
        }
        Ok(Tls {
            cert: self.cert,
            key: self.key,
            client_ca: self.client_ca.map(|p| (p, self.client_auth)),
            reload: Duration::from_millis(self.reload_ms),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
        })
    }
}

/// `backends[].tls:` as written, for an `https://` backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendTlsFile {
    /// PEM bundle of the CAs the backend's certificate must chain to. Absent: the platform's
    /// trusted roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// The name the backend's certificate must carry (and SNI sends). Default: the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// A client certificate chain and key (PEM) presented to the backend (mutual TLS).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// Checked TLS toward a backend (set exactly for `https://` URLs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendTls {
    pub ca: Option<PathBuf>,
    pub server_name: String,
    pub client: Option<(PathBuf, PathBuf)>,
}

impl BackendTlsFile {
    /// `host`: the URL's. `at`: the key path for errors.
    pub(super) fn check(self, host: &str, at: &str) -> Result<BackendTls, ConfigError> {
        let client = match (self.client_cert, self.client_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(err(
                    format!("{at}.client_cert"),
                    "client_cert and client_key go together",
                ))
            }
        };
        let server_name = self.server_name.unwrap_or_else(|| host.to_string());
        if server_name.is_empty() {
            return Err(err(format!("{at}.server_name"), "must not be empty"));
        }
        Ok(BackendTls {
            ca: self.ca,
            server_name,
            client,
        })
    }
}
