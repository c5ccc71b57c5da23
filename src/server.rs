//! Starting the shards: one OS thread per shard, each pinned to a core and running its own
//! monoio runtime (io_uring, or epoll where io_uring is unavailable) with its own
//! SO_REUSEPORT listener, its inbox for cross-shard hops, and its idle-session sweeper.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_channel::mpsc;
use monoio::net::TcpListener;
use ringmux_core::config::Config;

use crate::front::hop;
use crate::metrics::ShardMetrics;
use crate::peers::{Inbox, Peers};
use crate::shard::Shard;

/// A running gateway.
pub struct Server {
    pub addr: SocketAddr,
    pub metrics: Arc<[Arc<ShardMetrics>]>,
    /// What readiness reads: shards up, shutting down.
    pub status: Arc<Status>,
    /// Tool safety's quarantine, for the admin API (`None` without `tool_safety:`).
    pub safety: Option<crate::safety::Control>,
    threads: Vec<JoinHandle<()>>,
    peers: Peers,
    /// The access log's writer thread (`None` without `access_log:`).
    access: Option<crate::access::Writer>,
    /// The trace exporter's thread (`None` without `traces:`).
    traces: Option<crate::otel::Exporter>,
    /// What a reload starts from: the running config and the shared children's handles.
    cfg: Arc<Config>,
    handles: Arc<[Option<crate::backend::stdio::Handle>]>,
}

/// What readiness and the admin API read of the gateway ([`crate::snapshot::Status`]).
pub use crate::snapshot::Status;

/// Backend indices the metrics keep room for beyond those at start: what reloads may add
/// (a removed backend keeps its index until a restart).
pub const RELOAD_SLOTS: usize = 256;

/// How often each shard looks for idle sessions, at most: a quarter of the idle timeout when
/// that is shorter (not under 100 ms), so sessions end close to their time.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

fn sweep_every(session_idle: Duration) -> Duration {
    (session_idle / 4).clamp(Duration::from_millis(100), SWEEP_EVERY)
}

/// Binds `shards` SO_REUSEPORT listeners on one address (the first picks the port if it is 0).
pub fn bind(addr: SocketAddr, shards: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(shards);
    let mut addr = addr;
    for _ in 0..shards {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let l: std::net::TcpListener = socket.into();
        addr = l.local_addr()?;
        listeners.push(l);
    }
    Ok(listeners)
}

/// Raises the descriptor limit to its hard limit and gives client connections three quarters
/// of it: the rest stays for backend connections, stdio children's pipes, listeners and the
/// rings, so a flood of clients cannot starve the sessions already open.
fn default_max_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 768;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    let fds = usize::try_from(lim.rlim_cur)
        .unwrap_or(usize::MAX)
        .min(1 << 24);
    (fds / 4 * 3).max(16)
}

/// Starts a graceful shutdown from any thread.
#[derive(Clone)]
pub struct Drainer(Peers, Arc<Status>);

impl Drainer {
    pub fn drain(&self) {
        self.1
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for tx in &self.0 .0 {
            let _ = tx.unbounded_send(Inbox::Drain);
        }
    }
}

/// Whether this kernel and sandbox allow io_uring.
pub fn io_uring_available() -> bool {
    monoio::utils::detect_uring()
}

/// Starts every shard on pre-bound listeners (one per shard).
pub fn start(mut cfg: Config, listeners: Vec<std::net::TcpListener>) -> io::Result<Server> {
    crate::backend::upstream::resolve(&mut cfg)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if cfg.modern.request_state_key.is_none() {
        // Every shard seals and opens 2026-07-28 requestState with one key per process.
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
        cfg.modern.request_state_key = Some(key);
    }
    if cfg.limits.max_connections == 0 {
        cfg.limits.max_connections = default_max_connections();
    }
    tracing::info!(
        max_connections = cfg.limits.max_connections,
        "client connection limit"
    );
    let cfg = Arc::new(cfg);
    let shards = cfg.shards;
    assert_eq!(listeners.len(), shards, "one listener per shard");
    let addr = listeners[0].local_addr()?;
    if io_uring_available() {
        tracing::info!(shards, "io_uring driver");
    } else {
        tracing::warn!(
            shards,
            "io_uring is unavailable here (kernel or seccomp); falling back to the epoll driver"
        );
    }
    let metrics: Arc<[Arc<ShardMetrics>]> = (0..shards)
        .map(|_| Arc::new(ShardMetrics::new(cfg.backends.len() + RELOAD_SLOTS)))
        .collect();
    // The issuer's keys for every shard: read once, or fetched now and then refreshed by a
    // thread of their own (`jwks_url`).
    // One feed per `auth:` (the main endpoint's, then each route's), per shard.
    let mut feeds: Vec<Vec<Option<crate::auth::KeyFeed>>> =
        (0..shards).map(|_| Vec::new()).collect();
    for auth in cfg.auth_blocks() {
        let per_shard = match auth {
            Some(auth) => crate::auth::start_keys(auth, shards, metrics[0].clone())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            None => (0..shards).map(|_| None).collect(),
        };
        for (shard, feed) in feeds.iter_mut().zip(per_shard) {
            shard.push(feed);
        }
    }
    // The audit log, opened once; each shard writes through its own descriptor.
    let audit = match &cfg.audit {
        Some(a) => Some(
            crate::audit::open(a)
                .map_err(|e| io::Error::new(e.kind(), format!("audit.path: {e}")))?,
        ),
        None => None,
    };
    // The access log's writer thread; each shard batches its lines for it.
    let access = match &cfg.access_log {
        Some(a) => {
            let out = crate::audit::open_path(a.path.as_deref())
                .map_err(|e| io::Error::new(e.kind(), format!("access_log.path: {e}")))?;
            Some(crate::access::Writer::start(out)?)
        }
        None => None,
    };
    // The trace exporter; each shard batches its spans for it.
    let traces = match &cfg.traces {
        Some(t) => {
            let mut routes = vec![cfg.path.clone()];
            routes.extend(cfg.routes.iter().map(|r| r.path.clone()));
            let names = crate::otel::Names {
                service: t.service_name.clone(),
                backends: cfg.backends.iter().map(|b| b.name.clone()).collect(),
                routes,
            };
            Some(crate::otel::Exporter::start(t, names, metrics[0].clone())?)
        }
        None => None,
    };
    // Tool safety's thread (it owns the pin file) and each shard's end of it.
    let mut safety_control = None;
    let safety: Vec<Option<crate::safety::Feed>> = match &cfg.tool_safety {
        Some(ts) => {
            let thread_audit = match (&audit, &cfg.audit) {
                (Some(f), Some(a)) => Some(crate::audit::Audit::new(f.try_clone()?, a)),
                _ => None,
            };
            let (feeds, control) =
                crate::safety::start(ts, shards, metrics[0].clone(), thread_audit)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            safety_control = Some(control);
            feeds.into_iter().map(Some).collect()
        }
        None => (0..shards).map(|_| None).collect(),
    };
    // The listener's certificate for every shard, watched by a thread of its own.
    let tls: Vec<Option<crate::tls::Listener>> = match &cfg.tls {
        Some(tls) => crate::tls::start(tls, shards, metrics[0].clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("tls: {e}")))?
            .into_iter()
            .map(Some)
            .collect(),
        None => (0..shards).map(|_| None).collect(),
    };
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..shards).map(|_| mpsc::unbounded()).unzip();
    let peers = Peers(senders);
    // Shards still draining at shutdown: each serves the others' hops until all are done.
    let draining = Arc::new(AtomicUsize::new(shards));
    let status = Arc::new(Status {
        backends: std::sync::Mutex::new(
            cfg.backends
                .iter()
                .map(crate::snapshot::BackendRow::of)
                .collect(),
        ),
        ..Status::default()
    });
    // A shared stdio (or legacy SSE) backend's child is driven by the shard its stable id
    // names (`id % shards`: the same shard whatever its place in the config); every shard
    // holds a handle to it.
    let mut handles = Vec::with_capacity(cfg.backends.len());
    let mut owned: Vec<Vec<(usize, crate::backend::stdio::Inbox)>> =
        (0..shards).map(|_| Vec::new()).collect();
    for (b, backend) in cfg.backends.iter().enumerate() {
        if backend.actor_driven() && backend.shared {
            let (tx, rx) = crate::backend::stdio::channel();
            owned[backend.id.0 as usize % shards].push((b, rx));
            handles.push(Some(tx));
        } else {
            handles.push(None);
        }
    }
    let handles: Arc<[Option<crate::backend::stdio::Handle>]> = handles.into();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = Vec::with_capacity(shards);
    for (id, (((((listener, inbox), children), key_feed), tls), safety)) in listeners
        .into_iter()
        .zip(inboxes)
        .zip(owned)
        .zip(feeds)
        .zip(tls)
        .zip(safety)
        .enumerate()
    {
        let cfg = cfg.clone();
        let handles = handles.clone();
        let metrics = metrics.clone();
        let peers = peers.clone();
        let draining = draining.clone();
        let up = status.clone();
        let audit = match &audit {
            Some(f) => Some(f.try_clone()?),
            None => None,
        };
        let access = access.as_ref().map(crate::access::Writer::shard);
        let tracer = traces.as_ref().map(|t| t.tracer(id));
        let thread = std::thread::Builder::new()
            .name(format!("ringmux-shard-{id}"))
            .spawn(move || {
                if cfg.pin_cores {
                    if let Err(e) = monoio::utils::bind_to_cpu_set(Some(id % cores)) {
                        tracing::warn!(shard = id, "could not pin to a core: {e:?}");
                    }
                }
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .with_entries(cfg.ring_entries)
                    .enable_timer()
                    .build()
                    .expect("building the shard runtime");
                let stdio = StdioChildren {
                    handles,
                    children,
                    key_feed,
                    tls,
                    audit,
                    access,
                    tracer,
                    safety,
                    up,
                };
                rt.block_on(run_shard(
                    id, cfg, metrics, peers, listener, inbox, stdio, &draining,
                ));
            })?;
        threads.push(thread);
    }
    tracing::info!(%addr, "ringmux listening");
    Ok(Server {
        addr,
        metrics,
        status,
        safety: safety_control,
        threads,
        peers,
        access,
        traces,
        cfg,
        handles,
    })
}

/// What a shard needs of the shared stdio and legacy SSE children: every one's handle, and the inboxes of
/// those it drives (by backend index).
struct StdioChildren {
    handles: Arc<[Option<crate::backend::stdio::Handle>]>,
    children: Vec<(usize, crate::backend::stdio::Inbox)>,
    /// (And the shard's ends of the JWKS fetchers: the main endpoint's, then each route's.)
    key_feed: Vec<Option<crate::auth::KeyFeed>>,
    /// (And of the TLS file watcher.)
    tls: Option<crate::tls::Listener>,
    /// (And its descriptor of the audit log.)
    audit: Option<std::fs::File>,
    /// (And its end of the access log.)
    access: Option<crate::access::Shard>,
    /// (And its end of the trace exporter.)
    tracer: Option<crate::otel::Tracer>,
    /// (And its end of the tool safety thread.)
    safety: Option<crate::safety::Feed>,
    /// (And where it says it is up.)
    up: Arc<Status>,
}

#[allow(clippy::too_many_arguments)]
async fn run_shard(
    id: usize,
    cfg: Arc<Config>,
    metrics: Arc<[Arc<ShardMetrics>]>,
    peers: Peers,
    listener: std::net::TcpListener,
    inbox: mpsc::UnboundedReceiver<Inbox>,
    stdio: StdioChildren,
    draining: &AtomicUsize,
) {
    crate::bufs::set_response_budget(cfg.limits.response_budget);
    let shard = Shard::new(
        id,
        cfg,
        metrics,
        peers,
        &stdio.handles,
        stdio.key_feed,
        stdio.tls,
        stdio.audit,
        stdio.access,
        stdio.tracer,
        stdio.safety,
    );
    // Counted up while this function runs (a shard that panics is down again).
    struct Up(Arc<Status>);
    impl Drop for Up {
        fn drop(&mut self) {
            self.0
                .shards_up
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    stdio
        .up
        .shards_up
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let _up = Up(stdio.up.clone());
    for (b, inbox) in stdio.children {
        if let Some(handle) = stdio.handles[b].clone() {
            shard.drive(b, handle);
        }
        monoio::spawn(crate::backend::stdio::run(
            shard.cfg.backends[b].clone(),
            shard.metrics.clone(),
            inbox,
        ));
    }
    monoio::spawn(hop::serve_inbox(shard.base(), inbox));
    for pool in shard.pools.iter() {
        if let Some(every) = pool.cfg.health_check {
            monoio::spawn(crate::backend::health::run(
                shard.base(),
                pool.clone(),
                every,
            ));
        }
    }
    // The request statistics, published for the admin listener once a second; the access
    // log's batch sent as often.
    let base = shard.base();
    monoio::spawn(async move {
        loop {
            monoio::time::sleep(Duration::from_secs(1)).await;
            let publisher = base.current();
            publisher.latency.publish(&publisher.metrics.latency);
            let tools = ringmux_core::catalog::ListKind::Tools;
            publisher.inspect.publish(
                &publisher.pools,
                &publisher.cfg.separator,
                |b, now| {
                    let catalog = publisher.cached_catalog(tools, b)?;
                    Some((catalog, publisher.catalog_age(tools, b, now)?))
                },
                &publisher.metrics.info,
            );
            if let Some(a) = &publisher.access {
                a.flush(&publisher.metrics);
            }
            if let Some(t) = &publisher.tracer {
                t.flush(&publisher.metrics);
            }
        }
    });
    let base = shard.base();
    monoio::spawn(async move {
        loop {
            let sweeper = base.current();
            let every = sweep_every(sweeper.cfg.limits.session_idle);
            drop(sweeper);
            monoio::time::sleep(every).await;
            crate::handlers::lifecycle::sweep(&base.current(), Instant::now());
        }
    });
    // From here the loop holds what every generation shares, and serves each connection in
    // the generation current when it arrives.
    let shard = shard.base();
    let listener = TcpListener::from_std(listener).expect("registering the listener");
    loop {
        let accepted = {
            let accept = std::pin::pin!(listener.accept());
            let drain = std::pin::pin!(shard.drain.started());
            match futures_util::future::select(accept, drain).await {
                futures_util::future::Either::Left((a, _)) => a,
                futures_util::future::Either::Right(_) => break,
            }
        };
        match accepted {
            Ok((stream, _)) => {
                monoio::spawn(crate::front::http::serve(shard.current(), stream));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, and log once in a while.
                shard.warn_limited(
                    crate::shard::Warned::Accept,
                    &format_args!("accept failed: {e}"),
                );
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Draining: new connections are refused from here on.
    drop(listener);
    let driven = shard.driven();
    crate::shutdown::finish(&shard.current(), driven, draining).await;
    shard.latency.publish(&shard.metrics.latency);
    if let Some(a) = &shard.access {
        a.close();
    }
    if let Some(t) = &shard.tracer {
        t.close(&shard.metrics);
    }
    shard.release();
    tracing::info!(shard = id, "shard stopped");
}

impl Server {
    /// The gateway's reloader: SIGHUP and the file watcher call it ([`crate::reload`]).
    /// `path`: the config file; `text`: what it held when the gateway started.
    pub fn reloader(
        &self,
        path: std::path::PathBuf,
        text: String,
        cores: usize,
    ) -> crate::reload::Reloader {
        crate::reload::Reloader::new(
            path,
            cores,
            crate::reload::Running {
                cfg: self.cfg.clone(),
                handles: self.handles.clone(),
                generation: 0,
                seen: text,
            },
            self.peers.clone(),
            self.status.clone(),
            self.cfg.backends.len() + RELOAD_SLOTS,
            self.traces.as_ref().map(crate::otel::Exporter::names),
        )
    }

    /// A handle that starts a graceful shutdown ([`crate::drain`]) from any thread (a signal
    /// handler's): every shard stops accepting and drains.
    pub fn drainer(&self) -> Drainer {
        Drainer(self.peers.clone(), self.status.clone())
    }

    /// Blocks until the shards exit (after a drain; else when the process ends).
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
        if let Some(a) = self.access {
            a.join();
        }
        if let Some(t) = self.traces {
            t.join();
        }
    }

    /// Starts a graceful shutdown and returns a future that resolves once every shard has
    /// stopped: what a caller running the gateway in-process (a test tier, an embedding
    /// program) awaits. The shards' threads are joined on a thread of its own.
    pub fn shutdown(self) -> futures_channel::oneshot::Receiver<()> {
        self.drainer().drain();
        let (tx, rx) = futures_channel::oneshot::channel();
        std::thread::spawn(move || {
            self.wait();
            let _ = tx.send(());
        });
        rx
    }
}
