//! Envelope extraction from a ~300-byte `tools/call`: jsonrpc, id (raw), method, params.name,
//! params._meta.progressToken.
//!
//! Run: `cargo bench -p ringmux-bench --bench envelope`
//! (SIMD build: `RUSTFLAGS="-C target-cpu=x86-64-v3" cargo bench -p ringmux-bench --bench envelope`)
//!
//! RESULTS_PLACEHOLDER

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
