//! The fast mock MCP server: Streamable HTTP (MCP 2025-11-25) on monoio, one runtime and one
//! `SO_REUSEPORT` listener per thread. Used as the direct backend in benchmarks, by the
//! integration tests, by the gateway's demo, and (with [`MockConfig::conformance`]) as the
//! server the official MCP conformance suite runs against.
//!
//! Parts:
//! - [`catalog`]: the deterministic tool / prompt / resource lists and their pagination.
//! - [`tools`]: the default catalog's tools, prompts and resources, and what calling them does.
//! - [`fixtures`]: the conformance suite's fixtures (`conformance: true`).
//! - [`dispatch`]: the one table from MCP method to handler.
//! - [`session`]: sessions, GET-stream listeners, server→client requests, replay logs.
//! - [`emit`]: writing one response as JSON or as an SSE stream, event by event.
//! - [`tasks`]: tool calls that take time or send messages before their result.
//! - [`routes`]: answering one HTTP request (POST, GET, DELETE; sessions; Host/Origin; the
//!   2026-07-28 era with `modern`; the legacy HTTP+SSE transport with `sse`).
//! - [`conn`]: the HTTP/1.1 connection loop, the only code reading a socket.
//! - [`stdio`]: the stdio transport (`--stdio`): the same handlers, messages as lines.

mod catalog;
pub mod cli;
mod conn;
mod dispatch;
mod emit;
mod fixtures;
mod routes;
mod session;
pub mod stdio;
mod tasks;
mod tools;

use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::oneshot;
use socket2::{Domain, Protocol, Socket, Type};

use catalog::Catalog;
use session::Sessions;

/// What the mock serves and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    /// `serverInfo.name`, and the authority part of resource URIs (`mock://<name>/res/0`).
    pub name: String,
    /// Total tools listed: the eleven fixed ones (`echo`, `add`, …) plus generated
    /// `tool_0001`, … up to this many (the fixed ones are always there).
    pub tools: usize,
    /// Approximate size in bytes of each generated tool's JSON (the description is padded).
    pub tool_bytes: usize,
    /// Total prompts: `greet` plus `prompt_1`, … up to this many.
    pub prompts: usize,
    /// Resources `mock://<name>/res/0` … `res/<resources-1>`.
    pub resources: usize,
    /// Items per page of every list method; 0 puts everything in one page.
    pub page_size: usize,
    /// Slept before answering every request (not notifications).
    pub latency: Duration,
    /// Serve the `@modelcontextprotocol/conformance` fixtures instead of the default catalog,
    /// check Host/Origin (DNS rebinding), and prime every POST SSE stream with a resumable id.
    pub conformance: bool,
    /// Whether `GET /mcp` opens a standalone SSE stream (false: 405).
    pub get_stream: bool,
    /// Answer with SSE only when a tool must stream (progress, logging, sampling, …).
    pub json_only: bool,
    /// Server threads, each with its own runtime and listener on the same port.
    pub threads: usize,
    /// List the `crash` and `garbage` tools too (after the others).
    pub faults: bool,
    /// Also serve the sessionless era (2026-07-28): `server/discover`, `_meta` on every
    /// request, `input_required` for server→client requests, `subscriptions/listen`. Off, a
    /// request of that era is refused like a 2025-11-25 server refuses it (400, no session).
    pub modern: bool,
    /// Serve the legacy HTTP+SSE transport (2024-11-05) instead of Streamable HTTP: `GET /sse`
    /// opens a session's stream, whose first event names `/message?sessionId=…` to POST to.
    pub sse: bool,
    /// With `modern`: `server/discover` offers the stateful versions too, as a server serving
    /// both eras on one endpoint does.
    pub dual: bool,
    /// A stall: every `.1` the whole server answers nothing for `.0` (from its start; a
    /// request arriving in a stall waits for its end), like a pause of a garbage collector.
    /// For proving that an open-loop load generator sees what a closed loop hides.
    pub stall: Option<(Duration, Duration)>,
    /// List the `links` tool (a resource link and an embedded resource in its result).
    pub links: bool,
    /// List the `rug_pull` tool (it changes `echo`'s description and announces the change).
    pub rug_pull: bool,
    /// `instructions` in the initialize (and server/discover) result.
    pub instructions: Option<String>,
    /// Requests on the MCP endpoint must carry `Authorization: Bearer <this>` (401 with a
    /// `WWW-Authenticate` challenge otherwise), as a backend that authenticates its callers.
    pub require_bearer: Option<String>,
    /// The first this many `tools/list` requests get their connection closed with no answer
    /// (a backend that drops a request now and then, for retries).
    pub drop_lists: u32,
    /// List the `traceparent` tool (it answers the `traceparent` header its call came with).
    pub trace: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            name: "mock".into(),
            tools: 14,
            tool_bytes: 400,
            prompts: 3,
            resources: 3,
            page_size: 0,
            latency: Duration::ZERO,
            conformance: false,
            get_stream: true,
            json_only: false,
            threads: 1,
            faults: false,
            modern: false,
            sse: false,
            instructions: None,
            links: false,
            rug_pull: false,
            dual: false,
            require_bearer: None,
            stall: None,
            drop_lists: 0,
            trace: false,
        }
    }
}

/// State shared by every thread of one mock server.
pub(crate) struct Shared {
    pub cfg: MockConfig,
    pub catalog: Catalog,
    pub sessions: Sessions,
    /// Where sessionless (2026-07-28) requests run.
    pub stateless: Arc<session::Session>,
    /// When the server started (its stalls count from it).
    pub started: std::time::Instant,
    /// `tools/list` requests still to drop ([`MockConfig::drop_lists`]).
    pub lists_to_drop: std::sync::atomic::AtomicU32,
}

impl Shared {
    pub fn new(cfg: MockConfig) -> Shared {
        Shared {
            catalog: Catalog::new(&cfg),
            sessions: Sessions::default(),
            stateless: session::Session::unregistered(),
            started: std::time::Instant::now(),
            lists_to_drop: std::sync::atomic::AtomicU32::new(cfg.drop_lists),
            cfg,
        }
    }
}

/// A running mock server. Dropping it stops it (see [`MockHandle::stop`]).
pub struct MockHandle {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// `/mcp`, or `/sse` for the legacy transport.
    path: &'static str,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl MockHandle {
    /// The MCP endpoint, `http://ADDR/mcp` (`/sse` for the legacy transport).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }

    /// Closes the listeners and ends the server threads; open connections are dropped.
    pub fn stop(&mut self) {
        for stop in self.stops.drain(..) {
            // A thread that already ended dropped its receiver; nothing left to stop.
            let _ = stop.send(());
        }
        for t in self.threads.drain(..) {
            // A panicking server thread has already reported itself on stderr.
            let _ = t.join();
        }
    }

    /// Serves until the process is killed.
    pub fn wait(mut self) {
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` (port 0 allowed) and starts `cfg.threads` server threads on it. Returns once
/// every thread is accepting.
pub fn spawn(cfg: MockConfig, addr: SocketAddr) -> io::Result<MockHandle> {
    let threads = cfg.threads.max(1);
    let first = bind(addr)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(bind(addr)?);
    }
    let path = if cfg.sse { "/sse" } else { "/mcp" };
    let shared = Arc::new(Shared::new(cfg));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handle = MockHandle {
        addr,
        path,
        stops: Vec::with_capacity(threads),
        threads: Vec::with_capacity(threads),
    };
    for (i, listener) in listeners.into_iter().enumerate() {
        let (stop_tx, stop_rx) = oneshot::channel();
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("ringmux-mock-{i}"))
            .spawn(move || run_thread(listener, shared, stop_rx, ready))?;
        handle.stops.push(stop_tx);
        handle.threads.push(thread);
    }
    drop(ready_tx);
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a mock server thread died while starting")),
        }
    }
    Ok(handle)
}

/// A nonblocking listener with `SO_REUSEPORT`, so every thread can own one on the same port.
fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // Benchmarks open hundreds of connections at once; the default backlog (128) drops SYNs.
    socket.listen(4096)?;
    Ok(socket.into())
}

fn run_thread(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: oneshot::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match monoio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        accept_loop(listener, shared, stop).await;
    });
}

/// Accepts until `stop` fires (or its sender is dropped); connections run as local tasks and
/// die with the runtime when this returns.
async fn accept_loop(
    listener: monoio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        monoio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Responses are written whole; Nagle would only add latency.
                    let _ = stream.set_nodelay(true);
                    monoio::spawn(conn::serve(stream, shared.clone()));
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => monoio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}
