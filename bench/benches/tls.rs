//! TLS on the request path, and what a TLS connection that lands on the wrong shard costs:
//! handed to the owner shard with its rustls state (ringmux's choice) or each request
//! forwarded (`handoff: false`). The real gateway in process (2 shards pinned to the 2
//! cores), the mock backend in process, the blocking probe client on the bench thread; one
//! `tools/call` echo per iteration on one keep-alive connection.
//!
//! Run: `cargo bench -p ringmux-bench --bench tls -- --warm-up-time 2 --measurement-time 6`
//!
//! Machine: the project's 2-core x86-64 VM (AMD EPYC), rustc 1.95, release profile,
//! 2026-12-04. Client, gateway shards and backend share the two cores, so figures are
//! round trips through all of them, for comparing the rows with each other.
//!
//! Three runs (median of each run's estimate, lowest to highest):
//!
//! | connection                                                     | time / call  |
//! |----------------------------------------------------------------|--------------|
//! | plain, on its session's shard                                  | 141–152 µs   |
//! | TLS, on its session's shard                                    | 136–151 µs   |
//! | TLS, landed on the other shard, handed over (its rustls state) | 133–159 µs   |
//! | TLS, landed on the other shard, every request forwarded        | 172–180 µs   |
//!
//! Within each run, forwarding cost 22–39 µs a call more than the handed-over connection,
//! and the handed-over connection was within the noise of a local one (TLS's own cost, about
//! 11 k instructions a call by callgrind, is under the noise here). Handing over moves the
//! rustls session (plain memory: the shards are threads of one process) and the ciphertext
//! it has not read yet: once per connection, then every request is local. Kernel TLS would
//! hand the keys to the kernel instead, but this VM's kernel has no `tls`
//! ULP (`/proc/sys/net/ipv4/tcp_available_ulp` lists only `mptcp`), which is common, and
//! control records (key updates, alerts) would then need handling outside rustls.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use ringmux::metrics::ShardMetrics;
use ringmux::probe::Client;
use ringmux::server;
use ringmux_load::mock::{self, MockConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::json;

struct Pki {
    ca_pem: String,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn pki(dir: &std::path::Path) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "bench CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A gateway in process: (its URL, its shards' metrics, the server).
fn gateway(
    backend: &str,
    tls: Option<&Pki>,
    handoff: bool,
) -> (String, Arc<[Arc<ShardMetrics>]>, server::Server) {
    let mut yaml = format!(
        "listen: 127.0.0.1:0\nshards: 2\nhandoff: {handoff}\nbackends:\n  - name: a\n    url: {backend}\n"
    );
    if let Some(p) = tls {
        yaml.push_str(&format!(
            "tls:\n  cert: {}\n  key: {}\n",
            p.cert.display(),
            p.key.display()
        ));
    }
    let cfg = ringmux_core::config::load(&yaml, 2).unwrap();
    let listeners = server::bind(cfg.listen, cfg.shards).unwrap();
    let srv = server::start(cfg, listeners).unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://localhost:{}/mcp", srv.addr.port());
    (url, srv.metrics.clone(), srv)
}

fn sum(metrics: &[Arc<ShardMetrics>], what: fn(&ShardMetrics) -> u64) -> u64 {
    metrics.iter().map(|m| what(m)).sum()
}

fn call(c: &mut Client) {
    let r = c
        .request(
            "tools/call",
            json!({"name": "a__echo", "arguments": {"message": "hello"}}),
        )
        .unwrap();
    assert!(r.get("result").is_some(), "{r}");
}

/// A connection on `owner`'s session: one that stays on its shard (`crossing` false) or one
/// that landed on the other (the counter `crossed` grew on its first request).
fn connection(
    url: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    owner: &Client,
    metrics: &[Arc<ShardMetrics>],
    crossed: fn(&ShardMetrics) -> u64,
    crossing: bool,
) -> Client {
    for _ in 0..200 {
        let mut c = Client::connect_with(url, tls.cloned()).unwrap();
        c.session = owner.session.clone();
        c.protocol_version = owner.protocol_version.clone();
        let before = sum(metrics, crossed);
        call(&mut c);
        if (sum(metrics, crossed) > before) == crossing {
            return c;
        }
    }
    panic!("no connection landed where wanted in 200 tries");
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("ringmux-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pki = pki(&dir);
    let tls = client_config(&pki.ca_pem);
    let mut backend = mock::spawn(
        MockConfig {
            name: "a".into(),
            ..MockConfig::default()
        },
        ([127, 0, 0, 1], 0).into(),
    )
    .unwrap();
    let handoffs: fn(&ShardMetrics) -> u64 = |m| m.handoffs_out.get();
    let hops: fn(&ShardMetrics) -> u64 = |m| m.hops_out.get();
    let mut g = c.benchmark_group("tools/call on one connection");

    let (plain_url, plain_metrics, plain_srv) = gateway(&backend.url(), None, true);
    let mut owner = Client::connect(&plain_url).unwrap();
    owner.initialize().unwrap();
    let mut local = connection(&plain_url, None, &owner, &plain_metrics, handoffs, false);
    g.bench_function("plain, on its session's shard", |b| {
        b.iter(|| call(&mut local))
    });

    let (url, metrics, srv) = gateway(&backend.url(), Some(&pki), true);
    let mut owner = Client::connect_with(&url, Some(tls.clone())).unwrap();
    owner.initialize().unwrap();
    let mut local = connection(&url, Some(&tls), &owner, &metrics, handoffs, false);
    g.bench_function("TLS, on its session's shard", |b| {
        b.iter(|| call(&mut local))
    });
    let mut handed = connection(&url, Some(&tls), &owner, &metrics, handoffs, true);
    g.bench_function("TLS, handed over to its session's shard", |b| {
        b.iter(|| call(&mut handed))
    });

    let (fwd_url, fwd_metrics, fwd_srv) = gateway(&backend.url(), Some(&pki), false);
    let mut owner = Client::connect_with(&fwd_url, Some(tls.clone())).unwrap();
    owner.initialize().unwrap();
    let mut forwarded = connection(&fwd_url, Some(&tls), &owner, &fwd_metrics, hops, true);
    g.bench_function("TLS, every request forwarded to its session's shard", |b| {
        b.iter(|| call(&mut forwarded))
    });
    g.finish();
    drop((local, handed, forwarded));
    for srv in [plain_srv, srv, fwd_srv] {
        // Drains the shards; the bench process ends without waiting for them.
        drop(srv.shutdown());
    }
    backend.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
