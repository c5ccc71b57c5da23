//! `routes:`: virtual servers. Each is an MCP endpoint at a path of its own exposing a chosen
//! part of the federation: some backends, some of their tools (included and excluded by
//! name pattern), tools renamed, described anew, or with arguments fixed by the operator
//! (gone from the schema the client sees, set on every call). Each may have its own `auth:`
//! (and so its own protected-resource metadata) and its own `authz:` rules. One gateway
//! serves many teams.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{err, Auth, AuthFile, Authz, AuthzFile, ConfigError};

/// One `routes[]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Its Streamable HTTP endpoint (2025-03-26 … 2025-11-25 and 2026-07-28 clients), e.g.
    /// `/teams/alpha/mcp`.
    pub path: String,
    /// The backends it exposes, by name (absent: all). A client of the route never reaches
    /// another: no backend session is opened there for it.
    #[serde(default)]
    pub backends: Option<Vec<String>>,
    /// Which tools it shows, and how.
    #[serde(default)]
    pub tools: ToolsFile,
    /// Its own authentication (absent: the top-level `auth:`). Its protected-resource metadata
    /// is served for its `resource`.
    #[serde(default)]
    pub auth: Option<AuthFile>,
    /// Its own authorization rules (absent: the top-level `authz:`).
    #[serde(default)]
    pub authz: Option<AuthzFile>,
    /// Its calls (`tools/call`, `prompts/get`, `resources/read`, …) must be answered within
    /// this; then the client gets -32603 and the backend `notifications/cancelled` (absent:
    /// the backends' own `request_deadline_ms`). A streamed answer must start within it.
    #[serde(default)]
    pub call_timeout_ms: Option<u64>,
}

/// `routes[].tools:` as written. Names are the tools' names as the main endpoint lists them
/// (with their backend's prefix, where it has one).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    /// Name patterns (`*` any run of characters, `?` one character) a tool must match to be
    /// shown (absent: every tool).
    #[serde(default)]
    pub include: Option<Vec<String>>,
    /// Name patterns of tools not shown (wins over `include`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Per tool (by its name): what the route's clients see instead.
    #[serde(default)]
    pub overrides: BTreeMap<String, OverrideFile>,
}

/// `routes[].tools.overrides.<name>:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideFile {
    /// The name the route's clients know it by (the old one is then unknown there).
    #[serde(default)]
    pub name: Option<String>,
    /// Its description there.
    #[serde(default)]
    pub description: Option<String>,
    /// Arguments the operator fixes: removed from the input schema the client sees, and set
    /// to these values on every call (whatever the client sent).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// A checked route.
#[derive(Debug, Clone)]
pub struct Route {
    pub path: String,
    /// Per backend (config order): whether the route exposes it.
    pub backends: Vec<bool>,
    pub tools: Tools,
    pub auth: Option<Auth>,
    pub authz: Option<Authz>,
    /// `call_timeout_ms`.
    pub call_timeout: Option<std::time::Duration>,
}

/// Checked `routes[].tools:`.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    /// The `include` patterns as anchored regular expressions (`None`: every tool).
    pub include: Option<Vec<String>>,
    pub exclude: Vec<String>,
    pub overrides: BTreeMap<String, Override>,
}

impl Tools {
    /// Whether the route shows every tool as the main endpoint does.
    pub fn is_plain(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty() && self.overrides.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Override {
    pub name: Option<String>,
    pub description: Option<String>,
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// Most routes a gateway serves.
pub const MAX_ROUTES: usize = 255;

/// A name pattern (`*`, `?`) as an anchored regular expression; every other character stands
/// for itself.
pub fn pattern_regex(pattern: &str) -> String {
    let mut re = String::with_capacity(pattern.len() + 8);
    re.push('^');
    for c in pattern.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    re.push('$');
    re
}

fn patterns(list: Vec<String>, at: &str) -> Result<Vec<String>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            if p.is_empty() || p.len() > 256 {
                return Err(err(format!("{at}[{i}]"), "1 to 256 characters"));
            }
            Ok(pattern_regex(p))
        })
        .collect()
}

/// Prefixes a section's own error path with the route's.
fn within(i: usize) -> impl Fn(ConfigError) -> ConfigError {
    move |e| err(format!("routes[{i}].{}", e.path), e.message)
}

/// Checks `routes:`. `main`: the paths the main endpoint and the legacy transport use;
/// `backend_names`: the configured backends in config order.
pub fn check(
    routes: Vec<RouteFile>,
    main: &[&str],
    backend_names: &[&str],
) -> Result<Vec<Route>, ConfigError> {
    if routes.len() > MAX_ROUTES {
        return Err(err("routes", format!("at most {MAX_ROUTES} routes")));
    }
    let mut out: Vec<Route> = Vec::with_capacity(routes.len());
    for (i, r) in routes.into_iter().enumerate() {
        let at = |k: &str| format!("routes[{i}].{k}");
        if !r.path.starts_with('/') || r.path.contains(['?', '#', ' ']) || r.path.len() > 512 {
            return Err(err(at("path"), "must start with / and have no query"));
        }
        if r.path.starts_with("/.well-known/") || main.contains(&r.path.as_str()) {
            return Err(err(
                at("path"),
                "must differ from path, sse_path, message_path and /.well-known/",
            ));
        }
        if out.iter().any(|o| o.path == r.path) {
            return Err(err(at("path"), "another route has this path"));
        }
        let backends = match r.backends {
            None => vec![true; backend_names.len()],
            Some(list) => {
                let mut on = vec![false; backend_names.len()];
                for (j, name) in list.iter().enumerate() {
                    let Some(b) = backend_names.iter().position(|n| n == name) else {
                        return Err(err(
                            format!("routes[{i}].backends[{j}]"),
                            format!("no backend is named {name:?}"),
                        ));
                    };
                    on[b] = true;
                }
                if list.is_empty() {
                    return Err(err(
                        at("backends"),
                        "at least one backend (or leave it out)",
                    ));
                }
                on
            }
        };
        let include = r
            .tools
            .include
            .map(|l| patterns(l, &at("tools.include")))
            .transpose()?;
        let exclude = patterns(r.tools.exclude, &at("tools.exclude"))?;
        // Compiled now, so that a set too large for the regex engine is a config error.
        for (key, set) in [
            ("tools.include", include.as_deref()),
            ("tools.exclude", Some(&exclude[..])),
        ] {
            if let Some(Err(e)) = set.map(regex::RegexSet::new) {
                return Err(err(at(key), format!("the patterns do not compile: {e}")));
            }
        }
        let mut overrides = BTreeMap::new();
        let mut renamed: Vec<&str> = Vec::new();
        for (name, o) in &r.tools.overrides {
            let key = |k: &str| format!("routes[{i}].tools.overrides.{name}.{k}");
            if let Some(new) = &o.name {
                if !crate::names::is_valid_tool_name(new) {
                    return Err(err(key("name"), "1-128 characters of A-Z a-z 0-9 _ - ."));
                }
                if renamed.contains(&new.as_str()) {
                    return Err(err(key("name"), "another override gives this name"));
                }
                renamed.push(new);
            }
            if o.description.as_ref().is_some_and(|d| d.len() > 65536) {
                return Err(err(key("description"), "at most 65536 bytes"));
            }
        }
        for (name, o) in r.tools.overrides {
            overrides.insert(
                name,
                Override {
                    name: o.name,
                    description: o.description,
                    arguments: o.arguments,
                },
            );
        }
        let auth = r.auth.map(AuthFile::check).transpose().map_err(within(i))?;
        let authz = r
            .authz
            .map(|a| a.check(backend_names))
            .transpose()
            .map_err(within(i))?;
        if r.call_timeout_ms == Some(0) {
            return Err(err(
                format!("routes[{i}].call_timeout_ms"),
                "must be greater than 0",
            ));
        }
        out.push(Route {
            call_timeout: r.call_timeout_ms.map(std::time::Duration::from_millis),
            path: r.path,
            backends,
            tools: Tools {
                include,
                exclude,
                overrides,
            },
            auth,
            authz,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        let re = regex::Regex::new(&pattern_regex("mock__*")).unwrap();
        assert!(re.is_match("mock__echo"));
        assert!(!re.is_match("xmock__echo"));
        let re = regex::Regex::new(&pattern_regex("a.b?")).unwrap();
        assert!(re.is_match("a.bc"));
        assert!(!re.is_match("aXbc"), "a dot is a dot");
        assert!(!re.is_match("a.bcd"));
    }

    fn route(yaml: &str) -> Result<Vec<Route>, ConfigError> {
        let files: Vec<RouteFile> = serde_saphyr::from_str(yaml).unwrap();
        check(files, &["/mcp", "/sse", "/message"], &["mock", "other"])
    }

    #[test]
    fn routes_are_checked_with_their_key_paths() {
        let ok = route(
            "- path: /a\n  backends: [other]\n  tools:\n    include: ['other__*']\n    overrides:\n      other__add: {name: sum, arguments: {b: 2}}\n",
        )
        .unwrap();
        assert_eq!(ok[0].backends, vec![false, true]);
        assert_eq!(
            ok[0].tools.overrides["other__add"].name.as_deref(),
            Some("sum")
        );
        let e = route("- path: /mcp\n").unwrap_err();
        assert_eq!(e.path, "routes[0].path");
        let e = route("- path: /a\n- path: /a\n").unwrap_err();
        assert_eq!(e.path, "routes[1].path");
        let e = route("- path: /a\n  backends: [nope]\n").unwrap_err();
        assert_eq!(e.path, "routes[0].backends[0]");
        let e = route("- path: /a\n  tools: {overrides: {x: {name: 'bad name'}}}\n").unwrap_err();
        assert_eq!(e.path, "routes[0].tools.overrides.x.name");
        let e = route("- path: /a\n  authz: {rules: [{allow: 'nope.x'}]}\n").unwrap_err();
        assert!(e.path.starts_with("routes[0].authz.rules[0]"), "{e}");
        let e = route("- path: /a\n  auth: {resource: 'not a uri', api_keys: []}\n").unwrap_err();
        assert_eq!(e.path, "routes[0].auth.resource");
    }
}
