//! The policy checks a routed call passes on its way to a backend, once its owner is known:
//! the caller's authorization view on the item it names ([`permitted`], the one check every
//! era and transport goes through; lists filter in [`super::lists`]), and the secrets in its
//! arguments (`masking.arguments`, [`mask_arguments`]). The audit log records the decisions.

use std::rc::Rc;
use std::time::Instant;

use ringmux_core::catalog::ListKind;
use ringmux_core::config::ArgumentsAction;
use ringmux_core::error::RpcError;
use ringmux_core::jsonrpc::Raw;
use ringmux_core::mask::Outcome;
use ringmux_core::merge::Route;
use ringmux_core::method::Method;
use serde_json::value::RawValue;

use super::dispatch::Call;
use crate::backend::upstream::Pool;
use crate::federation::Merged;
use crate::reply::Reply;
use crate::session::Session;
use crate::shard::Shard;

/// Where an item a request names was found.
pub(crate) enum Place<'a> {
    /// In the merged list.
    Listed(&'a Rc<Merged>, Route),
    /// Not listed; of this backend.
    Backend(u16),
}

/// Whether the caller's authorization view lets it use this item by `method` (always, without
/// `authz:`: checked inline, the hot path's case). `body`: the request as the backend will
/// see it (a virtual server's fixed arguments set), whose arguments the rules read. A refusal is counted; the caller answers it
/// as for an unknown name. The decision goes to the audit log (refusals; allowed calls too if
/// asked).
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) fn permitted(
    shard: &Shard,
    session: &Session,
    call: &Call<'_>,
    kind: ListKind,
    method: &str,
    name: &str,
    place: Place<'_>,
    body: &[u8],
) -> bool {
    call.view.is_none() || decide(shard, session, call, kind, method, name, place, body)
}

/// [`permitted`] with a view.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn decide(
    shard: &Shard,
    session: &Session,
    call: &Call<'_>,
    kind: ListKind,
    method: &str,
    name: &str,
    place: Place<'_>,
    body: &[u8],
) -> bool {
    let (Some(view), Some(authz)) = (&call.view, shard.authz_for(session.route())) else {
        return true;
    };
    let (pools, metrics) = (&shard.pools, &*shard.metrics);
    let started = shard.audit.as_ref().map(|_| Instant::now());
    let (d, backend) = match place {
        Place::Listed(merged, route) => (
            authz.allows_listed(
                view, merged, kind, route, method, name, body, pools, metrics,
            ),
            route.backend,
        ),
        Place::Backend(b) => (
            authz.allows_now(view, b, kind, method, name, body, pools, metrics),
            b,
        ),
    };
    if !d.allow {
        metrics.authz_denied.add(1);
    }
    if let (Some(audit), Some(started)) = (&shard.audit, started) {
        if audit.wants(d.allow) {
            // The arguments as the backend would see them: masked when `masking:` masks them.
            let arguments = audit
                .arguments
                .then(|| arguments_of(body))
                .flatten()
                .and_then(|a| {
                    match shard
                        .masker
                        .as_ref()
                        .map(|m| m.mask_json(a.get().as_bytes()))
                    {
                        None | Some(Outcome::Clean) => Some(a),
                        Some(Outcome::Masked(m)) => {
                            RawValue::from_string(String::from_utf8(m.body).ok()?).ok()
                        }
                        Some(Outcome::Unreadable) => None,
                    }
                });
            let principal = session.principal.id();
            let backend = pools[backend as usize].name();
            audit.record(&crate::audit::Record {
                session: Some(&session.id),
                name: Some(name),
                rule: d.rule.map(|r| authz.policy.rule_name(r)),
                decision_us: started.elapsed().as_micros() as u64,
                arguments: arguments.as_deref(),
                ..crate::audit::Record::new("authz", d.allow, &principal, method, backend)
            });
        }
    }
    d.allow
}

/// A call's request with the secrets in it masked (`masking.arguments: mask`; `None`: nothing
/// to mask), or its refusal (`refuse`, or a match that cannot be masked).
#[inline(never)]
pub(crate) fn mask_arguments(
    shard: &Shard,
    pool: &Pool,
    entry: &Method,
    body: &[u8],
    id: Raw<'_>,
) -> Result<Option<Vec<u8>>, Reply> {
    let (Some(m), Some(cfg)) = (&shard.masker, &shard.cfg.masking) else {
        return Ok(None);
    };
    if cfg.arguments == ArgumentsAction::Off || !matches!(entry.name, "tools/call" | "prompts/get")
    {
        return Ok(None);
    }
    let found = match m.mask_json(body) {
        Outcome::Clean => return Ok(None),
        Outcome::Masked(found) => found,
        Outcome::Unreadable => {
            shard.metrics.masked.add(1);
            return Err(Reply::error(
                Some(id),
                &RpcError::InvalidParams(
                    "the arguments may carry a secret and cannot be masked".into(),
                ),
            ));
        }
    };
    shard.metrics.masked.add(1);
    tracing::info!(backend = %pool.name(), pattern = %found.first, "secrets in a call's arguments");
    if cfg.arguments == ArgumentsAction::Refuse {
        return Err(Reply::error(
            Some(id),
            &RpcError::InvalidParams(format!(
                "the arguments carry what masking refuses ({})",
                found.first
            )),
        ));
    }
    Ok(Some(found.body))
}

/// A request's `params.arguments`, as sent.
fn arguments_of(body: &[u8]) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Req {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        arguments: Option<Box<RawValue>>,
    }
    serde_json::from_slice::<Req>(body).ok()?.params?.arguments
}
