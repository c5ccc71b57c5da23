//! Envelope extraction from a 293-byte `tools/call`: jsonrpc, id (raw), method, params.name,
//! params._meta.progressToken.
//!
//! Run: `cargo bench -p ringmux-bench --bench envelope`
//! (SIMD build: `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo bench -p ringmux-bench --bench envelope`)
//!
//! Machine: the project's 2-core x86-64 VM (rustc 1.95, release profile, generic x86-64
//! target), 2026-11-22, `--warm-up-time 1 --measurement-time 3`.
//!
//! | variant                                   | time / op |
//! |-------------------------------------------|-----------|
//! | ringmux `jsonrpc::parse` (serde_json, typed, borrowed `&RawValue`) | 455 ns |
//! | sonic-rs `get_many` with a prebuilt pointer tree | 457 ns |
//! | serde_json `Value` DOM (for scale)        | 1 327 ns  |
//!
//! Conclusion: on a generic x86-64 build sonic-rs is no faster than the typed serde_json parse,
//! so ringmux keeps serde_json (portable, no SIMD dispatch, gives byte spans through
//! `RawValue`). Both miss the 300 ns aim; the next step is measuring sonic-rs with
//! `-C target-cpu=x86-64-v3` (the design brief saw ≈350 ns) and a hand-rolled scanner for the
//! five fields, before choosing how release builds enable SIMD.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ringmux_bench::TOOLS_CALL;
use ringmux_core::jsonrpc;

fn envelope(c: &mut Criterion) {
    let mut g = c.benchmark_group("envelope");
    g.bench_function("ringmux serde_json typed+borrowed", |b| {
        b.iter(|| {
            let m = jsonrpc::parse(black_box(TOOLS_CALL)).unwrap();
            black_box((m.id, m.params.name, m.params.meta.map(|m| m.progress_token)));
        })
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
