//! TLS with rustls on aws-lc-rs (the provider jsonwebtoken uses too): the listener's server
//! config, loaded from PEM files and loaded again when they change; the client certificate's
//! identity (a principal); and the client config toward `https://` backends and JWK Set URLs.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ringmux_core::config::{BackendTls, ClientAuth, Tls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{NoServerSessionStorage, ProducesTickets, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::request::{CertIdentity, Principal};

pub use ringmux_tls_io::{Stream, TlsConn};

/// The one crypto provider: aws-lc-rs, as for JWT signatures.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The listener's rustls config from `tls`'s files. `tickets`: the session-ticket key, kept
/// across reloads so that clients resume across a certificate rotation.
pub fn server_config(
    tls: &Tls,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&tls.cert)?;
    let key = read_key(&tls.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some((ca, mode)) => {
            let roots = Arc::new(read_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = match mode {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", tls.cert.display(), tls.key.display()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    // No session cache shared between threads. Resumption by tickets alone: the ticket key is
    // shared by every shard (a client resumes whichever shard its new connection lands on)…
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    if tls.client_ca.is_none() {
        cfg.ticketer = tickets.clone();
        cfg.send_tls13_tickets = 2;
    } else {
        // …except with client certificates: a resumed session carries its certificate without
        // checking it again, so a certificate that expired, or whose CA was taken out of the
        // bundle, would keep its principal for the ticket's life. Every connection verifies.
        cfg.send_tls13_tickets = 0;
    }
    Ok(Arc::new(cfg))
}

/// Loads the listener's files as [`start`] would (`ringmux check`).
pub fn check(tls: &Tls) -> Result<(), String> {
    let tickets = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string())?;
    server_config(tls, &tickets).map(drop)
}

/// Each shard's view of the listener's TLS config: the current one, and where reloads arrive.
/// Read once per accepted connection, never per request.
pub struct Listener {
    current: std::cell::RefCell<Arc<ServerConfig>>,
    updates: mpsc::Receiver<Arc<ServerConfig>>,
    pub handshake_timeout: Duration,
}

impl Listener {
    /// The config a new connection gets: the latest reload's.
    pub fn config(&self) -> Arc<ServerConfig> {
        let mut current = self.current.borrow_mut();
        while let Ok(next) = self.updates.try_recv() {
            *current = next;
        }
        current.clone()
    }
}

/// Loads the listener's config and starts the thread that watches its files (every
/// `tls.reload`): each shard gets a [`Listener`]. A reload that fails (a half-written file, a
/// key that does not match) keeps the config in use, logs why and counts it, once per change
/// of the files.
pub fn start(
    tls: &Tls,
    shards: usize,
    metrics: Arc<crate::metrics::ShardMetrics>,
) -> Result<Vec<Listener>, String> {
    let tickets = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| e.to_string())?;
    let first = server_config(tls, &tickets)?;
    let mut senders = Vec::with_capacity(shards);
    let mut listeners = Vec::with_capacity(shards);
    for _ in 0..shards {
        let (tx, rx) = mpsc::channel();
        senders.push(tx);
        listeners.push(Listener {
            current: std::cell::RefCell::new(first.clone()),
            updates: rx,
            handshake_timeout: tls.handshake_timeout,
        });
    }
    let tls = tls.clone();
    let mut files: Vec<PathBuf> = vec![tls.cert.clone(), tls.key.clone()];
    if let Some((ca, _)) = &tls.client_ca {
        files.push(ca.clone());
    }
    let mut seen = stamps(&files);
    std::thread::Builder::new()
        .name("ringmux-tls".into())
        .spawn(move || loop {
            std::thread::sleep(tls.reload);
            let now = stamps(&files);
            if now == seen {
                continue;
            }
            // Tried once per change: a file still being written changes again when it is done.
            seen = now;
            match server_config(&tls, &tickets) {
                Ok(cfg) => {
                    metrics.tls_reloads.add(1);
                    tracing::info!(cert = %tls.cert.display(), "TLS certificate loaded again");
                    if senders.iter().any(|s| s.send(cfg.clone()).is_err()) {
                        return; // the shards are gone
                    }
                }
                Err(e) => {
                    metrics.tls_reload_failures.add(1);
                    tracing::error!(
                        "TLS files changed but could not be loaded (the old ones stay in use): {e}"
                    );
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(listeners)
}

/// Each file's modification time and size (`None` where it cannot be read).
fn stamps(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// The principal a verified client certificate stands for.
pub fn peer_principal(conn: &rustls::ServerConnection) -> Option<Principal> {
    let leaf = conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let subject = cert.subject().to_string();
    let mut names: Vec<Box<str>> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        use x509_parser::extensions::GeneralName;
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.push(format!("dns:{n}").into()),
                GeneralName::URI(n) => names.push(format!("uri:{n}").into()),
                GeneralName::RFC822Name(n) => names.push(format!("email:{n}").into()),
                _ => {}
            }
        }
    }
    // Who it is: the issuer's and the subject's encoded names, and the alternative names
    // (which alone name a certificate with an empty subject), each length-prefixed.
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut part = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    part(cert.issuer().as_raw());
    part(cert.subject().as_raw());
    for n in &names {
        part(n.as_bytes());
    }
    let key: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Principal::Cert(Arc::new(CertIdentity {
        key: key.into(),
        subject: subject.into(),
        names: names.into(),
    })))
}

/// The rustls client config toward a backend: its CA bundle or the platform's roots, and its
/// client certificate. ALPN `http/1.1`.
pub fn client_config(tls: &BackendTls) -> Result<Arc<ClientConfig>, String> {
    let roots = match &tls.ca {
        Some(ca) => read_roots(ca)?,
        None => platform_roots()?,
    };
    client_config_with(roots, tls.client.as_ref())
}

thread_local! {
    /// Each thread's backend configs: made once per shard (reading the platform's roots is
    /// slow), not once per pool.
    static BACKEND_CONFIGS: std::cell::RefCell<std::collections::HashMap<BackendTls, Arc<ClientConfig>>> =
        Default::default();
}

/// [`client_config`], made once per thread for equal settings.
pub fn backend_config(tls: &BackendTls) -> Result<Arc<ClientConfig>, String> {
    if let Some(cfg) = BACKEND_CONFIGS.with(|c| c.borrow().get(tls).cloned()) {
        return Ok(cfg);
    }
    let cfg = client_config(tls)?;
    BACKEND_CONFIGS.with(|c| c.borrow_mut().insert(tls.clone(), cfg.clone()));
    Ok(cfg)
}

/// The rustls client config for an `https://` JWK Set URL.
pub fn jwks_client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca {
        Some(ca) => read_roots(ca)?,
        None => platform_roots()?,
    };
    client_config_with(roots, None)
}

fn client_config_with(
    roots: RootCertStore,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut cfg = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| format!("{}: {e}", cert.display()))?,
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

fn platform_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "no trusted root certificates found on this machine ({:?}); give a ca: bundle",
            found.errors.first()
        ));
    }
    Ok(roots)
}

/// The name a backend's certificate is checked against (a DNS name or an IP address).
pub fn server_name(name: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}
