//! The MCP load generator behind `ringmux-load`: virtual sessions on persistent keep-alive
//! connections, spread over one monoio runtime per worker thread, driving a weighted mix of
//! MCP requests in closed loop (fixed concurrency) or open loop (fixed rate, latency from the
//! intended send time: no coordinated omission).

pub mod client;
pub mod schedule;
pub mod stats;

use std::time::{Duration, Instant};

use client::{Conn, Endpoint};
use schedule::Schedule;
use stats::{ErrorKind, Recorder, Summary};

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `tools/call` of the configured tool with the configured arguments.
    Call,
    /// `tools/list`, walking every page (one request per page).
    List,
    Ping,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: Endpoint,
    /// Connections, each with its own MCP session.
    pub connections: usize,
    /// Worker threads (one monoio runtime each).
    pub threads: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop at this total rate (requests/s); `None`: closed loop.
    pub rate: Option<f64>,
    /// (op, weight).
    pub mix: Vec<(Op, u32)>,
    pub tool: String,
    /// The `arguments` object, as JSON text.
    pub arguments: String,
    pub timeout: Duration,
}

impl Options {
    /// The defaults `ringmux-load --help` lists, against `endpoint`.
    pub fn new(endpoint: Endpoint) -> Options {
        Options {
            endpoint,
            connections: 16,
            threads: 1,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            rate: None,
            mix: vec![(Op::Call, 1)],
            tool: "echo".into(),
            arguments: r#"{"message":"hello"}"#.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Runs the load and returns the merged measurements of the measured phase (after warm-up).
pub fn run(opts: &Options) -> Result<Summary, String> {
    if opts.connections == 0 || opts.threads == 0 {
        return Err("connections and threads must be at least 1".into());
    }
    if opts.mix.iter().all(|(_, w)| *w == 0) {
        return Err("the request mix is empty".into());
    }
    let threads = opts.threads.min(opts.connections);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + opts.warmup;
    let end = measure_from + opts.duration;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let opts = opts.clone();
            // Connection k goes to thread k % threads.
            let mine: Vec<usize> = (0..opts.connections).filter(|k| k % threads == t).collect();
            std::thread::Builder::new()
                .name(format!("ringmux-load-{t}"))
                .spawn(move || worker(&opts, &mine, start, measure_from, end))
                .expect("spawning a worker thread")
        })
        .collect();
    let mut total = Recorder::new();
    for h in handles {
        let r = h
            .join()
            .map_err(|_| "a worker thread panicked".to_string())??;
        total.merge(&r);
    }
    Ok(total.summary(opts.duration))
}

fn worker(
    opts: &Options,
    connections: &[usize],
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Result<Recorder, String> {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("building a runtime: {e}"))?;
    rt.block_on(async {
        let tasks: Vec<_> = connections
            .iter()
            .map(|&k| {
                let opts = opts.clone();
                monoio::spawn(async move { session(&opts, k, start, measure_from, end).await })
            })
            .collect();
        let mut total = Recorder::new();
        for t in tasks {
            total.merge(&t.await?);
        }
        Ok(total)
    })
}

/// xorshift64*: the per-connection request mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn pick(mix: &[(Op, u32)], rng: &mut Rng) -> Op {
    let total: u64 = mix.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut x = rng.next() % total;
    for (op, w) in mix {
        if x < u64::from(*w) {
            return *op;
        }
        x -= u64::from(*w);
    }
    unreachable!("x < total")
}

/// One connection and its session, from connect to the end of the run.
async fn session(
    opts: &Options,
    k: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Result<Recorder, String> {
    let mut rec = Recorder::new();
    let mut conn = Conn::connect(&opts.endpoint, opts.timeout)
        .await
        .map_err(|e| format!("connecting to {}: {e}", opts.endpoint.addr))?;
    conn.initialize()
        .await
        .map_err(|e| format!("initialize failed: {e}"))?;
    let schedule = opts
        .rate
        .map(|rate| Schedule::new(start, rate, opts.connections, k));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut body = Vec::with_capacity(256);
    let mut id: u64 = 1;
    let mut i: u64 = 0;
    loop {
        let intended = match &schedule {
            Some(s) => s.intended(i),
            None => Instant::now().max(start),
        };
        if intended >= end {
            break;
        }
        let now = Instant::now();
        if intended > now {
            monoio::time::sleep(intended - now).await;
        }
        i += 1;
        let op = pick(&opts.mix, &mut rng);
        let sent = Instant::now();
        let outcome = run_op(opts, &mut conn, op, &mut body, &mut id).await;
        let done = Instant::now();
        // Open loop: from the intended time (queueing included); closed loop: from the send.
        let from = if schedule.is_some() { intended } else { sent };
        if intended >= measure_from {
            rec.record(done - from, outcome);
        }
        if outcome == Err(ErrorKind::Connection) {
            // The server closed or reset the connection: open a new one and a new session.
            match reconnect(opts).await {
                Some(c) => conn = c,
                None => monoio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(rec)
}

async fn reconnect(opts: &Options) -> Option<Conn> {
    let mut c = Conn::connect(&opts.endpoint, opts.timeout).await.ok()?;
    c.initialize().await.ok()?;
    Some(c)
}

async fn run_op(
    opts: &Options,
    conn: &mut Conn,
    op: Op,
    body: &mut Vec<u8>,
    id: &mut u64,
) -> Result<(), ErrorKind> {
    let mut cursor: Option<String> = None;
    loop {
        *id += 1;
        body.clear();
        body.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        ringmux_core::http::write_usize(body, *id as usize);
        match op {
            Op::Call => {
                body.extend_from_slice(b",\"method\":\"tools/call\",\"params\":{\"name\":");
                ringmux_core::jsonrpc::write_str(body, &opts.tool);
                body.extend_from_slice(b",\"arguments\":");
                body.extend_from_slice(opts.arguments.as_bytes());
                body.extend_from_slice(b"}}");
            }
            Op::Ping => body.extend_from_slice(b",\"method\":\"ping\"}"),
            Op::List => {
                body.extend_from_slice(b",\"method\":\"tools/list\"");
                if let Some(c) = &cursor {
                    body.extend_from_slice(b",\"params\":{\"cursor\":");
                    ringmux_core::jsonrpc::write_str(body, c);
                    body.push(b'}');
                }
                body.push(b'}');
            }
        }
        conn.request(body).await?;
        if op != Op::List {
            return Ok(());
        }
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(rename = "nextCursor")]
            next: Option<String>,
        }
        let page: Page = serde_json::from_slice(&conn.result).map_err(|_| ErrorKind::Protocol)?;
        match page.next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_its_weights() {
        let mix = [(Op::Call, 8), (Op::List, 1), (Op::Ping, 1)];
        let mut rng = Rng(42);
        let mut calls = 0;
        for _ in 0..10_000 {
            if pick(&mix, &mut rng) == Op::Call {
                calls += 1;
            }
        }
        assert!((7_700..8_300).contains(&calls), "{calls}");
        let only_ping = [(Op::Call, 0), (Op::Ping, 3)];
        assert!((0..100).all(|_| pick(&only_ping, &mut rng) == Op::Ping));
    }
}
