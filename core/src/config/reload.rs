//! Reloading the config (SIGHUP, or the file changed): the new text is checked as written,
//! so that its errors name the keys and lines the operator wrote; settings only a restart
//! can apply are refused; then the backends are laid out so that every backend the running
//! config has keeps its index. Sessions, in-flight calls, catalogs, routes and rules name
//! backends by index, so an index never changes meaning while the process lives: a removed
//! backend stays in its place, retired, and a new one takes the end (or the place it had
//! before it was removed).

use super::{err, load, BackendFile, Config, ConfigError, File};

/// A checked reload: the new config, in the running config's backend order.
#[derive(Debug)]
pub struct Reload {
    pub config: Config,
    /// The live backends' names in the file's order (to name a backend as the file does).
    pub written: Vec<String>,
}

/// Checks `text` as a reload of `running` (`cores`: usable cores, as at start).
pub fn reload(text: &str, cores: usize, running: &Config) -> Result<Reload, ConfigError> {
    let checked = load(text, cores)?;
    needs_restart(running, &checked)?;
    let mut file = File::from_yaml(text)?;
    let mut written: Vec<Option<BackendFile>> = std::mem::take(&mut file.backends)
        .into_iter()
        .map(Some)
        .collect();
    let names: Vec<String> = written.iter().flatten().map(|b| b.name.clone()).collect();
    let mut placed = Vec::with_capacity(running.backends.len() + written.len());
    for old in &running.backends {
        let same = written
            .iter_mut()
            .find(|w| w.as_ref().is_some_and(|w| w.name == old.name))
            .and_then(Option::take);
        placed.push(match same {
            Some(b) => b,
            None => retired(&old.name)?,
        });
    }
    placed.extend(written.into_iter().flatten());
    let order: Vec<String> = placed.iter().map(|b| b.name.clone()).collect();
    file.backends = placed;
    // (It checked as written; what is left to fail here, a new name's id colliding with a
    // retired one's, is named as the file writes it.)
    let mut config = file.validate(cores).map_err(|e| {
        let path = as_written(&e.path, &order, &names);
        e.at(path)
    })?;
    // What the gateway settled at start stays: the 2026-07-28 requestState key it made (a
    // new one would break every state a client holds) and the connection limit it derived.
    if config.modern.request_state_key.is_none() {
        config.modern.request_state_key = running.modern.request_state_key;
    }
    if config.limits.max_connections == 0 {
        config.limits.max_connections = running.limits.max_connections;
    }
    Ok(Reload {
        config,
        written: names,
    })
}

/// The path of an error about the laid-out config (`backends[i].…`, `i` in `order`) as the
/// file writes it (`backends[j].…`, `j` in `written`).
pub fn as_written(path: &str, order: &[String], written: &[String]) -> String {
    let Some((i, tail)) = path
        .strip_prefix("backends[")
        .and_then(|rest| rest.split_once(']'))
    else {
        return path.to_owned();
    };
    let name = i.parse::<usize>().ok().and_then(|i| order.get(i));
    match name.and_then(|n| written.iter().position(|w| w == n)) {
        Some(j) => format!("backends[{j}]{tail}"),
        None => path.to_owned(),
    }
}

/// A removed backend's placeholder: its name, and an address never used (it is not
/// resolved, connected to or listed).
fn retired(name: &str) -> Result<BackendFile, ConfigError> {
    let mut b: BackendFile =
        serde_saphyr::from_str(&format!("name: \"{name}\"\nurl: http://127.0.0.1:9/\n"))
            .map_err(|e| err("backends", format!("keeping {name:?}'s place: {e}")))?;
    b.retired = true;
    Ok(b)
}

/// Refuses a change a running gateway cannot apply: its sockets, threads and rings, the
/// threads that fetch keys and certificates, and the logs and exporters it opened.
fn needs_restart(running: &Config, new: &Config) -> Result<(), ConfigError> {
    fn differ<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let checks: [(&str, bool); 12] = [
        ("listen", running.listen != new.listen),
        ("shards", running.shards != new.shards),
        ("pin_cores", running.pin_cores != new.pin_cores),
        ("ring_entries", running.ring_entries != new.ring_entries),
        ("tls", differ(&running.tls, &new.tls)),
        ("auth.jwt", new_keys(&running.auth, &new.auth)),
        ("audit", differ(&running.audit, &new.audit)),
        (
            "tool_safety",
            differ(&running.tool_safety, &new.tool_safety),
        ),
        ("admin.listen", running.admin != new.admin),
        (
            "admin",
            running.admin_token_sha256 != new.admin_token_sha256
                || differ(&running.admin_tls, &new.admin_tls),
        ),
        ("access_log", differ(&running.access_log, &new.access_log)),
        ("traces", differ(&running.traces, &new.traces)),
    ];
    if let Some((key, _)) = checks.iter().find(|(_, changed)| *changed) {
        return Err(err(*key, RESTART));
    }
    // A route's own `auth.jwt:` the same way (a route is known by its path).
    for (i, route) in new.routes.iter().enumerate() {
        let before = running.routes.iter().find(|r| r.path == route.path);
        if new_keys(&before.and_then(|r| r.auth.clone()), &route.auth) {
            return Err(err(format!("routes[{i}].auth.jwt"), RESTART));
        }
    }
    Ok(())
}

/// Whether `new` has a `jwt:` that `old` does not have as it is: its issuer's keys would
/// need a fetcher the running gateway did not start. (API keys, scopes, the resource and
/// its metadata reload; a `jwt:` may go.)
fn new_keys(old: &Option<super::Auth>, new: &Option<super::Auth>) -> bool {
    let jwt = |a: &Option<super::Auth>| {
        a.as_ref()
            .and_then(|a| a.jwt.as_ref())
            .map(|j| format!("{j:?}"))
    };
    match (jwt(old), jwt(new)) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a != b,
    }
}

const RESTART: &str = "a reload cannot change this; restart ringmux to apply it";

/// The line (1-based) of the key `path` names (`backends[2].url`) in YAML `text`: the
/// deepest part of the path the text has.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let mut events = granit_parser::Parser::new_from_str(text)
        .map_while(Result::ok)
        .map(|(e, span)| (e, span.start.line()))
        .skip_while(|(e, _)| {
            matches!(
                e,
                granit_parser::Event::StreamStart | granit_parser::Event::DocumentStart(..)
            )
        });
    let (first, _) = events.next()?;
    let root = node(first, &mut events, 0)?;
    let mut here = &root;
    let mut line = None;
    for part in parts(path) {
        let next = match (part, here) {
            (Part::Key(k), Node::Map(entries)) => entries
                .iter()
                .find(|(key, _, _)| key == k)
                .map(|(_, l, n)| (*l, n)),
            (Part::Index(i), Node::Seq(items)) => items.get(i).map(|(l, n)| (*l, n)),
            _ => None,
        };
        let Some((l, n)) = next else { break };
        line = Some(l);
        here = n;
    }
    line
}

/// A YAML document as far as locating keys needs: keys and items with their lines.
enum Node {
    Scalar,
    Seq(Vec<(usize, Node)>),
    Map(Vec<(String, usize, Node)>),
}

/// Deeper than any config; a hostile file's nesting stops here.
const MAX_DEPTH: usize = 64;

fn node<'a>(
    first: granit_parser::Event<'a>,
    rest: &mut impl Iterator<Item = (granit_parser::Event<'a>, usize)>,
    depth: usize,
) -> Option<Node> {
    use granit_parser::Event as E;
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match first {
        E::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (e, line) = rest.next()?;
                if matches!(e, E::SequenceEnd) {
                    break Node::Seq(items);
                }
                items.push((line, node(e, rest, depth + 1)?));
            }
        }
        E::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (k, line) = rest.next()?;
                let key = match k {
                    E::MappingEnd => break Node::Map(entries),
                    E::Scalar(s, ..) => s.into_owned(),
                    other => {
                        node(other, rest, depth + 1)?;
                        String::new()
                    }
                };
                let (v, _) = rest.next()?;
                entries.push((key, line, node(v, rest, depth + 1)?));
            }
        }
        _ => Node::Scalar,
    })
}

enum Part<'a> {
    Key(&'a str),
    Index(usize),
}

/// `routes[0].backends[1]` → `routes`, 0, `backends`, 1.
fn parts(path: &str) -> impl Iterator<Item = Part<'_>> {
    path.split('.').flat_map(|seg| {
        let mut pieces = seg.split('[');
        let key = pieces.next().filter(|k| !k.is_empty()).map(Part::Key);
        key.into_iter()
            .chain(pieces.filter_map(|p| p.strip_suffix(']')?.parse().ok().map(Part::Index)))
    })
}

impl ConfigError {
    /// The same error at another key path.
    pub fn at(self, path: String) -> ConfigError {
        ConfigError { path, ..self }
    }

    /// The error with the line of its key in `text`, where the text has it.
    pub fn in_text(&self, text: &str) -> String {
        match line_of(text, &self.path) {
            Some(line) => format!("line {line}: {self}"),
            None => self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "listen: 127.0.0.1:0\nshards: 2\nbackends:\n  - name: a\n    url: http://127.0.0.1:1/mcp\n  - name: b\n    url: http://127.0.0.1:2/mcp\n  - name: c\n    url: http://127.0.0.1:3/mcp\n";

    fn names(c: &Config) -> Vec<(String, bool)> {
        c.backends
            .iter()
            .map(|b| (b.name.clone(), b.retired))
            .collect()
    }

    #[test]
    fn backends_keep_their_places() {
        let running = load(BASE, 2).unwrap();
        // b removed, d added, the rest written in another order.
        let text = "listen: 127.0.0.1:0\nshards: 2\nbackends:\n  - name: d\n    url: http://127.0.0.1:4/mcp\n  - name: c\n    url: http://127.0.0.1:3/mcp\n  - name: a\n    url: http://127.0.0.1:1/mcp\n";
        let next = reload(text, 2, &running).unwrap().config;
        let want = |v: &[(&str, bool)]| {
            v.iter()
                .map(|(n, r)| (n.to_string(), *r))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&next),
            want(&[("a", false), ("b", true), ("c", false), ("d", false)])
        );
        assert_ne!(next.fingerprint, running.fingerprint);
        // b comes back in its old place; the retired d keeps its own.
        let again = reload(BASE, 2, &next).unwrap().config;
        assert_eq!(
            names(&again),
            want(&[("a", false), ("b", false), ("c", false), ("d", true)])
        );
        // Prefixing counts live backends only: one left is not prefixed (conditional mode).
        let conditional = "names:\n  prefix: conditional\n";
        let again = reload(&format!("{BASE}{conditional}"), 2, &again)
            .unwrap()
            .config;
        assert!(again.backends[2].prefixed);
        let one = format!("listen: 127.0.0.1:0\nshards: 2\n{conditional}backends:\n  - name: c\n    url: http://127.0.0.1:3/mcp\n");
        let single = reload(&one, 2, &again).unwrap().config;
        assert!(!single.backends[2].prefixed);
    }

    #[test]
    fn errors_name_the_key_as_written_and_its_line() {
        let running = load(BASE, 2).unwrap();
        let text = "listen: 127.0.0.1:0\nshards: 2\nbackends:\n  - name: c\n    url: http://127.0.0.1:3/mcp\n  - name: a\n    url: ftp://nowhere\n";
        let e = reload(text, 2, &running).unwrap_err();
        assert_eq!(e.path, "backends[1].url");
        assert_eq!(line_of(text, &e.path), Some(7));
        assert!(e.in_text(text).starts_with("line 7: backends[1].url: "));
    }

    #[test]
    fn restart_only_settings_are_refused() {
        let running = load(BASE, 2).unwrap();
        for (from, to, key) in [
            ("listen: 127.0.0.1:0", "listen: 127.0.0.1:1", "listen"),
            ("shards: 2", "shards: 3", "shards"),
        ] {
            let e = reload(&BASE.replace(from, to), 2, &running).unwrap_err();
            assert_eq!(e.path, key);
            assert!(e.message.contains("restart"), "{e}");
        }
        let traced = format!("{BASE}traces:\n  endpoint: http://127.0.0.1:4318/v1/traces\n");
        assert_eq!(reload(&traced, 2, &running).unwrap_err().path, "traces");
        // Limits and names are not among them.
        let changed =
            format!("{BASE}limits:\n  max_body_bytes: 1000\nnames:\n  separator: \"__\"\n");
        let next = reload(&changed, 2, &running).unwrap().config;
        assert_eq!(next.limits.max_body, 1000);
        assert_eq!(next.separator, "__");
    }

    #[test]
    fn lines_of_nested_keys() {
        let text = "a: 1\nroutes:\n  - path: /x\n    backends: [p, q]\n  - path: /y\n    tools:\n      allow: [z]\n";
        assert_eq!(line_of(text, "routes[1].tools.allow"), Some(7));
        assert_eq!(line_of(text, "routes[0].backends[1]"), Some(4));
        // The deepest part the text has: a key it lacks is reported at its parent.
        assert_eq!(line_of(text, "routes[1].missing"), Some(5));
        assert_eq!(line_of(text, "nothing"), None);
        assert_eq!(line_of(":\n[", "a"), None);
    }
}
