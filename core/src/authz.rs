//! Authorization: CEL rules ([`crate::config::Authz`]) deciding which tools, prompts, resources
//! and resource templates a principal may see and use.
//!
//! A rule reads three variables:
//! - `principal`: who is calling (`kind`, `id`, and per kind `issuer`/`subject`/`scopes`/`claims`
//!   for a JWT, `name`/`attributes` for an API key, `subject`/`names` for a client
//!   certificate, `name` for the trusted principal header);
//! - `mcp`: the item (`method`, `kind` (`tool`, `prompt`, `resource`, `template`), `name` (as
//!   the client knows it: merged tool or prompt name, resource URI, URI template), `tool`,
//!   `prompt`, `resource` (the name when the item is of that kind, else `""`), `backend`);
//! - `args`: the call's `arguments` (tools/call, prompts/get; `{}` for the others);
//! - `request`: what the request carried (`address`: the client's IP address, `path`: the
//!   endpoint's path, `headers`: the values of the headers `authz.request_headers` names).
//!
//! Deny wins: an item is denied when any deny rule that applies to it matches, allowed when
//! none does and an allow rule matches, and otherwise gets the policy's default. A rule whose
//! evaluation fails (a missing key, a type mismatch) counts as matched for a deny rule and as
//! not matched for an allow rule: the failure closes.
//!
//! Decisions are computed once per *view*, not per request: a principal's view is keyed by the
//! values of the principal paths the rules read ([`Policy::view_key`]), so two users with the
//! same role share one. For each item of a merged list the view holds a [`Listed`] state.
//! Rules that read `args` cannot decide before the call: at list time they are evaluated with
//! `args` unbound, and one that needs it is *unknown*. An item whose decision hangs on an
//! unknown is listed ([`Listed::Check`]) and decided at call time by its `args` rules
//! ([`Policy::decide`]); the other rules' part of the decision is the view's.

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::ast::Expr;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};

/// A rule variable's value, in the form CEL evaluates (converted once: evaluating borrows it).
#[derive(Debug)]
pub struct Var(Box<dyn Val>);

impl Var {
    fn of(v: Value) -> Var {
        Var(v.try_into().unwrap_or_else(|_| {
            Value::Null
                .try_into()
                .expect("null converts to a CEL value")
        }))
    }

    /// A JSON value (the principal's facts, a call's arguments).
    pub fn from_json(json: &serde_json::Value) -> Var {
        Var::of(cel::to_value(json).unwrap_or(Value::Null))
    }

    /// An empty map (`args` of a request without arguments).
    pub fn empty_map() -> Var {
        Var::of(Value::from(HashMap::<String, Value>::new()))
    }
}

/// Who asks, and how: the `principal` and `request` variables, the same for every item a view
/// decides.
#[derive(Debug)]
pub struct Subject {
    pub principal: Var,
    pub request: Var,
}

impl Subject {
    /// `principal` and `request` as JSON (`request`: `None` when no rule reads it).
    pub fn new(principal: &serde_json::Value, request: Option<&serde_json::Value>) -> Subject {
        Subject {
            principal: Var::from_json(principal),
            request: request.map_or_else(Var::empty_map, Var::from_json),
        }
    }

    /// A principal, with an empty `request`.
    pub fn of(principal: &serde_json::Value) -> Subject {
        Subject::new(principal, None)
    }
}

/// The variables of one evaluation, lent to CEL without copying.
struct Vars<'a> {
    subject: &'a Subject,
    mcp: Option<&'a Var>,
    args: Option<&'a Var>,
}

impl VariableResolver for Vars<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let v = match variable {
            "principal" => &self.subject.principal,
            "request" => &self.subject.request,
            "mcp" => self.mcp?,
            "args" => self.args?,
            _ => return None,
        };
        Some(CowVal::Borrowed(&*v.0))
    }
}

use crate::config::{free_variables, walk, Authz, Effect};

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Tool,
    Prompt,
    Resource,
    Template,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Tool => "tool",
            ItemKind::Prompt => "prompt",
            ItemKind::Resource => "resource",
            ItemKind::Template => "template",
        }
    }

    /// Whether requests about it carry `arguments` (rules reading `args` wait for the call).
    fn has_args(self) -> bool {
        matches!(self, ItemKind::Tool | ItemKind::Prompt)
    }
}

/// The item a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The request's method (for a list: the method that uses the item, e.g. `tools/call`).
    pub method: &'a str,
    pub kind: ItemKind,
    /// As the client knows it.
    pub name: &'a str,
    /// Config index of the owning backend.
    pub backend: u16,
    pub backend_name: &'a str,
}

impl Item<'_> {
    /// The `mcp` variable.
    pub fn var(&self) -> Var {
        let named = |k: ItemKind| {
            if self.kind == k || (k == ItemKind::Resource && self.kind == ItemKind::Template) {
                Value::from(self.name)
            } else {
                Value::from("")
            }
        };
        let map: HashMap<&str, Value> = HashMap::from([
            ("method", Value::from(self.method)),
            ("kind", Value::from(self.kind.as_str())),
            ("name", Value::from(self.name)),
            ("tool", named(ItemKind::Tool)),
            ("prompt", named(ItemKind::Prompt)),
            ("resource", named(ItemKind::Resource)),
            ("backend", Value::from(self.backend_name)),
        ]);
        Var::of(Value::from(map))
    }
}

/// One rule's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    True,
    False,
    /// It needs `args`, which a list does not have.
    Unknown,
    /// It failed (or gave something other than a bool).
    Error,
}

/// A decision: allowed or not, and by which rule (its index; `None`: the policy's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub rule: Option<u16>,
}

/// An item's state in a view (before the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// Absent from lists; calling it is answered as for an unknown name.
    Hidden(Option<u16>),
    /// Listed and callable with any arguments.
    Allowed(Option<u16>),
    /// Listed; the rules reading `args` decide at call time. `allow`: the allow rule the
    /// others matched, if any.
    Check { allow: Option<u16> },
}

impl Listed {
    pub fn visible(self) -> bool {
        !matches!(self, Listed::Hidden(_))
    }

    /// The decision, if this state is one; `Err(allow)`: the argument rules decide at call
    /// time ([`Policy::decide`], with the allow rule the others matched).
    pub fn settled(self) -> Result<Decision, Option<u16>> {
        match self {
            Listed::Hidden(rule) => Ok(Decision { allow: false, rule }),
            Listed::Allowed(rule) => Ok(Decision { allow: true, rule }),
            Listed::Check { allow } => Err(allow),
        }
    }
}

struct Compiled {
    name: String,
    effect: Effect,
    program: Program,
    backends: Option<Vec<u16>>,
    reads_mcp: bool,
    reads_args: bool,
}

impl Compiled {
    fn applies(&self, backend: u16) -> bool {
        self.backends.as_ref().is_none_or(|b| b.contains(&backend))
    }
}

/// A shard's compiled policy. Each shard compiles its own (its own `Env`, so evaluating touches
/// no state another thread uses).
pub struct Policy {
    env: Arc<Env>,
    rules: Vec<Compiled>,
    default_allow: bool,
    /// The paths the rules read under `principal` and `request` (each path starts with the
    /// variable's name; `[name]`: all of it), shortest covering set.
    subject_paths: Vec<Vec<String>>,
    any_args: bool,
    any_request: bool,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .field("default_allow", &self.default_allow)
            .finish()
    }
}

impl Policy {
    /// Compiles a checked config (its rules compiled when it was checked).
    pub fn new(cfg: &Authz) -> Policy {
        let env = Arc::new(Env::stdlib());
        let mut paths = Vec::new();
        let rules = cfg
            .rules
            .iter()
            .map(|r| {
                let program = env
                    .compile(&r.expr)
                    .expect("rules were compiled when the config was checked");
                let free = free_variables(program.expression());
                subject_paths(program.expression(), &mut paths);
                Compiled {
                    name: r.name.clone(),
                    effect: r.effect,
                    backends: r.backends.clone(),
                    reads_mcp: free.iter().any(|v| v == "mcp"),
                    reads_args: free.iter().any(|v| v == "args"),
                    program,
                }
            })
            .collect::<Vec<_>>();
        // A path covers the longer ones it starts.
        paths.sort();
        paths.dedup();
        let mut covering: Vec<Vec<String>> = Vec::new();
        for p in paths {
            if !covering.iter().any(|c| p.starts_with(c)) {
                covering.push(p);
            }
        }
        Policy {
            env,
            any_args: rules.iter().any(|r| r.reads_args),
            rules,
            default_allow: cfg.default == Effect::Allow,
            any_request: covering.iter().any(|p| p[0] == "request"),
            subject_paths: covering,
        }
    }

    pub fn rule_name(&self, rule: u16) -> &str {
        &self.rules[rule as usize].name
    }

    pub fn rules(&self) -> usize {
        self.rules.len()
    }

    /// Whether any rule reads `args`.
    pub fn reads_args(&self) -> bool {
        self.any_args
    }

    /// Whether any rule reads `request` (else a request's facts need not be gathered).
    pub fn reads_request(&self) -> bool {
        self.any_request
    }

    /// The key of a view: the values at the paths the rules read (`facts` is the principal as
    /// JSON, the value of the `principal` variable; `request` the `request` variable's).
    /// Subjects with equal keys get equal decisions.
    pub fn view_key(
        &self,
        facts: &serde_json::Value,
        request: Option<&serde_json::Value>,
    ) -> Vec<u8> {
        let mut key = Vec::with_capacity(64);
        for path in &self.subject_paths {
            let (root, path) = path.split_first().expect("paths start with a variable");
            let mut v = if root == "principal" {
                Some(facts)
            } else {
                request
            };
            for seg in path {
                v = v.and_then(|v| v.get(seg.as_str()));
            }
            match v {
                Some(v) => {
                    key.push(b'=');
                    serde_json::to_writer(&mut key, v).expect("writing to a Vec");
                }
                None => key.push(b'!'),
            }
            key.push(0);
        }
        key
    }

    fn eval(
        &self,
        rule: &Compiled,
        subject: &Subject,
        mcp: Option<&Var>,
        args: Option<&Var>,
    ) -> Outcome {
        let vars = Vars { subject, mcp, args };
        let mut ctx = Context::with_env(self.env.clone());
        ctx.set_variable_resolver(&vars);
        match rule.program.execute(&ctx) {
            Ok(Value::Bool(true)) => Outcome::True,
            Ok(Value::Bool(false)) => Outcome::False,
            Err(ExecutionError::UndeclaredReference(n))
                if args.is_none() && n.as_str() == "args" =>
            {
                Outcome::Unknown
            }
            Ok(_) | Err(_) => Outcome::Error,
        }
    }

    /// The outcomes of the rules that read neither `mcp` nor `args`: the same for every item
    /// of a view, so evaluated once per view (`None` for the others).
    pub fn constants(&self, subject: &Subject) -> Vec<Option<Outcome>> {
        self.rules
            .iter()
            .map(|r| (!r.reads_mcp && !r.reads_args).then(|| self.eval(r, subject, None, None)))
            .collect()
    }

    /// An item's state for a principal (`constants`: [`Policy::constants`] of the same
    /// principal). `errors` counts the rules that failed.
    pub fn listed(
        &self,
        subject: &Subject,
        constants: &[Option<Outcome>],
        item: &Item<'_>,
        errors: &mut u64,
    ) -> Listed {
        let mcp = item.var();
        let no_args = Var::empty_map();
        // Resources and templates have no arguments: their decision is whole now.
        let args = (!item.kind.has_args()).then_some(&no_args);
        let mut deny_pending = false;
        let mut allow_pending = false;
        let mut allow = None;
        for (i, r) in self.rules.iter().enumerate() {
            if !r.applies(item.backend) {
                continue;
            }
            let o = match constants.get(i).copied().flatten() {
                Some(o) => o,
                None => self.eval(r, subject, Some(&mcp), args),
            };
            if o == Outcome::Error {
                *errors += 1;
            }
            match (r.effect, o) {
                (Effect::Deny, Outcome::True | Outcome::Error) => {
                    return Listed::Hidden(Some(i as u16))
                }
                (Effect::Deny, Outcome::Unknown) => deny_pending = true,
                (Effect::Allow, Outcome::True) => {
                    allow = allow.or(Some(i as u16));
                }
                (Effect::Allow, Outcome::Unknown) => allow_pending = true,
                _ => {}
            }
        }
        if allow.is_none() && !allow_pending && !self.default_allow {
            return Listed::Hidden(None);
        }
        if deny_pending || (allow.is_none() && allow_pending) {
            return Listed::Check { allow };
        }
        Listed::Allowed(allow)
    }

    /// The call-time decision on an item listed [`Listed::Check`]: its rules that read `args`
    /// evaluated with the call's arguments (`mcp`: the item's [`Item::var`], which a view keeps
    /// for such items).
    pub fn decide(
        &self,
        subject: &Subject,
        item: &Item<'_>,
        mcp: &Var,
        args: &Var,
        allow: Option<u16>,
        errors: &mut u64,
    ) -> Decision {
        let mut allow = allow;
        for (i, r) in self.rules.iter().enumerate() {
            if !r.reads_args || !r.applies(item.backend) {
                continue;
            }
            let o = self.eval(r, subject, Some(mcp), Some(args));
            if o == Outcome::Error {
                *errors += 1;
            }
            match (r.effect, o) {
                (Effect::Deny, Outcome::True | Outcome::Error | Outcome::Unknown) => {
                    return Decision {
                        allow: false,
                        rule: Some(i as u16),
                    }
                }
                (Effect::Allow, Outcome::True) => {
                    allow = Some(allow.map_or(i as u16, |a| a.min(i as u16)));
                }
                _ => {}
            }
        }
        match allow {
            Some(rule) => Decision {
                allow: true,
                rule: Some(rule),
            },
            None => Decision {
                allow: self.default_allow,
                rule: None,
            },
        }
    }

    /// The whole decision at call time, for an item no view holds (a URI outside the lists, a
    /// method other than the one lists are decided for).
    pub fn decide_now(
        &self,
        subject: &Subject,
        item: &Item<'_>,
        args: &Var,
        errors: &mut u64,
    ) -> Decision {
        let constants = self.constants(subject);
        match self.listed(subject, &constants, item, errors).settled() {
            Ok(d) => d,
            Err(allow) => self.decide(subject, item, &item.var(), args, allow, errors),
        }
    }
}

impl Policy {
    /// The decision made the plain way, every applicable rule evaluated with everything bound
    /// (the oracle the fuzz property holds the split decision to).
    #[doc(hidden)]
    pub fn decide_plainly(&self, subject: &Subject, item: &Item<'_>, args: &Var) -> bool {
        let mcp = item.var();
        let args = item.kind.has_args().then_some(args);
        let no_args = Var::empty_map();
        let mut allowed = false;
        for r in self.rules.iter().filter(|r| r.applies(item.backend)) {
            let o = self.eval(r, subject, Some(&mcp), Some(args.unwrap_or(&no_args)));
            match (r.effect, o) {
                (Effect::Deny, Outcome::True | Outcome::Error | Outcome::Unknown) => return false,
                (Effect::Allow, Outcome::True) => allowed = true,
                _ => {}
            }
        }
        allowed || self.default_allow
    }
}

/// Adds the paths under `principal` and `request` the expression reads
/// (`principal.claims.role` is `["principal", "claims", "role"]`; the bare variable, or an
/// index like `principal.claims[k]`, reads the whole of what it stops at).
fn subject_paths(e: &IdedExpr, out: &mut Vec<Vec<String>>) {
    fn chain(e: &IdedExpr) -> Option<Vec<String>> {
        match &e.expr {
            Expr::Ident(n) if n == "principal" || n == "request" => Some(vec![n.clone()]),
            Expr::Select(s) => {
                let mut p = chain(&s.operand)?;
                p.push(s.field.clone());
                Some(p)
            }
            _ => None,
        }
    }
    walk(e, &mut Vec::new(), &mut |e, bound| match chain(e) {
        // A comprehension's own `principal` (or `request`) hides the real one there.
        Some(p) if !bound.contains(&p[0].as_str()) => {
            out.push(p);
            false
        }
        _ => true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthzFile, RuleFile};

    fn policy(default: Effect, rules: &[(&str, Effect, &str)]) -> Policy {
        let file = AuthzFile {
            default,
            rules: rules
                .iter()
                .map(|(name, effect, expr)| RuleFile {
                    name: Some(name.to_string()),
                    allow: (*effect == Effect::Allow).then(|| expr.to_string()),
                    deny: (*effect == Effect::Deny).then(|| expr.to_string()),
                    backends: None,
                })
                .collect(),
            request_headers: Vec::new(),
        };
        Policy::new(&file.check(&["fs", "web"]).unwrap())
    }

    fn tool(name: &str) -> Item<'_> {
        Item {
            method: "tools/call",
            kind: ItemKind::Tool,
            name,
            backend: 0,
            backend_name: "fs",
        }
    }

    fn who(role: &str) -> serde_json::Value {
        serde_json::json!({"kind": "jwt", "id": format!("jwt:{role}"), "claims": {"role": role, "sub": role}})
    }

    #[test]
    fn deny_wins_and_default_denies() {
        let p = policy(
            Effect::Deny,
            &[
                (
                    "admins",
                    Effect::Allow,
                    r#"principal.claims.role == "admin""#,
                ),
                ("no-rm", Effect::Deny, r#"mcp.tool == "fs__rm""#),
                (
                    "readers",
                    Effect::Allow,
                    r#"mcp.tool.startsWith("fs__read")"#,
                ),
            ],
        );
        let mut errors = 0;
        let admin = Subject::of(&who("admin"));
        let c = p.constants(&admin);
        assert_eq!(
            p.listed(&admin, &c, &tool("fs__write"), &mut errors),
            Listed::Allowed(Some(0))
        );
        assert_eq!(
            p.listed(&admin, &c, &tool("fs__rm"), &mut errors),
            Listed::Hidden(Some(1))
        );
        let guest = Subject::of(&who("guest"));
        let c = p.constants(&guest);
        assert_eq!(
            p.listed(&guest, &c, &tool("fs__read_file"), &mut errors),
            Listed::Allowed(Some(2))
        );
        assert_eq!(
            p.listed(&guest, &c, &tool("fs__write"), &mut errors),
            Listed::Hidden(None)
        );
        assert_eq!(errors, 0);
    }

    #[test]
    fn argument_rules_decide_at_call_time() {
        let p = policy(
            Effect::Deny,
            &[
                (
                    "public",
                    Effect::Allow,
                    r#"mcp.tool == "fs__read" && args.path.startsWith("/public/")"#,
                ),
                (
                    "no-etc",
                    Effect::Deny,
                    r#"mcp.tool == "fs__read" && args.path.startsWith("/etc/")"#,
                ),
                ("ls", Effect::Allow, r#"mcp.tool == "fs__ls""#),
            ],
        );
        let mut errors = 0;
        let me = Subject::of(&who("x"));
        let c = p.constants(&me);
        // Not a tool the argument rules name: decided now.
        assert_eq!(
            p.listed(&me, &c, &tool("fs__ls"), &mut errors),
            Listed::Allowed(Some(2))
        );
        assert_eq!(
            p.listed(&me, &c, &tool("fs__write"), &mut errors),
            Listed::Hidden(None)
        );
        let read = tool("fs__read");
        let state = p.listed(&me, &c, &read, &mut errors);
        assert_eq!(state, Listed::Check { allow: None });
        let args = |j: &str| Var::from_json(&serde_json::from_str(j).unwrap());
        let Listed::Check { allow } = state else {
            unreachable!()
        };
        assert!(
            p.decide(
                &me,
                &read,
                &read.var(),
                &args(r#"{"path":"/public/a"}"#),
                allow,
                &mut errors
            )
            .allow
        );
        let d = p.decide(
            &me,
            &read,
            &read.var(),
            &args(r#"{"path":"/etc/passwd"}"#),
            allow,
            &mut errors,
        );
        assert_eq!(
            d,
            Decision {
                allow: false,
                rule: Some(1)
            }
        );
        assert_eq!(errors, 0);
        // No path at all: the deny rule fails, and a failing deny rule denies.
        let d = p.decide(&me, &read, &read.var(), &args("{}"), allow, &mut errors);
        assert!(!d.allow);
        assert_eq!(errors, 2);
        assert!(
            !p.decide_now(&me, &read, &args(r#"{"path":"/home"}"#), &mut errors)
                .allow
        );
    }

    #[test]
    fn failures_close_and_constants_are_once_per_view() {
        let p = policy(
            Effect::Allow,
            &[("banned", Effect::Deny, "principal.claims.banned")],
        );
        let mut errors = 0;
        let me = Subject::of(&who("x"));
        let c = p.constants(&me);
        assert_eq!(c, vec![Some(Outcome::Error)]);
        assert_eq!(
            p.listed(&me, &c, &tool("a"), &mut errors),
            Listed::Hidden(Some(0))
        );
        let ok = Subject::of(&serde_json::json!({"claims": {"banned": false}}));
        let c = p.constants(&ok);
        assert_eq!(
            p.listed(&ok, &c, &tool("a"), &mut errors),
            Listed::Allowed(None)
        );
    }

    #[test]
    fn views_key_on_the_paths_read() {
        let p = policy(
            Effect::Deny,
            &[
                (
                    "r",
                    Effect::Allow,
                    r#"principal.claims.role == "admin" && has(principal.claims.role)"#,
                ),
                (
                    "g",
                    Effect::Allow,
                    r#"principal.claims.groups.exists(principal, principal == "x")"#,
                ),
            ],
        );
        let a = serde_json::json!({"id": "a", "claims": {"role": "admin", "groups": ["x"]}});
        let b = serde_json::json!({"id": "b", "claims": {"role": "admin", "groups": ["x"], "email": "b@x"}});
        let c = serde_json::json!({"id": "c", "claims": {"role": "user", "groups": ["x"]}});
        assert_eq!(p.view_key(&a, None), p.view_key(&b, None));
        assert_ne!(p.view_key(&a, None), p.view_key(&c, None));
        // An index reads the whole map it indexes.
        let q = policy(
            Effect::Deny,
            &[("i", Effect::Allow, r#"principal.claims["role"] == "admin""#)],
        );
        assert_ne!(q.view_key(&a, None), q.view_key(&b, None));
    }

    #[test]
    fn request_facts_key_views_only_when_read() {
        let p = policy(
            Effect::Deny,
            &[(
                "tenant",
                Effect::Allow,
                r#"request.headers["x-tenant"] == principal.claims.role"#,
            )],
        );
        assert!(p.reads_request());
        let who = serde_json::json!({"claims": {"role": "a"}});
        let r1 = serde_json::json!({"headers": {"x-tenant": "a"}, "address": "10.0.0.1"});
        let r2 = serde_json::json!({"headers": {"x-tenant": "a"}, "address": "10.0.0.2"});
        let r3 = serde_json::json!({"headers": {"x-tenant": "b"}, "address": "10.0.0.1"});
        // The whole of request.headers is read (an index), the address not at all.
        assert_eq!(p.view_key(&who, Some(&r1)), p.view_key(&who, Some(&r2)));
        assert_ne!(p.view_key(&who, Some(&r1)), p.view_key(&who, Some(&r3)));
        let mut errors = 0;
        let s1 = Subject::new(&who, Some(&r1));
        let c = p.constants(&s1);
        assert_eq!(
            p.listed(&s1, &c, &tool("fs__a"), &mut errors),
            Listed::Allowed(Some(0))
        );
        let s3 = Subject::new(&who, Some(&r3));
        let c = p.constants(&s3);
        assert_eq!(
            p.listed(&s3, &c, &tool("fs__a"), &mut errors),
            Listed::Hidden(None)
        );
        assert!(!policy(Effect::Deny, &[("x", Effect::Allow, "true")]).reads_request());
    }

    #[test]
    fn the_config_names_what_is_wrong() {
        let check = |yaml: &str| -> String {
            let f: AuthzFile = serde_saphyr::from_str(yaml).unwrap();
            f.check(&["fs"]).unwrap_err().to_string()
        };
        assert!(check("rules: [{allow: 'mcp.tool =='}]").contains("authz.rules[0].allow"));
        assert!(check("rules: [{allow: 'true', deny: 'false'}]").contains("exactly one"));
        assert!(check("rules: [{allow: 'session.x'}]").contains("unknown variable \"session\""));
        assert!(check("request_headers: [authorization]").contains("request_headers[0]"));
        assert!(check("request_headers: ['bad name']").contains("request_headers[0]"));
        assert!(check("rules: [{allow: 'true', backends: [web]}]").contains("backends[0]"));
        assert!(
            check("rules: [{name: a, allow: 'true'}, {name: a, deny: 'true'}]")
                .contains("another rule")
        );
        // Comprehension variables are not free.
        let f: AuthzFile = serde_saphyr::from_str(
            "rules: [{allow: 'principal.claims.groups.exists(g, g == \"x\")'}]",
        )
        .unwrap();
        assert!(f.check(&["fs"]).is_ok());
    }
}
