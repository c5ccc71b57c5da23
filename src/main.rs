//! The ringmux binary: parse arguments, load the config, start the shards, wait.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use lexopt::prelude::*;
use ringmux::{probe, server};
use ringmux_core::config;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// mimalloc instead of glibc malloc: with glibc, the short-lived buffers of each `initialize`
/// left holes that long-lived session objects then pinned, so 100k idle sessions took 3.1 KB
/// of RSS each for 0.46 KB of live heap; mimalloc keeps size classes apart (ARCHITECTURE.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
ringmux — a thread-per-core MCP gateway

USAGE:
  ringmux run CONFIG.yaml        serve the gateway described by CONFIG
  ringmux check CONFIG.yaml      validate CONFIG and exit
  ringmux demo [--listen ADDR]   serve two built-in mock MCP servers behind the gateway
                                 (default ADDR 127.0.0.1:8080)
  ringmux tools URL              list the tools an MCP endpoint offers (walks every page)
  ringmux mock [FLAGS]           run the project's mock MCP server (ringmux mock --help)

Logs go to stderr; RINGMUX_LOG sets the filter (default: info).";

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The config at `path`, and the text it was read from.
fn load(path: &str) -> Result<(config::Config, String)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut cfg = config::load(&text, cores())
        .map_err(|e| anyhow::anyhow!(e.in_text(&text)))
        .with_context(|| format!("in {path}"))?;
    ringmux::backend::upstream::resolve(&mut cfg).with_context(|| format!("in {path}"))?;
    for auth in cfg.auth_blocks().flatten() {
        ringmux::auth::load_keys(auth)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("in {path}"))?;
    }
    if let Some(tls) = &cfg.tls {
        ringmux::tls::check(tls)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("in {path}: tls"))?;
    }
    if let Some(tls) = &cfg.admin_tls {
        ringmux::tls::check(tls)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("in {path}: admin.tls"))?;
    }
    Ok((cfg, text))
}

/// Where a running gateway's config came from (`ringmux run`): what a reload reads.
struct Source {
    path: String,
    text: String,
}

/// Runs the gateway until a signal stops it (`demo`: also point a newcomer at the admin page).
fn serve(cfg: config::Config, demo: bool, source: Option<Source>) -> Result<()> {
    let listeners =
        server::bind(cfg.listen, cfg.shards).with_context(|| format!("binding {}", cfg.listen))?;
    let admin = match cfg.admin {
        Some(at) => Some(
            std::net::TcpListener::bind(at)
                .with_context(|| format!("binding admin.listen {at}"))?,
        ),
        None => None,
    };
    let shards = cfg.shards;
    let token_sha256 = cfg.admin_token_sha256;
    let admin_loopback = cfg.admin.is_some_and(|a| a.ip().is_loopback());
    // Its own certificate watcher; its reloads are not counted in the gateway's metrics
    // (their counters have one writer each, the MCP listener's watcher).
    let admin_tls = match &cfg.admin_tls {
        Some(t) if admin.is_some() => Some(
            ringmux::tls::start(
                t,
                1,
                std::sync::Arc::new(ringmux::metrics::ShardMetrics::new(0)),
            )
            .map_err(anyhow::Error::msg)
            .context("admin.tls")?
            .remove(0),
        ),
        _ => None,
    };
    let admin_scheme = if admin_tls.is_some() { "https" } else { "http" };
    let path = cfg.path.clone();
    let tls = cfg.tls.is_some();
    let grace = cfg.limits.shutdown_grace;
    // Before the shards start, so that no signal finds the process without its handlers.
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing signal handlers")?;
    let srv = server::start(cfg, listeners)?;
    let reloads = source.map(|s| start_reloads(&srv, s)).transpose()?;
    let scheme = if tls { "https" } else { "http" };
    println!("ringmux listening on {scheme}://{}{path}", srv.addr);
    let Some(admin) = admin else {
        println!("ringmux admin off");
        return run_until_stopped(srv, signals, grace, reloads);
    };
    let admin = ringmux::admin::spawn(
        admin,
        ringmux::admin::Admin {
            metrics: srv.metrics.clone(),
            status: srv.status.clone(),
            shards,
            safety: srv.safety.clone(),
            token_sha256,
            loopback: admin_loopback,
        },
        admin_tls,
    )
    .context("starting the admin listener")?;
    println!("ringmux admin on {admin_scheme}://{admin}");
    if demo {
        println!(
            "open {admin_scheme}://{admin}/ for the admin page: the backends, their tools and live numbers\n\
             then try: ringmux tools {scheme}://{}{path}",
            srv.addr
        );
    }
    run_until_stopped(srv, signals, grace, reloads)
}

/// The reload thread: reloads on each SIGHUP (sent here by the signal thread), and when the
/// file's text changes (looked at every `reload.watch_interval_ms`).
fn start_reloads(srv: &server::Server, source: Source) -> Result<std::sync::mpsc::Sender<()>> {
    let reloader = srv.reloader(source.path.into(), source.text, cores());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("ringmux-reload".into())
        .spawn(move || loop {
            let wait = reloader
                .watch_interval()
                .unwrap_or(std::time::Duration::from_secs(3600));
            match rx.recv_timeout(wait) {
                Ok(()) => {
                    let _ = reloader.reload();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if reloader.watch_interval().is_some() {
                        let _ = reloader.reload_if_changed();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
        })
        .context("starting the reload thread")?;
    Ok(tx)
}

/// Waits for the shards; the first signal drains, a second exits at once.
fn run_until_stopped(
    srv: server::Server,
    mut signals: Signals,
    grace: std::time::Duration,
    reloads: Option<std::sync::mpsc::Sender<()>>,
) -> Result<()> {
    let drainer = srv.drainer();
    std::thread::Builder::new()
        .name("ringmux-signals".into())
        .spawn(move || {
            // SIGHUP reloads (when the config came from a file); SIGTERM and SIGINT stop.
            let mut signals = signals.forever().filter(|&s| {
                if s != SIGHUP {
                    return true;
                }
                match &reloads {
                    Some(tx) => {
                        tracing::info!("SIGHUP: reloading the config");
                        let _ = tx.send(());
                    }
                    None => tracing::warn!("SIGHUP ignored: this gateway's config is not from a file"),
                }
                false
            });
            let Some(first) = signals.next() else { return };
            tracing::info!(
                signal = first,
                grace_ms = grace.as_millis() as u64,
                "shutting down: no new connections; calls in progress may finish (a second signal exits now)"
            );
            drainer.drain();
            // A shard that cannot finish (stuck in a system call) must not keep the process.
            std::thread::spawn(move || {
                std::thread::sleep(grace + HARD_STOP_AFTER_GRACE);
                tracing::error!("shutdown did not finish in time; exiting");
                std::process::exit(1);
            });
            if let Some(second) = signals.next() {
                tracing::warn!(signal = second, "second signal: exiting now");
                std::process::exit(128 + second);
            }
        })?;
    srv.wait();
    tracing::info!("ringmux stopped");
    Ok(())
}

/// How long past `limits.shutdown_grace_ms` the process may take to stop its children and
/// shards before it exits regardless.
const HARD_STOP_AFTER_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGMUX_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    #[cfg(feature = "demo")]
    if std::env::args_os().nth(1).is_some_and(|a| a == "mock") {
        return match ringmux_load::mock::cli::run(std::env::args_os().skip(2)) {
            code if code == std::process::ExitCode::SUCCESS => Ok(()),
            _ => bail!("the mock server stopped"),
        };
    }
    let mut args = lexopt::Parser::from_env();
    let mut positional = Vec::new();
    let mut listen: SocketAddr = "127.0.0.1:8080".parse().expect("a literal address");
    while let Some(arg) = args.next()? {
        match arg {
            lexopt::Arg::Long("listen") => listen = args.value()?.parse()?,
            lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            lexopt::Arg::Value(v) => positional.push(v.string()?),
            other => bail!("{}\n\n{USAGE}", other.unexpected()),
        }
    }
    #[cfg(not(feature = "demo"))]
    let _ = listen; // only `ringmux demo` listens where --listen says
    match positional
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run", path] => {
            let (cfg, text) = load(path)?;
            let source = Source {
                path: path.to_string(),
                text,
            };
            serve(cfg, false, Some(source))
        }
        ["check", path] => {
            let (cfg, _) = load(path)?;
            println!(
                "{path}: ok ({} backends, {} shards)",
                cfg.backends.len(),
                cfg.shards
            );
            Ok(())
        }
        #[cfg(feature = "demo")]
        ["demo"] => {
            let (_backends, yaml) = ringmux::demo::backends()?;
            let yaml = format!("listen: {listen}\nadmin:\n  listen: 127.0.0.1:0\n{yaml}");
            serve(config::load(&yaml, cores())?, true, None)
        }
        ["tools", url] => {
            let mut client = probe::Client::connect(url)?;
            client.initialize()?;
            for tool in client.list_all("tools/list", "tools")? {
                let name = tool.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                let desc = tool
                    .get("description")
                    .and_then(|n| n.as_str())
                    .unwrap_or("");
                println!("{name}\t{desc}");
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
