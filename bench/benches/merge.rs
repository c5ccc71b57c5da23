//! Merged `tools/list` pages assembled from cached per-backend catalogs (prefixing every name),
//! and the separate costs paid when a backend's list is fetched (parse) or the catalog set
//! changes (index build).
//!
//! Run: `cargo bench -p ringmux-bench --bench merge`
//!
//! Machine: the project's 2-core x86-64 VM (rustc 1.95, release profile), 2026-11-22,
//! `--warm-up-time 1 --measurement-time 3`. Tools of ~400 bytes, every name prefixed, one page.
//!
//! | case                                   | time     | target   |
//! |----------------------------------------|----------|----------|
//! | page from cache, 10 backends × 50      | 10.6 µs  | ≤ 20 µs  |
//! | page from cache, 100 backends × 50     | 149 µs   | ≤ 200 µs |
//! | index build (catalog set changed), 10 × 50  | 97 µs  | per change only |
//! | index build, 100 × 50                  | 1.05 ms  | per change only |
//! | parse one backend's 50-tool list (fetch) | 20.3 µs | per fetch only |
//!
//! Conclusion: serving merged pages by memcpy from parsed catalogs meets both targets; the
//! per-request cost is the copy (100 × 50 writes 2.2 MB). Parsing and index building are paid
//! once per fetch / list_changed, not per request.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use ringmux_bench::{tools_catalog, tools_page};
use ringmux_core::catalog::{Catalog, ListKind};
use ringmux_core::merge::{Index, Source};
use serde_json::value::RawValue;

fn merge(c: &mut Criterion) {
    let id: Box<RawValue> = RawValue::from_string("1".into()).unwrap();
    let mut g = c.benchmark_group("merge");
    for backends in [10usize, 100] {
        let cats: Vec<Catalog> = (0..backends).map(|b| tools_catalog(b, 50, 400)).collect();
        let names: Vec<String> = (0..backends).map(|b| format!("backend{b}")).collect();
        let sources: Vec<Source<'_>> = cats
            .iter()
            .enumerate()
            .map(|(i, c)| Source {
                backend: i as u16,
                name: &names[i],
                prefixed: true,
                catalog: c,
            })
            .collect();
        let refs: Vec<&Catalog> = cats.iter().collect();
        let index = Index::build(ListKind::Tools, &sources, "__", &[], 0);
        let mut out = Vec::with_capacity(backends * 50 * 450);
        g.bench_with_input(
            BenchmarkId::new("page from cache", format!("{backends}x50")),
            &backends,
            |b, _| {
                b.iter(|| {
                    out.clear();
                    index.write_page(&mut out, (&*id).into(), &refs, None, 0, |_, _| true);
                    black_box(out.len());
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("index build", format!("{backends}x50")),
            &backends,
            |b, _| b.iter(|| black_box(Index::build(ListKind::Tools, &sources, "__", &[], 0))),
        );
    }
    let page = tools_page(0, 50, 400);
    g.bench_function("parse one backend's 50-tool list", |b| {
        b.iter(|| {
            let mut c = Catalog::new(ListKind::Tools);
            c.add_page(black_box(&page)).unwrap();
            black_box(c.len());
        })
    });
    g.finish();
}

criterion_group!(benches, merge);
criterion_main!(benches);
