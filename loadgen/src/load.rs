//! The MCP load generator behind `ringmux-load`: virtual sessions on persistent keep-alive
//! connections, spread over one monoio runtime per worker thread, driving a weighted mix of
//! MCP requests in closed loop (fixed concurrency) or open loop (fixed rate, latency from the
//! intended send time: no coordinated omission).

pub mod client;
pub mod pace;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod template;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use client::{Conn, Endpoint};
use futures_util::future::Either;
use schedule::Schedule;
use stats::{ErrorKind, Recorder, Summary};
use template::Template;

/// One kind of request in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `tools/call` of the configured tool with the configured arguments.
    Call,
    /// `tools/list`, walking every page (one request per page).
    List,
    /// `resources/read` of the configured URI.
    Read,
    /// `prompts/get` of the configured prompt with its arguments.
    Prompt,
    Ping,
}

impl Op {
    /// The name `--mix` uses.
    pub fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "call" => Op::Call,
            "list" => Op::List,
            "read" => Op::Read,
            "prompt" => Op::Prompt,
            "ping" => Op::Ping,
            _ => return None,
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: Endpoint,
    /// Connections (keep-alive, each on one worker thread).
    pub connections: usize,
    /// MCP sessions, spread over the connections (at least one each); requests rotate over a
    /// connection's sessions. Ignored when sessionless.
    pub sessions: usize,
    /// Worker threads (one monoio runtime each).
    pub threads: usize,
    pub duration: Duration,
    /// Stop after this many measured requests instead of after `duration`.
    pub requests: Option<u64>,
    pub warmup: Duration,
    /// Open loop at this total rate (requests/s); `None`: closed loop.
    pub rate: Option<f64>,
    /// (op, weight).
    pub mix: Vec<(Op, u32)>,
    pub tool: String,
    /// The tool's `arguments`.
    pub arguments: Template,
    /// The resource `read` asks for.
    pub uri: String,
    pub prompt: String,
    pub prompt_arguments: Template,
    /// The protocol version asked for; 2026-07-28 runs sessionless.
    pub protocol: String,
    pub timeout: Duration,
    /// Open loop: the generator's p99 lateness over which the summary warns that its figures
    /// are not trustworthy.
    pub max_lateness: Duration,
    /// Open loop: how long before each send time the generator stops sleeping and polls the
    /// clock instead ([`pace`]): longer is more precise where waking from sleep is slow (a
    /// VM), and costs that much CPU per request.
    pub spin: Duration,
}

impl Options {
    /// The defaults `ringmux-load --help` lists, against `endpoint`.
    pub fn new(endpoint: Endpoint) -> Options {
        Options {
            endpoint,
            connections: 16,
            sessions: 0,
            threads: 1,
            duration: Duration::from_secs(10),
            requests: None,
            warmup: Duration::from_secs(1),
            rate: None,
            mix: vec![(Op::Call, 1)],
            tool: "echo".into(),
            arguments: Template::parse(r#"{"message":"hello"}"#).expect("a valid template"),
            uri: "mock://mock/res/0".into(),
            prompt: "greet".into(),
            prompt_arguments: Template::parse(r#"{"name":"load"}"#).expect("a valid template"),
            protocol: ringmux_core::version::LATEST_STATEFUL.into(),
            timeout: Duration::from_secs(10),
            max_lateness: Duration::from_micros(500),
            spin: Duration::from_micros(SPIN_US),
        }
    }

    /// How many sessions connection `k` opens.
    fn sessions_of(&self, k: usize) -> usize {
        let total = self.sessions.max(self.connections);
        total / self.connections + usize::from(k < total % self.connections)
    }

    /// How many measured requests connection `k` sends (count mode).
    fn requests_of(&self, k: usize) -> Option<u64> {
        let n = self.requests?;
        let c = self.connections as u64;
        Some(n / c + u64::from((k as u64) < n % c))
    }
}

/// The live view of a run, once a second (see [`run_with_progress`]).
#[derive(Debug, Clone)]
pub struct Progress {
    /// Since the start of the measured phase (negative: still warming up).
    pub elapsed: f64,
    /// Successful requests per second over the last interval.
    pub rate: f64,
    pub ok: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.elapsed < 0.0 {
            return write!(f, "warming up ({:.1} s left)", -self.elapsed);
        }
        write!(
            f,
            "{:6.1} s  {:10.1} req/s  {} ok  {} errors  p50 {:.3} ms  p99 {:.3} ms",
            self.elapsed,
            self.rate,
            self.ok,
            self.errors,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0
        )
    }
}

/// Runs the load and returns the merged measurements of the measured phase (after warm-up).
pub fn run(opts: &Options) -> Result<Summary, String> {
    run_with_progress(opts, |_| {})
}

/// [`run`], calling `progress` about once a second with the figures so far.
pub fn run_with_progress(
    opts: &Options,
    mut progress: impl FnMut(&Progress),
) -> Result<Summary, String> {
    if opts.connections == 0 || opts.threads == 0 {
        return Err("connections and threads must be at least 1".into());
    }
    if opts.mix.iter().all(|(_, w)| *w == 0) {
        return Err("the request mix is empty".into());
    }
    if opts.requests == Some(0) {
        return Err("the request count must be at least 1".into());
    }
    let threads = opts.threads.min(opts.connections);
    let start = Instant::now() + Duration::from_millis(200);
    let measure_from = start + opts.warmup;
    // Count mode runs until the count is reached (or a day has passed).
    let end = measure_from
        + match opts.requests {
            Some(_) => Duration::from_secs(86_400),
            None => opts.duration,
        };
    let (tx, rx) = mpsc::channel::<Recorder>();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let opts = opts.clone();
            let tx = tx.clone();
            // Connection k goes to thread k % threads.
            let mine: Vec<usize> = (0..opts.connections).filter(|k| k % threads == t).collect();
            let phase = Phase {
                start,
                measure_from,
                end,
            };
            std::thread::Builder::new()
                .name(format!("ringmux-load-{t}"))
                .spawn(move || worker(&opts, &mine, phase, tx))
                .expect("spawning a worker thread")
        })
        .collect();
    drop(tx);
    // Workers send what they measured about once a second and at the end; the channel
    // closes when the last worker is done.
    let mut total = Recorder::new();
    let mut window_ok = 0;
    let mut last_report = Instant::now();
    let mut last_done = measure_from;
    loop {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(part) => {
                window_ok += part.ok;
                total.merge(&part);
                last_done = last_done.max(part.last_done.unwrap_or(last_done));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            let secs = now.duration_since(last_report).as_secs_f64();
            let elapsed = if now >= measure_from {
                now.duration_since(measure_from).as_secs_f64()
            } else {
                -measure_from.duration_since(now).as_secs_f64()
            };
            progress(&Progress {
                elapsed,
                rate: window_ok as f64 / secs,
                ok: total.ok,
                errors: total.error_count(),
                p50_us: total.quantile_us(0.5),
                p99_us: total.quantile_us(0.99),
            });
            window_ok = 0;
            last_report = now;
        }
    }
    for h in handles {
        h.join()
            .map_err(|_| "a worker thread panicked".to_string())??;
    }
    let measured = match opts.requests {
        Some(_) => last_done.saturating_duration_since(measure_from),
        None => opts.duration,
    };
    let mut summary = total.summary(measured);
    if opts.rate.is_some() {
        summary.lateness = total.lateness(opts.max_lateness.as_micros() as u64);
    }
    Ok(summary)
}

#[derive(Clone, Copy)]
struct Phase {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

/// Default of [`Options::spin`], in µs.
pub const SPIN_US: u64 = 200;

/// Time between two shipments of a worker's measurements to the main thread.
const TICK: Duration = Duration::from_millis(500);

fn worker(
    opts: &Options,
    connections: &[usize],
    phase: Phase,
    tx: mpsc::Sender<Recorder>,
) -> Result<(), String> {
    pace::precise_thread();
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("building a runtime: {e}"))?;
    rt.block_on(async {
        // The thread's sessions record into one recorder; a ticker ships and resets it.
        let rec = Rc::new(RefCell::new(Recorder::new()));
        let spin = spin_for(opts, connections.len());
        let tasks: Vec<_> = connections
            .iter()
            .map(|&k| {
                let opts = opts.clone();
                let rec = rec.clone();
                monoio::spawn(async move { session(&opts, k, phase, &rec, spin).await })
            })
            .collect();
        // Ship and reset the recorder every tick until the sessions are done (the ticking
        // lives in this future: a spawned ticker would outlive the runtime with its sender).
        let mut all = std::pin::pin!(futures_util::future::join_all(tasks));
        let results = loop {
            let tick = std::pin::pin!(monoio::time::sleep(TICK));
            match futures_util::future::select(all.as_mut(), tick).await {
                Either::Left((results, _)) => break results,
                Either::Right(((), _)) => {
                    let _ = tx.send(std::mem::take(&mut *rec.borrow_mut()));
                }
            }
        };
        let _ = tx.send(std::mem::take(&mut *rec.borrow_mut()));
        let failed = results.into_iter().find_map(Result::err);
        failed.map_or(Ok(()), Err)
    })
}

/// How long before each send time a thread with `mine` of the connections polls the clock:
/// `--spin-us`, cut so that polling takes at most a quarter of the thread's time at its share
/// of the rate. (A busy thread is woken by its I/O anyway, so its timer wake-ups come on time
/// without it; an idle one is the one the hypervisor wakes late.)
fn spin_for(opts: &Options, mine: usize) -> Duration {
    let Some(rate) = opts.rate else {
        return Duration::ZERO;
    };
    let thread_rate = rate * mine as f64 / opts.connections.max(1) as f64;
    if thread_rate <= 0.0 {
        return opts.spin;
    }
    opts.spin
        .min(Duration::from_secs_f64(MAX_SPIN_SHARE / thread_rate))
}

/// The largest share of a worker thread's time spent polling the clock ([`spin_for`]).
const MAX_SPIN_SHARE: f64 = 0.25;

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

/// One connection and its sessions, from connect to the end of the run.
async fn session(
    opts: &Options,
    k: usize,
    phase: Phase,
    rec: &RefCell<Recorder>,
    spin: Duration,
) -> Result<(), String> {
    let Phase {
        start,
        measure_from,
        end,
    } = phase;
    let mut conn = Conn::connect(&opts.endpoint, &opts.protocol, opts.timeout)
        .await
        .map_err(|e| format!("connecting to {}: {e}", opts.endpoint.addr))?;
    let sessions = if conn.is_sessionless() {
        1
    } else {
        opts.sessions_of(k)
    };
    for _ in 0..sessions {
        conn.initialize()
            .await
            .map_err(|e| format!("initialize failed: {e}"))?;
    }
    let schedule = opts
        .rate
        .map(|rate| Schedule::new(start, rate, opts.connections, k));
    let quota = opts.requests_of(k);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1).wrapping_mul(0x1000_0000_01b3));
    let mut req = Request {
        body: Vec::with_capacity(256),
        id: 1,
        meta: conn
            .is_sessionless()
            .then(|| format!(",\"_meta\":{}", client::meta_object())),
    };
    let mut pacer = pace::Pacer::new(spin);
    let mut i: u64 = 0;
    let mut measured: u64 = 0;
    // When this connection's previous request was answered (open loop: a request meant for
    // earlier than that had to wait for the connection).
    let mut free_at = start;
    loop {
        if quota.is_some_and(|q| measured >= q) {
            break;
        }
        let intended = match &schedule {
            Some(s) => s.intended(i),
            None => Instant::now().max(start),
        };
        if intended >= end {
            break;
        }
        pacer.until(intended).await;
        if sessions > 1 {
            conn.use_session(i as usize % sessions);
        }
        let op = pick(&opts.mix, &mut rng);
        let sent = Instant::now();
        if schedule.is_some() && intended >= measure_from {
            let mut rec = rec.borrow_mut();
            if free_at > intended {
                rec.queued += 1;
            } else {
                rec.record_lateness(sent.saturating_duration_since(intended));
            }
        }
        let outcome = req.run(opts, &mut conn, op, i, k).await;
        i += 1;
        let done = Instant::now();
        free_at = done;
        // Open loop: from the intended time (queueing included); closed loop: from the send.
        let from = if schedule.is_some() { intended } else { sent };
        if intended >= measure_from {
            measured += 1;
            let mut rec = rec.borrow_mut();
            rec.record(done - from, outcome);
            rec.last_done = Some(done);
        }
        match outcome {
            // The server closed or reset the connection: open a new one (sessions survive).
            Err(ErrorKind::Connection) if conn.reconnect().await.is_err() => {
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
            // The server forgot the session: open a new one in its place.
            Err(ErrorKind::Http(404)) if !conn.is_sessionless() => {
                let _ = conn.reinitialize_current().await;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Builds request bodies into one reused buffer.
struct Request {
    body: Vec<u8>,
    id: u64,
    /// `,"_meta":{…}` for sessionless requests.
    meta: Option<String>,
}

impl Request {
    /// `{"jsonrpc":"2.0","id":N,"method":"METHOD"`
    fn start(&mut self, method: &str) {
        self.id += 1;
        self.body.clear();
        self.body.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        ringmux_core::http::write_usize(&mut self.body, self.id as usize);
        self.body.extend_from_slice(b",\"method\":");
        ringmux_core::jsonrpc::write_str(&mut self.body, method);
        self.body.extend_from_slice(b",\"params\":{");
    }

    /// Closes `params` (adding `_meta` when sessionless) and the message.
    fn finish(&mut self) {
        if let Some(meta) = &self.meta {
            if self.body.last() == Some(&b'{') {
                self.body.extend_from_slice(&meta.as_bytes()[1..]);
            } else {
                self.body.extend_from_slice(meta.as_bytes());
            }
        }
        self.body.extend_from_slice(b"}}");
    }

    async fn run(
        &mut self,
        opts: &Options,
        conn: &mut Conn,
        op: Op,
        seq: u64,
        k: usize,
    ) -> Result<(), ErrorKind> {
        let (method, name) = match op {
            Op::Call => ("tools/call", Some(&opts.tool)),
            Op::Prompt => ("prompts/get", Some(&opts.prompt)),
            Op::Read => ("resources/read", Some(&opts.uri)),
            Op::List => ("tools/list", None),
            Op::Ping => ("ping", None),
        };
        let mut cursor: Option<String> = None;
        loop {
            self.start(method);
            match op {
                Op::Call | Op::Prompt => {
                    self.body.extend_from_slice(b"\"name\":");
                    ringmux_core::jsonrpc::write_str(&mut self.body, name.expect("named"));
                    self.body.extend_from_slice(b",\"arguments\":");
                    let args = if op == Op::Call {
                        &opts.arguments
                    } else {
                        &opts.prompt_arguments
                    };
                    args.render(&mut self.body, seq, k);
                }
                Op::Read => {
                    self.body.extend_from_slice(b"\"uri\":");
                    ringmux_core::jsonrpc::write_str(&mut self.body, &opts.uri);
                }
                Op::List => {
                    if let Some(c) = &cursor {
                        self.body.extend_from_slice(b"\"cursor\":");
                        ringmux_core::jsonrpc::write_str(&mut self.body, c);
                    }
                }
                Op::Ping => {}
            }
            self.finish();
            conn.request(&self.body, method, name.map(String::as_str))
                .await?;
            if op != Op::List {
                return Ok(());
            }
            // Most pages are the last one: when the text has no "nextCursor" anywhere, skip
            // parsing a page that can be megabytes (the envelope was validated already).
            if memchr::memmem::find(&conn.result, b"\"nextCursor\"").is_none() {
                return Ok(());
            }
            #[derive(serde::Deserialize)]
            struct Page {
                #[serde(rename = "nextCursor")]
                next: Option<String>,
            }
            let page: Page =
                serde_json::from_slice(&conn.result).map_err(|_| ErrorKind::Protocol)?;
            match page.next {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
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
