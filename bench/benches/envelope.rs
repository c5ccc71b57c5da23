//! Envelope extraction from a 293-byte `tools/call`: jsonrpc, id (raw), method, params.name,
//! params._meta.progressToken.
//!
//! Run: `cargo bench -p ringmux-bench --bench envelope -- --warm-up-time 1 --measurement-time 3`
//! (AVX2 build for comparison:
//! `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo bench -p ringmux-bench --bench envelope`)
//!
//! Machine: the project's 2-core x86-64 VM, rustc 1.95, release profile, 2026-11-22.
//!
//! | variant                                                         | generic x86-64 | x86-64-v3 |
//! |-----------------------------------------------------------------|----------------|-----------|
//! | ringmux `jsonrpc::parse` (validating scanner, all its fields)    | 276 ns         |           |
//! | of which validation alone (`jsonrpc::validate`)                  | 234 ns         |           |
//! | serde_json typed, borrowed `&str`/`&RawValue` (same five fields) | 379 ns         |           |
//! | ringmux's previous parser (serde_json typed, all its fields)     | 455 ns         | 487 ns    |
//! | sonic-rs 0.5 `get_many` with a prebuilt pointer tree             | 445 ns         | 451 ns    |
//! | serde_json `Value` DOM (for scale)                               | 1 254 ns       | 1 295 ns  |
//!
//! Conclusion: ringmux parses the envelope with its own validating scanner (meets the 300 ns
//! aim); SIMD (sonic-rs with AVX2) does not pay at this message size, so release builds stay
//! on the portable generic target. Reasoning in ARCHITECTURE.md ("JSON envelope").

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmux_bench::TOOLS_CALL;
use ringmux_core::jsonrpc;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The same five fields through serde_json's typed, borrowing parse (ringmux's previous
/// envelope parser), kept here as the baseline.
#[derive(Deserialize)]
#[allow(dead_code)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: Option<&'a str>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a str>,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Params<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, rename = "_meta")]
    meta: Option<Meta<'a>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Meta<'a> {
    #[serde(borrow, rename = "progressToken")]
    progress_token: Option<&'a RawValue>,
}

fn envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.bench_function("ringmux jsonrpc::parse (validating scanner)", |b| {
        b.iter(|| {
            let m = jsonrpc::parse(black_box(TOOLS_CALL)).unwrap();
            black_box((m.id, m.params.name, m.params.meta.map(|m| m.progress_token)));
        })
    });
    g.bench_function("serde_json typed+borrowed", |b| {
        b.iter(|| {
            let m: Envelope<'_> = serde_json::from_slice(black_box(TOOLS_CALL)).unwrap();
            black_box((
                m.id,
                m.params.map(|p| (p.name, p.meta.map(|m| m.progress_token))),
            ));
        })
    });
    g.bench_function("validation alone (jsonrpc::validate)", |b| {
        let text = std::str::from_utf8(TOOLS_CALL).unwrap();
        b.iter(|| jsonrpc::validate(black_box(text)).unwrap())
    });
    let mut tree = sonic_rs::PointerTree::new();
    tree.add_path(&["jsonrpc"]);
    tree.add_path(&["id"]);
    tree.add_path(&["method"]);
    tree.add_path(&["params", "name"]);
    tree.add_path(&["params", "_meta", "progressToken"]);
    let text = std::str::from_utf8(TOOLS_CALL).unwrap();
    g.bench_function("sonic-rs get_many", |b| {
        b.iter(|| {
            let nodes = sonic_rs::get_many(black_box(text), &tree).unwrap();
            black_box(nodes);
        })
    });
    g.bench_function("serde_json Value (DOM, for scale)", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(TOOLS_CALL)).unwrap();
            black_box(v);
        })
    });
    g.finish();
}

criterion_group!(benches, envelope);
criterion_main!(benches);
