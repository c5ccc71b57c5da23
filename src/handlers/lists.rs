//! The federated lists (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`): each backend's whole list fetched once per catalog change
//! (walking its own cursors) and cached per shard and view, merged into one index, and served
//! a page at a time by memcpy ([`ringmux_core::merge`]).

use std::rc::Rc;
use std::time::Instant;

use futures_util::future::join_all;
use ringmux_core::catalog::{Catalog, ListKind};
use ringmux_core::error::{code, RpcError};
use ringmux_core::jsonrpc::{self, raw_str, Message};

use super::dispatch::send;
use super::relay;
use crate::backend::upstream::{final_message, Pool, Status, UpstreamError};
use crate::bufs;
use crate::federation::{Federation, Merged};
use crate::reply::Reply;
use crate::session::{BackendFailure, Session};
use crate::shard::Shard;

/// Upper bound on pages walked when fetching one backend's list.
const MAX_BACKEND_PAGES: usize = 1000;

/// Sends and reads the final message; errors if it is not a success response.
pub(crate) async fn call_backend(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    pool: &Rc<Pool>,
    body: &[u8],
) -> Result<Vec<u8>, BackendFailure> {
    let resp = send(shard, session, pool, body).await?;
    let status = resp.status;
    let msg = final_message(resp.body).await?;
    if status != Status::Ok {
        return Err(BackendFailure::Status(status));
    }
    Ok(msg)
}

/// Fetches backend `b`'s whole `kind` list (all pages) into the session's catalog view `fed`.
async fn fetch_catalog(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    fed: &Federation,
    b: u16,
    kind: ListKind,
) -> Result<(), String> {
    let pool = &shard.pools[b as usize];
    let mut catalog = Catalog::new(kind);
    let mut cursor: Option<String> = None;
    let mut body = Vec::with_capacity(128);
    for _ in 0..MAX_BACKEND_PAGES {
        body.clear();
        body.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"ringmux-list\",\"method\":");
        jsonrpc::write_str(&mut body, kind.method());
        body.extend_from_slice(b",\"params\":{");
        if let Some(c) = &cursor {
            body.extend_from_slice(b"\"cursor\":");
            jsonrpc::write_str(&mut body, c);
        }
        body.extend_from_slice(b"}}");
        pool.earn_retry();
        // A list is idempotent: a page lost to a timeout or a dropped connection is asked
        // again once, within the backend's retry budget.
        let msg = match call_backend(shard, session, pool, &body).await {
            Err(BackendFailure::Upstream(e))
                if matches!(
                    e,
                    UpstreamError::Timeout | UpstreamError::Dropped | UpstreamError::Io(_)
                )
                    && pool.take_retry() =>
            {
                tracing::debug!(backend = %pool.name(), list = kind.method(), "list page retried: {e}");
                call_backend(shard, session, pool, &body).await
            }
            other => other,
        }
        .map_err(|e| e.to_string())?;
        let parsed = jsonrpc::parse(&msg).map_err(|e| e.to_string())?;
        let result = match (parsed.result, parsed.error) {
            (Some(r), _) => r,
            // A backend without this capability answers -32601: an empty list, not a failure.
            (None, Some(e)) if error_code(e.get()) == Some(code::METHOD_NOT_FOUND as i64) => break,
            (None, e) => return Err(format!("error result: {}", e.map_or("", |e| e.get()))),
        };
        cursor = catalog
            .add_page(result.get().as_bytes())
            .map_err(|e| e.to_string())?;
        if cursor.is_none() {
            break;
        }
    }
    if catalog.malformed > 0 {
        tracing::warn!(backend = %pool.name(), list = kind.method(), skipped = catalog.malformed, "items without a valid key skipped");
    }
    fed.store(b, shard.shared_catalog(b, catalog), Instant::now());
    Ok(())
}

/// Makes sure every ready backend's `kind` catalog (and templates, for resources) is fresh,
/// fetching stale ones concurrently, and returns the merged index over the cached catalogs.
/// When nothing is stale (the steady state) this allocates nothing.
pub(crate) async fn refresh(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    kind: ListKind,
) -> Rc<Merged> {
    // Backends this session lacks (down at its start, back since) join in the background:
    // a list never waits for a backend that may hang.
    crate::handlers::lifecycle::join_missing(shard, session);
    let now = Instant::now();
    let fed = shard.fed(session.view, session.route());
    let kinds: &[ListKind] = if kind == ListKind::Resources {
        &[ListKind::Resources, ListKind::ResourceTemplates]
    } else {
        std::slice::from_ref(&kind)
    };
    let mut fetches = Vec::new();
    for pool in shard.pools.iter() {
        let b = pool.index;
        for &k in kinds {
            if !session.is_ready(b) {
                continue;
            }
            if !fed.is_stale(k, b, now) {
                shard.metrics.catalog_hits.add(1);
            } else if pool.is_healthy(now) {
                let fed = &fed;
                fetches.push(async move {
                    // One fetch per view at a time: the others wait for its result.
                    let Some(_fetching) = fed.begin_fetch(k, b) else {
                        return fed.fetched(k, b).await;
                    };
                    shard.metrics.catalog_fetches.add(1);
                    if let Err(e) = fetch_catalog(shard, session, fed, b, k).await {
                        tracing::warn!(backend = %shard.pools[b as usize].name(), list = k.method(), "list fetch failed; serving the others: {e}");
                    }
                });
            }
        }
    }
    if !fetches.is_empty() {
        join_all(fetches).await;
    }
    // A backend whose circuit is open stays in the index, served from its last good catalog
    // (its calls fail fast naming it); with `circuit.hide_when_open` list pages leave it out
    // through the view filter.
    fed.merged(
        kind,
        |b| session.is_ready(b),
        &shard.pools,
        shard.safety.as_ref(),
    )
}

pub(crate) async fn list(
    shard: &Rc<Shard>,
    session: &Rc<Session>,
    kind: ListKind,
    msg: &Message<'_>,
    call: &super::dispatch::Call<'_>,
) -> Result<Reply, RpcError> {
    let id = msg.id.expect("requests have ids");
    session.listed(relay::list_bit(kind));
    let merged = refresh(shard, session, kind).await;
    let cursor = match msg.params.cursor {
        None => None,
        Some(raw) => {
            let s = raw_str(raw)
                .ok_or_else(|| RpcError::InvalidParams("cursor must be a string".into()))?;
            Some(merged.index.decode_cursor(&s)?)
        }
    };
    let mut body = bufs::take_with(
        merged
            .catalogs
            .iter()
            .map(|c| c.bytes().len())
            .sum::<usize>()
            + 256,
    );
    let now = Instant::now();
    // The caller's view: what it may not use is not there (pagination stays exact: cursors
    // count positions in the backends' lists, and a page skips what it may not show).
    let decisions = match (&call.view, shard.authz_for(session.route())) {
        (Some(view), Some(authz)) => {
            Some(authz.decisions(view, &merged, kind, &shard.pools, &shard.metrics))
        }
        _ => None,
    };
    // A virtual server's edited tools are written as it shows them.
    let shaped = merged.shaped.as_ref();
    merged.index.write_page_as(
        &mut body,
        id,
        &merged.catalogs,
        cursor,
        shard.cfg.limits.page_size,
        |source, item| {
            let pool = &shard.pools[merged.backends[source] as usize];
            (!pool.cfg.hide_when_open || pool.is_healthy(now))
                && decisions.as_ref().is_none_or(|d| d.visible(source, item))
                && shaped.is_none_or(|s| s.shows(source, item))
        },
        |source, item| {
            shaped
                .and_then(|s| s.edits.get(&(source as u32, item as u32)))
                .map(|e| &*e.bytes)
        },
    );
    shard.metrics.list_pages.add(1);
    Ok(Reply::Json {
        status: 200,
        body,
        session: None,
    })
}

/// The `code` of a JSON-RPC `error` object.
fn error_code(error: &str) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Code {
        code: i64,
    }
    serde_json::from_str::<Code>(error).ok().map(|c| c.code)
}
