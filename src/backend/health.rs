//! Active health checks (`backends[].health_check`): every shard sends each HTTP backend a
//! `ping` (a 2026-07-28 backend: `server/discover`; one whose era is not known yet: the era
//! probe) every `interval_ms`, through the same pool and circuit breaker as calls. A check
//! that gets no answer, or a 5xx, counts as a failed exchange (it may open the circuit before
//! a client's call finds the backend down); while the circuit is open no check is sent, and
//! once it is half-open the check is the probe whose answer closes it, so a backend comes
//! back without a client's call risking it. Without session: a stateful server may answer
//! the sessionless `ping` with a 4xx, which still shows it is up. Cost: shards × backends
//! requests per interval.

use std::rc::Rc;
use std::time::{Duration, Instant};

use ringmux_core::circuit;
use ringmux_core::config::Era;

use super::upstream::{final_message, Pool, Status};

/// The `ping` a check sends.
const PING: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-health\",\"method\":\"ping\"}";

/// Checks `pool`'s backend every `every` until the shard drains, or a reload replaces or
/// retires the pool.
pub async fn run(base: Rc<crate::shard::Base>, pool: Rc<Pool>, every: Duration) {
    let (pool, metrics) = (&pool, &base.metrics);
    let shard = &base;
    loop {
        let stop = std::pin::pin!(shard.drain.started());
        let tick = std::pin::pin!(monoio::time::sleep(every));
        if let futures_util::future::Either::Left(_) =
            futures_util::future::select(stop, tick).await
        {
            return;
        }
        if !Rc::ptr_eq(&shard.current().pools[pool.index as usize], pool) {
            return;
        }
        if pool.circuit(Instant::now()) == circuit::State::Open {
            continue;
        }
        metrics.health_checks.add(1);
        if !check(pool).await {
            metrics.health_check_failures.add(1);
        }
    }
}

/// One check: whether the backend answered (its breaker has recorded the outcome).
async fn check(pool: &Rc<Pool>) -> bool {
    let now = Instant::now();
    let answer = match pool.era_now() {
        Era::Auto => return pool.detect().await.is_ok(),
        Era::Sessionless => {
            let body = super::upstream::discover_body();
            pool.post_sessionless(&body, "server/discover", None, now, None)
                .await
        }
        Era::Stateful => {
            pool.post(
                None,
                ringmux_core::version::LATEST_STATEFUL,
                PING,
                now,
                None,
            )
            .await
        }
    };
    match answer {
        Ok(resp) => {
            let up = !matches!(resp.status, Status::Refused(s) if s >= 500);
            let _ = final_message(resp.body).await;
            up
        }
        Err(e) => {
            tracing::debug!(backend = %pool.name(), "health check failed: {e}");
            false
        }
    }
}
