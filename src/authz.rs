//! Authorization on the shard: the compiled policy ([`ringmux_core::authz`]), each principal
//! view's decisions on the items of a merged list (computed once per view and merged list,
//! kept per shard), and the checks the list and call handlers make with them.
//!
//! The hot path (a call to a listed item the view allows) is a lookup in the session's cached
//! view and one in its decision table: no CEL. CEL runs when a view meets a new merged list,
//! and at call time for items whose rules read `args`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use ringmux_core::authz::{Decision, Item, ItemKind, Listed, Outcome, Policy, Subject, Var};
use ringmux_core::catalog::{Catalog, ListKind};
use ringmux_core::merge::{Index, Route};

use crate::backend::upstream::Pool;
use crate::metrics::ShardMetrics;
use crate::request::{Facts, Principal};

/// A merged list as authorization reads it (the federation's merged index and the catalogs it
/// was built from). Defined here so that sessions, which keep a view, need not know the
/// federation.
pub trait Listing {
    fn index(&self) -> &Index;
    fn catalogs(&self) -> &[Rc<Catalog>];
    /// Backend (config index) of each source.
    fn backends(&self) -> &[u16];
}

/// Most views a shard keeps; past it the cache starts over (views are recomputed on use).
pub const MAX_VIEWS: usize = 4096;

/// A shard's authorization state.
pub struct Authz {
    pub policy: Policy,
    views: RefCell<HashMap<Vec<u8>, Rc<View>>>,
    /// API key name → its configured attributes (`principal.attributes`).
    attributes: HashMap<Box<str>, serde_json::Value>,
    /// The headers rules may read (`request.headers`), lowercase; gathered by the front only
    /// when [`Policy::reads_request`].
    pub request_headers: Vec<String>,
}

/// What a group of principals (equal on every path the rules read, their requests' facts
/// included) may see and use.
pub struct View {
    subject: Subject,
    constants: Vec<Option<Outcome>>,
    /// Decisions per merged list this view has met (a few: one per list kind and capability
    /// view); an entry whose list is gone is dropped.
    memo: RefCell<Vec<Memo>>,
}

/// One merged list a view has met (held weakly: it goes with a catalog change), and the view's
/// decisions on it.
type Memo = (Weak<dyn Listing>, Rc<Decisions>);

/// A view's decisions on one merged list: per source, per item.
pub struct Decisions {
    per_source: Vec<Vec<Listed>>,
    /// The `mcp` variable of each item decided at call time ([`Listed::Check`]), built once.
    check_mcp: HashMap<(usize, u32), Var>,
}

impl Decisions {
    pub fn visible(&self, source: usize, item: usize) -> bool {
        self.per_source[source][item].visible()
    }
}

/// The method that uses an item of a list (its decision in a view is this method's).
pub fn use_method(kind: ListKind) -> &'static str {
    match kind {
        ListKind::Tools => "tools/call",
        ListKind::Prompts => "prompts/get",
        ListKind::Resources | ListKind::ResourceTemplates => "resources/read",
    }
}

fn item_kind(kind: ListKind) -> ItemKind {
    match kind {
        ListKind::Tools => ItemKind::Tool,
        ListKind::Prompts => ItemKind::Prompt,
        ListKind::Resources => ItemKind::Resource,
        ListKind::ResourceTemplates => ItemKind::Template,
    }
}

impl Authz {
    pub fn new(
        cfg: &ringmux_core::config::Authz,
        auth: Option<&ringmux_core::config::Auth>,
    ) -> Authz {
        let attributes = auth
            .map(|a| {
                a.api_keys
                    .iter()
                    .map(|k| {
                        let attrs: serde_json::Map<String, serde_json::Value> = k
                            .attributes
                            .iter()
                            .map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str())))
                            .collect();
                        (Box::from(k.name.as_str()), serde_json::Value::Object(attrs))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Authz {
            policy: Policy::new(cfg),
            views: RefCell::new(HashMap::new()),
            attributes,
            request_headers: cfg.request_headers.clone(),
        }
    }

    /// The principal as rules see it (the `principal` variable), as JSON.
    pub fn facts(&self, p: &Principal) -> serde_json::Value {
        use serde_json::json;
        let id = p.id();
        match p {
            Principal::Anonymous => json!({"kind": "anonymous", "id": id}),
            Principal::Header(v) => json!({"kind": "header", "id": id, "name": &**v}),
            Principal::User(u) => json!({
                "kind": "jwt",
                "id": id,
                "issuer": &*u.issuer,
                "subject": &*u.subject,
                "scopes": u.scopes.split(' ').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
                "claims": u.claims,
            }),
            Principal::Key(name) => json!({
                "kind": "api_key",
                "id": id,
                "name": &**name,
                "attributes": self.attributes.get(&**name).cloned().unwrap_or_else(|| json!({})),
            }),
            Principal::Cert(c) => json!({
                "kind": "cert",
                "id": id,
                "subject": &*c.subject,
                "names": c.names.iter().map(|n| &**n).collect::<Vec<_>>(),
            }),
        }
    }

    /// `p`'s view (making the request `request`, when rules read it): shared by every
    /// principal and request equal to it on the paths the rules read.
    pub fn view(&self, p: &Principal, request: Option<&Facts>, metrics: &ShardMetrics) -> Rc<View> {
        let facts = self.facts(p);
        let request = request.map(Facts::to_json);
        let key = self.policy.view_key(&facts, request.as_ref());
        if let Some(v) = self.views.borrow().get(&key) {
            return v.clone();
        }
        let subject = Subject::new(&facts, request.as_ref());
        let constants = self.policy.constants(&subject);
        let errors = constants
            .iter()
            .filter(|o| **o == Some(Outcome::Error))
            .count();
        metrics.authz_rule_errors.add(errors as u64);
        let view = Rc::new(View {
            subject,
            constants,
            memo: RefCell::new(Vec::new()),
        });
        let mut views = self.views.borrow_mut();
        if views.len() >= MAX_VIEWS {
            views.clear();
        }
        views.insert(key, view.clone());
        view
    }

    /// `view`'s decisions on the items of `merged` (of list `kind`), computed the first time.
    pub fn decisions<L: Listing + 'static>(
        &self,
        view: &View,
        merged: &Rc<L>,
        kind: ListKind,
        pools: &[Rc<Pool>],
        metrics: &ShardMetrics,
    ) -> Rc<Decisions> {
        let this = Rc::as_ptr(merged) as *const ();
        {
            let memo = view.memo.borrow();
            if let Some((_, d)) = memo.iter().find(|(m, _)| m.as_ptr() as *const () == this) {
                return d.clone();
            }
        }
        let mut errors = 0;
        let mut check_mcp = HashMap::new();
        let per_source = merged
            .catalogs()
            .iter()
            .enumerate()
            .map(|(si, cat)| {
                let backend = merged.backends()[si];
                (0..cat.len())
                    .map(|i| {
                        let Some(name) = merged.index().merged_key(si, cat, i) else {
                            return Listed::Hidden(None);
                        };
                        let item = item_of(kind, use_method(kind), &name, backend, pools);
                        let listed =
                            self.policy
                                .listed(&view.subject, &view.constants, &item, &mut errors);
                        if let Listed::Check { .. } = listed {
                            check_mcp.insert((si, i as u32), item.var());
                        }
                        listed
                    })
                    .collect()
            })
            .collect();
        metrics.authz_rule_errors.add(errors);
        metrics.authz_views_computed.add(1);
        let d = Rc::new(Decisions {
            per_source,
            check_mcp,
        });
        let mut memo = view.memo.borrow_mut();
        memo.retain(|(m, _)| m.strong_count() > 0);
        let weak: Weak<dyn Listing> = Rc::downgrade(merged) as Weak<dyn Listing>;
        memo.push((weak, d.clone()));
        d
    }

    /// The decision on `view` using a listed item (`route` in `merged`) by `method`, with the
    /// arguments in `body`.
    #[allow(clippy::too_many_arguments)]
    pub fn allows_listed<L: Listing + 'static>(
        &self,
        view: &View,
        merged: &Rc<L>,
        kind: ListKind,
        route: Route,
        method: &str,
        name: &str,
        body: &[u8],
        pools: &[Rc<Pool>],
        metrics: &ShardMetrics,
    ) -> Decision {
        if method != use_method(kind) {
            return self.allows_now(
                view,
                route.backend,
                kind,
                method,
                name,
                body,
                pools,
                metrics,
            );
        }
        let d = self.decisions(view, merged, kind, pools, metrics);
        let allow = match d.per_source[route.source][route.item as usize].settled() {
            Ok(decided) => return decided,
            Err(allow) => allow,
        };
        let item = item_of(kind, method, name, route.backend, pools);
        let Some(args) = args_of(body, method) else {
            return REFUSED;
        };
        let mut errors = 0;
        let mcp = &d.check_mcp[&(route.source, route.item)];
        let d = self
            .policy
            .decide(&view.subject, &item, mcp, &args, allow, &mut errors);
        metrics.authz_rule_errors.add(errors);
        d
    }

    /// The decision on `view` using an item no decision table holds (a resource URI outside the
    /// list, a method other than the one lists are decided for): every rule, now.
    #[allow(clippy::too_many_arguments)]
    pub fn allows_now(
        &self,
        view: &View,
        backend: u16,
        kind: ListKind,
        method: &str,
        name: &str,
        body: &[u8],
        pools: &[Rc<Pool>],
        metrics: &ShardMetrics,
    ) -> Decision {
        let item = item_of(kind, method, name, backend, pools);
        let Some(args) = args_of(body, method) else {
            return REFUSED;
        };
        let mut errors = 0;
        let d = self
            .policy
            .decide_now(&view.subject, &item, &args, &mut errors);
        metrics.authz_rule_errors.add(errors);
        d
    }
}

/// The decision on a call whose arguments do not parse.
const REFUSED: Decision = Decision {
    allow: false,
    rule: None,
};

/// A request's item, of backend `backend`, as rules see it.
fn item_of<'a>(
    kind: ListKind,
    method: &'a str,
    name: &'a str,
    backend: u16,
    pools: &'a [Rc<Pool>],
) -> Item<'a> {
    Item {
        method,
        kind: item_kind(kind),
        name,
        backend,
        backend_name: pools[backend as usize].name(),
    }
}

/// The `args` variable of a request: its `params.arguments` for the methods that have them,
/// `{}` otherwise. `None`: a body that does not parse (the call is refused).
fn args_of(body: &[u8], method: &str) -> Option<Var> {
    #[derive(serde::Deserialize)]
    struct Req {
        #[serde(default)]
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        #[serde(default)]
        arguments: Option<serde_json::Value>,
    }
    if !matches!(method, "tools/call" | "prompts/get") {
        return Some(Var::empty_map());
    }
    let req: Req = serde_json::from_slice(body).ok()?;
    Some(match req.params.and_then(|p| p.arguments) {
        Some(args) => Var::from_json(&args),
        None => Var::empty_map(),
    })
}
