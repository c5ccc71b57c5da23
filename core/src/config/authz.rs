//! `authz:`: authorization rules in CEL over the principal, the MCP item a request names and
//! its arguments. Checked here (every rule compiles, reads only the variables rules have,
//! names are unique, backends exist; the expression walk that finds what a rule reads is here
//! too, and `authz` uses it);
//! compiled again per shard by [`crate::authz::Policy::new`].

use cel::common::ast::{EntryExpr, Expr};
use cel::IdedExpr;
use serde::Deserialize;

use super::{err, ConfigError};

/// The variables a rule may read, and CEL's type names (`type(x) == string`).
pub const VARIABLES: &[&str] = &[
    "principal",
    "mcp",
    "args",
    "request",
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// Walks an expression with the comprehension variables bound at each node.
pub(crate) fn walk<'e>(
    e: &'e IdedExpr,
    bound: &mut Vec<&'e str>,
    visit: &mut impl FnMut(&'e IdedExpr, &[&'e str]) -> bool,
) {
    if !visit(e, bound) {
        return;
    }
    match &e.expr {
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
        Expr::Call(c) => {
            if let Some(t) = &c.target {
                walk(t, bound, visit);
            }
            for a in &c.args {
                walk(a, bound, visit);
            }
        }
        Expr::Comprehension(c) => {
            walk(&c.iter_range, bound, visit);
            walk(&c.accu_init, bound, visit);
            let n = bound.len();
            bound.push(&c.iter_var);
            if let Some(v) = &c.iter_var2 {
                bound.push(v);
            }
            bound.push(&c.accu_var);
            walk(&c.loop_cond, bound, visit);
            walk(&c.loop_step, bound, visit);
            walk(&c.result, bound, visit);
            bound.truncate(n);
        }
        Expr::List(l) => {
            for x in &l.elements {
                walk(x, bound, visit);
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                match &entry.expr {
                    EntryExpr::StructField(f) => walk(&f.value, bound, visit),
                    EntryExpr::MapEntry(me) => {
                        walk(&me.key, bound, visit);
                        walk(&me.value, bound, visit);
                    }
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    walk(&f.value, bound, visit);
                }
            }
        }
        Expr::Select(s) => walk(&s.operand, bound, visit),
    }
}

/// The variables an expression reads that no comprehension binds.
pub fn free_variables(e: &IdedExpr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    walk(e, &mut Vec::new(), &mut |e, bound| {
        if let Expr::Ident(name) = &e.expr {
            if !name.starts_with('@') && !bound.contains(&name.as_str()) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        true
    });
    out
}

/// `authz:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzFile {
    /// What happens to an item no rule allows: `deny` (the default) or `allow` (the rules are
    /// then a block list). A deny rule always wins over an allow rule.
    #[serde(default)]
    pub default: Effect,
    /// Evaluated for every tool, prompt, resource and resource template a client could see
    /// or use. Each has `allow:` or `deny:` (a CEL expression), and optionally a `name` (for
    /// logs, metrics and audit records) and `backends` (the rule applies to those backends'
    /// items only).
    #[serde(default)]
    pub rules: Vec<RuleFile>,
    /// The request headers rules may read (`request.headers["x-tenant"]`), by name. Only
    /// these are gathered, and only when a rule reads `request`.
    #[serde(default)]
    pub request_headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    #[default]
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub allow: Option<String>,
    #[serde(default)]
    pub deny: Option<String>,
    #[serde(default)]
    pub backends: Option<Vec<String>>,
}

/// A request a backend may send a client (`backends[].client_requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientRequest {
    /// `sampling/createMessage`.
    Sampling,
    /// `elicitation/create` in form mode.
    Elicitation,
    /// `elicitation/create` in URL mode.
    ElicitationUrl,
    /// `roots/list`.
    Roots,
}

impl ClientRequest {
    pub const ALL: [ClientRequest; 4] = [
        ClientRequest::Sampling,
        ClientRequest::Elicitation,
        ClientRequest::ElicitationUrl,
        ClientRequest::Roots,
    ];

    /// What a backend's request to a client (method `method`, the whole message `data`) is;
    /// `None`: none of these (`ping`, or a method ringmux relays as it is).
    pub fn of(method: &str, data: &[u8]) -> Option<ClientRequest> {
        #[derive(Deserialize)]
        struct Msg {
            #[serde(default)]
            params: Option<Params>,
        }
        #[derive(Deserialize)]
        struct Params {
            #[serde(default)]
            mode: Option<String>,
        }
        match method {
            "sampling/createMessage" => Some(ClientRequest::Sampling),
            "roots/list" => Some(ClientRequest::Roots),
            "elicitation/create" => {
                // What cannot be read as form mode counts as URL mode, the stricter of the two
                // (a `mode` given twice, say: a client may take the last).
                let url = serde_json::from_slice::<Msg>(data)
                    .map(|m| m.params.and_then(|p| p.mode).is_some_and(|m| m != "form"))
                    .unwrap_or(true);
                Some(if url {
                    ClientRequest::ElicitationUrl
                } else {
                    ClientRequest::Elicitation
                })
            }
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ClientRequest::Sampling => "sampling",
            ClientRequest::Elicitation => "elicitation",
            ClientRequest::ElicitationUrl => "elicitation_url",
            ClientRequest::Roots => "roots",
        }
    }
}

/// `audit:` as written: one JSON line per authorization decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFile {
    /// A file (appended to, created if missing) or `-` for standard output.
    pub path: String,
    /// Record allowed calls too (default: refusals only).
    #[serde(default)]
    pub allowed: bool,
    /// Put a call's arguments in its record (default: never: they may hold secrets).
    #[serde(default)]
    pub arguments: bool,
}

/// Checked `audit:`.
#[derive(Debug, Clone)]
pub struct Audit {
    /// `None`: standard output.
    pub path: Option<std::path::PathBuf>,
    pub allowed: bool,
    pub arguments: bool,
}

impl AuditFile {
    pub fn check(self) -> Result<Audit, ConfigError> {
        if self.path.is_empty() {
            return Err(err("audit.path", "a file, or - for standard output"));
        }
        Ok(Audit {
            path: (self.path != "-").then(|| self.path.into()),
            allowed: self.allowed,
            arguments: self.arguments,
        })
    }
}

/// Checked `authz:`.
#[derive(Debug, Clone)]
pub struct Authz {
    pub default: Effect,
    pub rules: Vec<Rule>,
    /// Lowercase header names (`request.headers`).
    pub request_headers: Vec<String>,
}

/// Most headers `authz.request_headers` may name.
pub const MAX_REQUEST_HEADERS: usize = 32;

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    /// The CEL source.
    pub expr: String,
    /// Config indices of the backends it applies to (`None`: all).
    pub backends: Option<Vec<u16>>,
}

/// Most rules a policy may have (each is evaluated per item when a view is computed).
pub const MAX_RULES: usize = 256;

impl AuthzFile {
    /// `backend_names`: the configured backends, in config order.
    pub fn check(self, backend_names: &[&str]) -> Result<Authz, ConfigError> {
        if self.rules.len() > MAX_RULES {
            return Err(err("authz.rules", format!("at most {MAX_RULES} rules")));
        }
        let env = cel::Env::stdlib();
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.into_iter().enumerate() {
            let at = |k: &str| format!("authz.rules[{i}].{k}");
            let (effect, expr, key) = match (r.allow, r.deny) {
                (Some(e), None) => (Effect::Allow, e, "allow"),
                (None, Some(e)) => (Effect::Deny, e, "deny"),
                _ => {
                    return Err(err(
                        format!("authz.rules[{i}]"),
                        "a rule has exactly one of allow: or deny:",
                    ))
                }
            };
            let program = env
                .compile(&expr)
                .map_err(|e| err(at(key), format!("not a valid CEL expression: {e}")))?;
            for v in free_variables(program.expression()) {
                if !VARIABLES.contains(&v.as_str()) {
                    return Err(err(
                        at(key),
                        format!(
                            "unknown variable {v:?} (rules read {})",
                            VARIABLES.join(", ")
                        ),
                    ));
                }
            }
            let name = r.name.unwrap_or_else(|| format!("rule-{i}"));
            if name.is_empty() || name.len() > 128 {
                return Err(err(at("name"), "1 to 128 characters"));
            }
            if rules.iter().any(|o| o.name == name) {
                return Err(err(at("name"), format!("{name:?} is used by another rule")));
            }
            let backends = match r.backends {
                None => None,
                Some(list) => {
                    let mut out = Vec::with_capacity(list.len());
                    for (j, b) in list.iter().enumerate() {
                        let idx = backend_names.iter().position(|n| n == b).ok_or_else(|| {
                            err(
                                format!("authz.rules[{i}].backends[{j}]"),
                                format!("no backend named {b:?}"),
                            )
                        })?;
                        out.push(idx as u16);
                    }
                    Some(out)
                }
            };
            rules.push(Rule {
                name,
                effect,
                expr,
                backends,
            });
        }
        if self.request_headers.len() > MAX_REQUEST_HEADERS {
            return Err(err(
                "authz.request_headers",
                format!("at most {MAX_REQUEST_HEADERS} headers"),
            ));
        }
        let mut request_headers = Vec::with_capacity(self.request_headers.len());
        for (i, h) in self.request_headers.iter().enumerate() {
            let h = h.trim().to_ascii_lowercase();
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if h.is_empty() || h.len() > 128 || !h.bytes().all(token) {
                return Err(err(
                    format!("authz.request_headers[{i}]"),
                    "a header name (letters, digits, - and the other token characters)",
                ));
            }
            if h == "authorization" || h == "cookie" || h == "proxy-authorization" {
                return Err(err(
                    format!("authz.request_headers[{i}]"),
                    "credentials are not rule input (rules read the authenticated principal)",
                ));
            }
            request_headers.push(h);
        }
        Ok(Authz {
            default: self.default,
            rules,
            request_headers,
        })
    }
}
