//! Test harness: real processes on ephemeral ports. Mock MCP backends run as `ringmux mock`
//! child processes (so a test can kill one), the gateway as `ringmux run CONFIG`. Every child is
//! killed by PID when its handle drops. No fixed ports, no sleeps as synchronization: each
//! process prints its URL once it is listening, and the harness waits for that line.

// Each test crate uses a different part of the harness.
#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub use ringmux::probe::{Client, RawResponse};
pub use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ringmux");

/// A child process killed on drop; its stderr is collected for failure messages.
pub struct Proc {
    child: Child,
    pub url: String,
    /// A gateway's admin listener (`/metrics`, `/healthz`, `/readyz`), e.g.
    /// `http://127.0.0.1:41234`; empty for a mock.
    pub admin: String,
    /// A gateway's config file (what a reload reads).
    pub config: Option<PathBuf>,
    stderr: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_with(args, env, None, false)
    }

    /// `nofile`: the child's descriptor limit (soft and hard), as `ulimit -n` would set it.
    /// `ignore_sigint`: started as a script's background job is (SIGINT ignored).
    fn spawn_with(
        args: &[String],
        env: &[(&str, &str)],
        nofile: Option<u64>,
        ignore_sigint: bool,
    ) -> Proc {
        let mut cmd = Command::new(BIN);
        if ignore_sigint {
            use std::os::unix::process::CommandExt;
            // SAFETY: signal(2) is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    Ok(())
                });
            }
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting ringmux");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            let _ = err_tx.send(all);
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // A gateway says where it listens, then where its admin listener does.
            for _ in 0..2 {
                if let Some(Ok(line)) = lines.next() {
                    let _ = tx.send(line);
                }
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{args:?} did not start: {}",
                    err_rx
                        .recv_timeout(Duration::from_secs(2))
                        .unwrap_or_default()
                );
            }
        };
        let url = line
            .rsplit(' ')
            .next()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let admin = if args.first().is_some_and(|a| a == "run" || a == "demo") {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the gateway names its admin listener");
            match line.strip_prefix("ringmux admin on ") {
                Some(url) => url.to_owned(),
                None if line == "ringmux admin off" => String::new(),
                None => panic!("unexpected second line {line:?}"),
            }
        } else {
            String::new()
        };
        Proc {
            child,
            url,
            admin,
            config: None,
            stderr: err_rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process now (a backend going down).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (SIGTERM, SIGINT…) to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child, not yet reaped (so its pid is not reused).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, signal);
        }
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running (a crashed shard would take it down).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process and returns what it logged.
    pub fn logs(mut self) -> String {
        self.kill();
        self.stderr
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ringmux demo` on an ephemeral port: the README's first command.
pub fn demo() -> Proc {
    Proc::spawn(
        &["demo".into(), "--listen".into(), "127.0.0.1:0".into()],
        &[],
    )
}

/// `ringmux check` on a config of `text` (in a temporary file named for `name`); returns
/// (success, stderr).
pub fn check_config(name: &str, text: &str) -> (bool, String) {
    let path = std::env::temp_dir().join(format!("ringmux-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, text).expect("writing the config");
    let (ok, _, err) = run_cli(&["check", path.to_str().expect("a UTF-8 path")]);
    let _ = std::fs::remove_file(&path);
    (ok, err)
}

/// Runs `ringmux ARGS` to completion; returns (success, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("running ringmux");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A mock backend under construction.
pub struct MockBuilder {
    args: Vec<String>,
}

pub fn mock(name: &str) -> MockBuilder {
    MockBuilder {
        args: vec![
            "mock".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--name".into(),
            name.into(),
        ],
    }
}

impl MockBuilder {
    pub fn arg(mut self, flag: &str, value: impl ToString) -> Self {
        self.args.push(flag.into());
        self.args.push(value.to_string());
        self
    }

    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.into());
        self
    }

    pub fn tools(self, n: usize) -> Self {
        self.arg("--tools", n)
    }

    pub fn page_size(self, n: usize) -> Self {
        self.arg("--page-size", n)
    }

    pub fn start(self) -> Proc {
        Proc::spawn(&self.args, &[])
    }
}

/// A gateway under construction.
pub struct GatewayBuilder {
    shards: usize,
    nofile: Option<u64>,
    ignore_sigint: bool,
    backends: Vec<(String, String, String)>,
    extra: String,
}

pub fn gateway() -> GatewayBuilder {
    GatewayBuilder {
        shards: 1,
        nofile: None,
        ignore_sigint: false,
        backends: Vec::new(),
        extra: String::new(),
    }
}

static CONFIGS: AtomicUsize = AtomicUsize::new(0);

impl GatewayBuilder {
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// Starts the gateway with SIGINT ignored, as a script's background job.
    pub fn ignoring_sigint(mut self) -> Self {
        self.ignore_sigint = true;
        self
    }

    /// Starts the gateway with this descriptor limit (`ulimit -n`).
    pub fn nofile(mut self, n: u64) -> Self {
        self.nofile = Some(n);
        self
    }

    /// A backend by name and URL.
    pub fn backend(mut self, name: &str, url: &str) -> Self {
        self.backends.push((name.into(), url.into(), String::new()));
        self
    }

    /// A backend with extra YAML keys (e.g. "request_timeout_ms: 300").
    pub fn backend_with(mut self, name: &str, url: &str, keys: &str) -> Self {
        self.backends.push((name.into(), url.into(), keys.into()));
        self
    }

    /// A stdio backend running `ringmux mock --stdio --faults` as `name`, with more YAML
    /// keys (`mode: shared`, …).
    pub fn stdio_mock(self, name: &str, keys: &str) -> Self {
        self.stdio_mock_with(name, &[], keys)
    }

    /// [`Self::stdio_mock`] with more mock flags.
    pub fn stdio_mock_with(mut self, name: &str, flags: &[&str], keys: &str) -> Self {
        let flags: String = flags.iter().map(|f| format!(", {f}")).collect();
        let mut yaml =
            format!("command: {BIN}\nargs: [mock, --stdio, --faults, --name, {name}{flags}]\n");
        yaml.push_str(keys);
        self.backends.push((name.into(), String::new(), yaml));
        self
    }

    /// Extra top-level YAML.
    pub fn yaml(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    pub fn config_text(&self) -> String {
        let admin = if self.extra.contains("admin:") {
            ""
        } else {
            "admin:\n  listen: 127.0.0.1:0\n"
        };
        let mut y = format!(
            "listen: 127.0.0.1:0\nshards: {}\npin_cores: false\n{admin}{}backends:\n",
            self.shards, self.extra
        );
        for (name, url, keys) in &self.backends {
            y.push_str(&format!("  - name: {name}\n"));
            if !url.is_empty() {
                y.push_str(&format!("    url: {url}\n"));
            }
            for line in keys.lines() {
                y.push_str(&format!("    {line}\n"));
            }
        }
        y
    }

    pub fn start(self) -> Proc {
        let path = config_path();
        std::fs::write(&path, self.config_text()).expect("writing the test config");
        let mut gw = Proc::spawn_with(
            &["run".into(), path.display().to_string()],
            &[("RINGMUX_LOG", "info")],
            self.nofile,
            self.ignore_sigint,
        );
        gw.config = Some(path);
        gw
    }
}

fn config_path() -> PathBuf {
    let n = CONFIGS.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("ringmux-test-{}-{n}.yaml", std::process::id()))
}

/// A connected, initialized client.
pub fn client(url: &str) -> Client {
    let mut c = Client::connect(url).expect("connecting");
    c.initialize().expect("initialize");
    c
}

/// Another connection on `c`'s session.
pub fn sibling(url: &str, c: &Client) -> Client {
    let mut s = Client::connect(url).expect("connecting");
    s.session = c.session.clone();
    s.protocol_version = c.protocol_version.clone();
    s
}

/// One 2026-07-28 request to `url`: `params` with the era's `_meta` (declaring `caps`), the
/// routing headers, and `extra` headers. Its answer's last message.
pub fn modern_request(
    url: &str,
    id: u64,
    method: &str,
    mut params: Value,
    caps: Value,
    extra: &[(&str, &str)],
) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "ringmux-test", "version": "1"},
    });
    let name = params["name"].as_str().map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        headers.push(("mcp-name", n));
    }
    headers.extend_from_slice(extra);
    let mut c = Client::connect(url).expect("connecting");
    let resp = c
        .send("POST", body.to_string().as_bytes(), &headers)
        .expect("POST");
    resp.messages().last().cloned().expect("an answer")
}

/// The text of a tools/call result's first content item.
pub fn text_of(msg: &Value) -> &str {
    msg.pointer("/result/content/0/text")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no text content in {msg}"))
}

/// The JSON-RPC error code of a response.
pub fn error_code(msg: &Value) -> i64 {
    msg.pointer("/error/code")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("not an error: {msg}"))
}

/// The live (not yet reaped included) child processes of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let Ok(entry) = entry else { continue };
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …: comm may hold spaces and parentheses.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// Resident memory of `pid`, in bytes.
pub fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/PID/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// Memory `pid` holds, in bytes: resident memory less the pages it gave back lazily
/// (MADV_FREE: counted as resident until the kernel needs them, which allocators use).
pub fn held_memory_of(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .expect("/proc/PID/smaps_rollup");
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    field("Rss:").saturating_sub(field("LazyFree:"))
}

/// Open file descriptors of `pid`.
pub fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// Whether `pid` is gone (or a zombie waiting for a reaper that is not its parent).
pub fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Polls `cond` every 20 ms for up to `limit`; whether it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to 10 s) until gateway metric `name` reaches `at_least`; panics otherwise.
pub fn wait_metric(url: &str, name: &str, at_least: u64) {
    let mut last = 0;
    let reached = eventually(Duration::from_secs(10), || {
        last = metric(url, name);
        last >= at_least
    });
    assert!(reached, "{name} stayed at {last}, below {at_least}");
}

/// Reads a gateway metric (summed over shards) from /metrics on its admin listener (`admin`:
/// [`Proc::admin`]).
pub fn metric(admin: &str, name: &str) -> u64 {
    let mut c = Client::connect(&format!("{admin}/metrics")).expect("connecting");
    let resp = c.send("GET", b"", &[]).expect("scraping");
    assert_eq!(resp.status, 200, "scraping {admin}/metrics");
    String::from_utf8_lossy(&resp.body)
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Asserts that the memory `pid` holds drops under `limit` bytes (allocators give freed
/// pages back with a delay).
pub fn memory_settles_under(pid: u32, limit: u64, what: &str) {
    let mut held = 0;
    assert!(
        eventually(Duration::from_secs(10), || {
            held = held_memory_of(pid);
            held < limit
        }),
        "{what}: {} MiB held, the bound is {} MiB",
        held >> 20,
        limit >> 20
    );
}

/// Runs ringmux-load (as a library) against the gateway at `url`: for each (protocol version,
/// requests), that many calls of `tool` over 4 connections and 8 sessions. Asserts that every
/// call was answered without error; the calls made.
pub fn load_calls(url: &str, tool: &str, runs: &[(&str, u64)]) -> u64 {
    use ringmux_load::load::{self, client::Endpoint, Options};
    let mut sent = 0;
    for &(protocol, requests) in runs {
        let mut opts = Options::new(Endpoint::parse(url).unwrap());
        opts.connections = 4;
        opts.sessions = 8;
        opts.requests = Some(requests);
        opts.warmup = Duration::ZERO;
        opts.tool = tool.into();
        opts.protocol = protocol.into();
        let summary = load::run(&opts).unwrap();
        assert_eq!(summary.error_total(), 0, "{protocol}: {:?}", summary.errors);
        assert_eq!(summary.ok, requests, "{protocol}");
        sent += summary.ok;
    }
    sent
}
