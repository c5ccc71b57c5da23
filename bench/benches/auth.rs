//! Authentication per request (src/auth.rs): a JWT access token (about 700 bytes) verified
//! against a JWK Set (RS256, 2048-bit key), and the same token again from the shard's cache of
//! verified credentials (what every later request of a session pays).
//!
//! Run: `cargo bench -p ringmux-bench --bench auth -- --warm-up-time 1 --measurement-time 3`
//!
//! Machine: the project's 2-core AMD EPYC VM, rustc 1.95, release profile, 2026-12-04.
//!
//! | what                                              | time / request |
//! |---------------------------------------------------|----------------|
//! | JWT, first sight (signature, claims, then cached) | 22.5 µs        |
//! | JWT, cached                                       | 0.071 µs       |
//!
//! Later the same day, with the cache keyed by the token's last 64 bytes: first sight
//! 25.8–27.9 µs (the VM slower that hour), cached 0.044–0.048 µs.
//!
//! The cached path: the xxh3 of the token's last 64 bytes seeded with its length, a map
//! lookup by it, the whole token compared, the principal's reference count, the scope check. Keyed by the token's bytes with std's SipHash
//! it took 0.74 µs, with a streaming xxh3 hasher 0.46 µs; checking every token character on
//! each request (before the cache) cost 6.6 k instructions per proxied call in callgrind, so
//! only a token not yet in the cache is checked.
//!
//! Per proxied tools/call with JWT authentication on (the same RS256 token on every call,
//! `AUTH=jwt bash bench/scripts/callgrind-call.sh`): 29,947 instructions, against 28.0 k
//! without `auth:` (about 1 k of the difference is httparse reading the 700-byte header).
//! After TLS support (connections hold a plain-or-TLS stream): 30,384 with the whole token
//! hashed, 29,881–29,893 with the last 64 bytes, against 28.35 k without `auth:`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringmux::auth::{start_keys, unix_now, Authenticator};
use ringmux_core::config::File;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/auth");

fn authenticator() -> Authenticator {
    let yaml = format!(
        "listen: 127.0.0.1:0\nbackends:\n  - name: a\n    url: http://127.0.0.1:9/mcp\nauth:\n  resource: https://gw.test/mcp\n  required_scopes: [mcp]\n  jwt:\n    issuer: https://idp.test\n    jwks_file: {FIX}/jwks.json\n"
    );
    let cfg = File::from_yaml(&yaml).unwrap().validate(1).unwrap();
    let auth = cfg.auth.as_ref().unwrap();
    let metrics = std::sync::Arc::new(ringmux::metrics::ShardMetrics::default());
    let feed = start_keys(auth, 1, metrics).unwrap().pop().unwrap();
    Authenticator::new(auth, feed)
}

fn token() -> String {
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": "https://idp.test", "aud": "https://gw.test/mcp", "sub": "alice",
        "iat": now, "exp": now + 3600, "scope": "mcp",
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let pem = std::fs::read(format!("{FIX}/rsa1.pem")).unwrap();
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn auth(c: &mut Criterion) {
    let header = format!("Bearer {}", token()).into_bytes();
    let now = unix_now();
    c.bench_function("jwt first sight", |b| {
        b.iter_batched(
            authenticator,
            |a| a.authenticate(Some(&header), now).unwrap().unwrap(),
            BatchSize::SmallInput,
        )
    });
    let a = authenticator();
    a.authenticate(Some(&header), now).unwrap().unwrap();
    c.bench_function("jwt cached", |b| {
        b.iter(|| a.authenticate(Some(&header), now).unwrap().unwrap())
    });
}

criterion_group!(benches, auth);
criterion_main!(benches);
