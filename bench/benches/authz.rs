//! Authorization (src/authz.rs, core/src/authz.rs): CEL rules over a JWT principal's claims,
//! the tool and its backend, and one rule on the call's arguments; 10 backends × 50 tools.
//!
//! Run: `cargo bench -p ringmux-bench --bench authz -- --warm-up-time 1 --measurement-time 3`
//!
//! Machine: the project's 2-core AMD EPYC VM, rustc 1.95, release profile, 2026-12-04.
//!
//! | what                                                          | time        |
//! |---------------------------------------------------------------|-------------|
//! | a call, decided from the cached view (issue: ≤ 2 µs)          | 0.038 µs    |
//! | a call to a tool whose rule reads the arguments (CEL per call)| 1.67 µs     |
//! | a view's decision table over 500 tools (once per view+catalog) | 1.64 ms   |
//! | a merged 500-tool page, no policy                              | 11.8 µs   |
//! | the same page through a view that hides over half the tools    | 6.4 µs    |
//!
//! The decision table is 500 items × 3 rules that read `mcp` (≈ 1.1 µs per CEL evaluation, the
//! item's `mcp` map built once per item); the principal-only rule is evaluated once per view.
//! A filtered page is faster than the whole one: it copies fewer bytes.
//!
//! Per proxied tools/call (`bash bench/scripts/callgrind-call.sh`, one shard, the same RS256
//! token on every call; the binaries of the session measured one after the other): 28,529–28,572
//! instructions without `auth:`, 30,034–30,069 with a JWT, 30,337–30,376 with a JWT and rules
//! decided from the view (`AUTH=jwt AUTHZ=view`; issue: ≤ 32 k), 45,267–45,320 with a rule on the
//! arguments too (`AUTH=jwt AUTHZ=args`: the arguments parsed and the rule evaluated by CEL on
//! every call; 28 allocator calls).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use ringmux::authz::Authz;
use ringmux::backend::upstream::Pool;
use ringmux::federation::Federation;
use ringmux::metrics::ShardMetrics;
use ringmux::request::{Identity, Principal};
use ringmux_bench::tools_catalog;
use ringmux_core::catalog::ListKind;
use ringmux_core::config::{Config, File};
use serde_json::value::RawValue;

const BACKENDS: usize = 10;

fn config() -> Config {
    let mut yaml = String::from("listen: 127.0.0.1:0\nbackends:\n");
    for b in 0..BACKENDS {
        yaml.push_str(&format!(
            "  - name: b{b}\n    url: http://127.0.0.1:9/mcp\n"
        ));
    }
    // Engineers see every backend; others the even ones; nobody a tool ending in 7; and the
    // `value` argument of b0's tool_0_0001 is checked on each call.
    yaml.push_str(
        r#"authz:
  rules:
    - name: engineers
      allow: 'principal.claims.role == "engineer"'
    - name: even
      allow: 'mcp.backend in ["b0", "b2", "b4", "b6", "b8"]'
    - name: no-7
      deny: 'mcp.tool.endsWith("7")'
    - name: small-values
      deny: 'mcp.tool == "b0__tool_0_0001" && args.value > 100'
"#,
    );
    File::from_yaml(&yaml).unwrap().validate(1).unwrap()
}

fn principal(role: &str) -> Principal {
    Principal::User(Arc::new(Identity {
        issuer: "https://idp.test".into(),
        subject: "alice".into(),
        scopes: "mcp".into(),
        claims: serde_json::json!({"iss": "https://idp.test", "sub": "alice", "role": role,
                                   "email": "alice@example.com", "groups": ["a", "b"]}),
    }))
}

fn authz(c: &mut Criterion) {
    let cfg = config();
    let metrics = Arc::new(ShardMetrics::default());
    let pools: Vec<Rc<Pool>> = cfg
        .backends
        .iter()
        .enumerate()
        .map(|(i, b)| Pool::new(i as u16, b.clone(), None, None))
        .collect();
    let fed = Federation::new(
        BACKENDS,
        Duration::from_secs(60),
        "__".into(),
        cfg.fingerprint,
        None,
    );
    let now = std::time::Instant::now();
    for b in 0..BACKENDS {
        fed.store(b as u16, Rc::new(tools_catalog(b, 50, 400)), now);
    }
    let merged = fed.merged(ListKind::Tools, |_| true, &pools, None);
    let make = || Authz::new(cfg.authz.as_ref().unwrap(), None);
    let az = make();
    let guest = principal("guest");
    let view = az.view(&guest, None, &metrics);
    let call = |tool: &str, args: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
        )
    };
    let plain = call("b2__tool_2_0001", r#"{"name":"x","value":5}"#);
    let checked = call("b0__tool_0_0001", r#"{"name":"x","value":5}"#);
    let route = |name: &str| merged.index.route(name).unwrap();
    let allowed = |name: &str, body: &str| {
        az.allows_listed(
            &view,
            &merged,
            ListKind::Tools,
            route(name),
            "tools/call",
            name,
            body.as_bytes(),
            &pools,
            &metrics,
        )
        .allow
    };
    assert!(allowed("b2__tool_2_0001", &plain));
    assert!(!allowed("b1__tool_1_0001", &plain), "odd backends hidden");
    assert!(!allowed("b2__tool_2_0007", &plain), "7s hidden");
    assert!(allowed("b0__tool_0_0001", &checked));
    assert!(!allowed(
        "b0__tool_0_0001",
        &call("b0__tool_0_0001", r#"{"name":"x","value":500}"#)
    ));

    let mut g = c.benchmark_group("authz");
    g.bench_function("call, cached view", |b| {
        b.iter(|| black_box(allowed(black_box("b2__tool_2_0001"), &plain)))
    });
    g.bench_function("call, argument rule", |b| {
        b.iter(|| black_box(allowed(black_box("b0__tool_0_0001"), &checked)))
    });
    g.bench_function("decision table, 500 tools", |b| {
        b.iter_batched(
            || {
                let az = make();
                let v = az.view(&guest, None, &metrics);
                (az, v)
            },
            |(az, v)| black_box(az.decisions(&v, &merged, ListKind::Tools, &pools, &metrics)),
            BatchSize::SmallInput,
        )
    });
    let id: Box<RawValue> = RawValue::from_string("1".into()).unwrap();
    let decisions = az.decisions(&view, &merged, ListKind::Tools, &pools, &metrics);
    let mut out = Vec::with_capacity(1 << 20);
    g.bench_function("page of 500, no policy", |b| {
        b.iter(|| {
            out.clear();
            merged.index.write_page(
                &mut out,
                (&*id).into(),
                &merged.catalogs,
                None,
                0,
                |_, _| true,
            );
            black_box(out.len())
        })
    });
    g.bench_function("page of 500, filtered view", |b| {
        b.iter(|| {
            out.clear();
            merged.index.write_page(
                &mut out,
                (&*id).into(),
                &merged.catalogs,
                None,
                0,
                |s, i| decisions.visible(s, i),
            );
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, authz);
criterion_main!(benches);
