//! Cross-shard cost: a request served on the shard that read it vs handed to another shard
//! through the same channels `src/hop.rs` uses (futures-channel unbounded MPSC in, oneshot
//! back, owned 300-byte body), and connection hand-off (the socket's fd sent to the owner
//! once) vs per-request forwarding.
//!
//! Two monoio runtimes (io_uring, as in the gateway), each on its own thread pinned to its own
//! core; the measuring loop runs on shard A, the owner is shard B.
//!
//! Run: `cargo bench -p ringmux-bench --bench hop -- --warm-up-time 1 --measurement-time 3`
//!
//! Machine: the project's 2-core x86-64 VM, rustc 1.95, release profile, 2026-11-22.
//!
//! | variant                                                          | time / request |
//! |------------------------------------------------------------------|----------------|
//! | served locally (task + oneshot on the same shard)                | 0.28 µs        |
//! | forwarded to the owner and back, one at a time                    | 73 µs          |
//! | forwarded to the owner and back, 16 in flight                     | 4.8 µs         |
//! | connection hand-off (duplicate fd, adopt, first reply), once      | 62 µs          |
//!
//! One request at a time, the cost is two cross-core wake-ups of an idle runtime; pipelining
//! amortizes them. A hand-off costs about one forwarded request and makes every later request
//! on that connection local, so ringmux hands connections over (once) and forwards only after
//! that (ARCHITECTURE.md, "Cross-shard").

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use monoio::io::AsyncWriteRentExt;
use ringmux_bench::TOOLS_CALL;

/// A request crossing to the owner: owned, like `hop::Hop`.
struct Hop {
    session: Box<str>,
    body: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

/// A connection handed to the owner.
struct Handoff {
    fd: OwnedFd,
    reply: oneshot::Sender<usize>,
}

enum ToOwner {
    Hop(Hop),
    Handoff(Handoff),
}

/// What the owner does with a request: a stand-in for `Shard::handle`, the same on both
/// sides so that only the crossing differs.
fn serve(session: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":4711,"result":{"content":[],"len":"#);
    out.extend_from_slice((body.len() + session.len()).to_string().as_bytes());
    out.extend_from_slice(b"}}");
    out
}

/// Runs `f` on a fresh runtime built like a shard's (io_uring, epoll fallback).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .with_entries(256)
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn pin(core: usize) {
    let _ = monoio::utils::bind_to_cpu_set(Some(core));
}

/// Shard B: serves its inbox, one task per request, like `hop::serve_inbox`.
fn start_owner() -> mpsc::UnboundedSender<ToOwner> {
    let (tx, mut rx) = mpsc::unbounded::<ToOwner>();
    std::thread::spawn(move || {
        pin(1 % cores());
        block_on(async move {
            while let Some(msg) = rx.next().await {
                monoio::spawn(async move {
                    match msg {
                        ToOwner::Hop(h) => {
                            let _ = h.reply.send(serve(&h.session, &h.body));
                        }
                        ToOwner::Handoff(h) => {
                            // Adopt the socket into this shard's ring and answer on it.
                            let std = TcpStream::from(h.fd);
                            std.set_nonblocking(true).expect("nonblocking");
                            let mut conn = monoio::net::TcpStream::from_std(std).expect("adopt");
                            let reply = serve("s", TOOLS_CALL);
                            let n = reply.len();
                            let (res, _) = conn.write_all(reply).await;
                            res.expect("write");
                            let _ = h.reply.send(n);
                        }
                    }
                });
            }
        });
    });
    tx
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

enum Work {
    Local,
    Hop,
    HopPipelined(usize),
    Handoff,
}

/// A measurement for shard A: what, how many times, where to report the elapsed time.
type Job = (Work, u64, std::sync::mpsc::Sender<Duration>);

/// Shard A: runs one measurement at a time, on request, and reports the elapsed time.
fn start_measurer(owner: mpsc::UnboundedSender<ToOwner>) -> std::sync::mpsc::Sender<Job> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::spawn(move || {
        pin(0);
        block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            while let Ok((work, iters, done)) = rx.recv() {
                let start = Instant::now();
                match work {
                    Work::Local => {
                        for _ in 0..iters {
                            // Served where it was read: a task and a oneshot on this shard.
                            let (rtx, rrx) = oneshot::channel();
                            monoio::spawn(async move {
                                let _ = rtx.send(serve("s", TOOLS_CALL));
                            });
                            std::hint::black_box(rrx.await.expect("reply"));
                        }
                    }
                    Work::Hop => {
                        for _ in 0..iters {
                            std::hint::black_box(hop(&owner).await);
                        }
                    }
                    Work::HopPipelined(depth) => {
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(depth as u64);
                            let pending: Vec<_> = (0..n).map(|_| hop(&owner)).collect();
                            for p in pending {
                                std::hint::black_box(p.await);
                            }
                            left -= n;
                        }
                    }
                    Work::Handoff => {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let mut client = TcpStream::connect(addr).expect("connect");
                            let (server, _) = listener.accept().expect("accept");
                            let start_one = Instant::now();
                            let (rtx, rrx) = oneshot::channel();
                            let fd = OwnedFd::from(server);
                            let _ =
                                owner.unbounded_send(ToOwner::Handoff(Handoff { fd, reply: rtx }));
                            let n = rrx.await.expect("handed off");
                            // Only the hand-off itself is counted, not the connection set-up.
                            total += start_one.elapsed();
                            let mut buf = vec![0; n];
                            client.read_exact(&mut buf).expect("read");
                            std::hint::black_box(buf);
                        }
                        let _ = done.send(total);
                        continue;
                    }
                }
                let _ = done.send(start.elapsed());
            }
        });
    });
    tx
}

fn hop(owner: &mpsc::UnboundedSender<ToOwner>) -> impl std::future::Future<Output = Vec<u8>> {
    let (rtx, rrx) = oneshot::channel();
    let msg = ToOwner::Hop(Hop {
        session: "0123456789abcdef0123456789abcdef".into(),
        body: TOOLS_CALL.to_vec(),
        reply: rtx,
    });
    let _ = owner.unbounded_send(msg);
    async move { rrx.await.expect("reply") }
}

fn measure(a: &std::sync::mpsc::Sender<Job>, work: Work, iters: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    a.send((work, iters, tx)).expect("measurer alive");
    rx.recv().expect("measured")
}

fn hops(c: &mut Criterion) {
    let a = start_measurer(start_owner());
    let mut g = c.benchmark_group("cross-shard");
    g.bench_function("served locally (task + oneshot on the same shard)", |b| {
        b.iter_custom(|iters| measure(&a, Work::Local, iters))
    });
    g.bench_function("hop to the owner and back, one at a time", |b| {
        b.iter_custom(|iters| measure(&a, Work::Hop, iters))
    });
    g.bench_function(
        "hop to the owner and back, 16 in flight (per request)",
        |b| b.iter_custom(|iters| measure(&a, Work::HopPipelined(16), iters)),
    );
    // Each iteration opens a loopback connection: keep the count well under the port range.
    g.sample_size(10).measurement_time(Duration::from_secs(1));
    g.bench_function(
        "connection hand-off to the owner (fd + adopt + first reply)",
        |b| b.iter_custom(|iters| measure(&a, Work::Handoff, iters)),
    );
    g.finish();
}

criterion_group!(benches, hops);
criterion_main!(benches);
