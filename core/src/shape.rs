//! A virtual server's tool shape (`routes[].tools`): which merged tools it shows (name
//! patterns), and the tools it edits (a new name, a new description, arguments fixed by the
//! operator: gone from the schema its clients see, set on every call). Sans-IO: the gateway
//! applies a [`Shape`] where it builds a route's merged tool list, once per catalog change,
//! and [`with_arguments`] where it writes a call's body.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::catalog::Catalog;
use crate::config::{self, Override};
use crate::merge::{Index, Route as Owner};

/// A route's tool shape, compiled (per shard).
pub struct Shape {
    include: Option<regex::RegexSet>,
    exclude: regex::RegexSet,
    overrides: HashMap<String, Override>,
    /// The names overrides give.
    new_names: HashSet<String>,
}

impl Shape {
    /// `None` when the route shows every tool as the main endpoint does.
    pub fn new(tools: &config::Tools) -> Option<Shape> {
        if tools.is_plain() {
            return None;
        }
        let set = |p: &[String]| {
            regex::RegexSet::new(p).expect("patterns were made from escaped text when checked")
        };
        Some(Shape {
            include: tools.include.as_deref().map(set),
            exclude: set(&tools.exclude),
            overrides: tools
                .overrides
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            new_names: tools
                .overrides
                .values()
                .filter_map(|o| o.name.clone())
                .collect(),
        })
    }

    /// Whether the route shows the tool the main endpoint lists as `merged`: included, not
    /// excluded, and its name not taken by another tool's override.
    pub fn shows(&self, merged: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(merged))
            && !self.exclude.is_match(merged)
            && !(self.new_names.contains(merged)
                && self.overrides.get(merged).is_none_or(|o| o.name.is_none()))
    }

    /// The route's edits of a merged tool list: each overridden tool's item as the route's
    /// clients see it, and where its new name leads. Built once per merged list.
    pub fn apply(&self, index: &Index, catalogs: &[std::rc::Rc<Catalog>]) -> Shaped {
        let mut shaped = Shaped::default();
        for (si, cat) in catalogs.iter().enumerate() {
            for i in 0..cat.len() {
                let Some(merged) = index.merged_key(si, cat, i) else {
                    continue;
                };
                let Some(o) = self.overrides.get(merged.as_ref()) else {
                    continue;
                };
                let Some(owner) = index.route(&merged) else {
                    continue;
                };
                let name = o.name.as_deref().unwrap_or(&merged);
                let Some(bytes) = edited(cat.item(i), name, o) else {
                    // It cannot be shown as the route says (its fixed arguments would not be
                    // hidden, its new name not given): it is withheld, not shown unedited.
                    shaped.edits.insert(
                        (si as u32, i as u32),
                        Edit {
                            bytes: Box::new([]),
                            renamed: true,
                            fixed: o.arguments.clone(),
                            withheld: true,
                        },
                    );
                    shaped.unreadable.push(merged.into_owned());
                    continue;
                };
                if let Some(new) = &o.name {
                    shaped.names.insert(new.as_str().into(), owner);
                }
                shaped.edits.insert(
                    (si as u32, i as u32),
                    Edit {
                        bytes,
                        renamed: o.name.is_some(),
                        fixed: o.arguments.clone(),
                        withheld: false,
                    },
                );
            }
        }
        shaped
    }
}

/// One overridden tool, as the route shows and calls it.
pub struct Edit {
    /// The whole item the route's clients see.
    pub bytes: Box<[u8]>,
    /// Known by another name on the route (its merged name is unknown there).
    pub renamed: bool,
    /// Arguments set on every call.
    pub fixed: Map<String, Value>,
    /// Its definition could not be edited (serde_json cannot read it: a lone surrogate, a
    /// number out of range): not listed, not callable on the route.
    pub withheld: bool,
}

/// A route's edits of one merged tool list ([`Shape::apply`]).
#[derive(Default)]
pub struct Shaped {
    /// By (source, item) in the merged index.
    pub edits: HashMap<(u32, u32), Edit>,
    /// A renamed tool's new name → its owner.
    names: HashMap<Box<str>, Owner>,
    /// Overridden tools whose definition could not be read: withheld (logged by the caller).
    pub unreadable: Vec<String>,
}

impl Shaped {
    /// Where `name` (as the route's client knows it) leads: a new name to its tool; a
    /// renamed tool's old name nowhere.
    pub fn route(&self, index: &Index, name: &str) -> Option<Owner> {
        if let Some(owner) = self.names.get(name) {
            return Some(*owner);
        }
        let owner = index.route(name)?;
        match self.edit(owner) {
            Some(e) if e.renamed => None,
            _ => Some(owner),
        }
    }

    /// Whether item `item` of source `source` is listed (not withheld).
    pub fn shows(&self, source: usize, item: usize) -> bool {
        self.edits
            .get(&(source as u32, item as u32))
            .is_none_or(|e| !e.withheld)
    }

    pub fn edit(&self, owner: Owner) -> Option<&Edit> {
        self.edits.get(&(owner.source as u32, owner.item))
    }
}

/// `item` with its name, description and input schema as the override says; `None` if it is
/// not a JSON object.
pub(crate) fn edited(item: &[u8], name: &str, o: &Override) -> Option<Box<[u8]>> {
    let mut tool: Map<String, Value> = serde_json::from_slice(item).ok()?;
    tool.insert("name".into(), Value::String(name.into()));
    if let Some(d) = &o.description {
        tool.insert("description".into(), Value::String(d.clone()));
    }
    if !o.arguments.is_empty() {
        if let Some(Value::Object(schema)) = tool.get_mut("inputSchema") {
            if let Some(Value::Object(props)) = schema.get_mut("properties") {
                for k in o.arguments.keys() {
                    props.remove(k);
                }
            }
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|r| r.as_str().is_none_or(|r| !o.arguments.contains_key(r)));
            }
        }
    }
    serde_json::to_vec(&tool).ok().map(Vec::into_boxed_slice)
}

/// `body` (a `tools/call` request) with `fixed` set in its `params.arguments`, whatever the
/// client sent for them, written to `out`; `false` (and `out` as it was) if it is not a JSON
/// object with an object `params`, or names `params` or `params.arguments` twice (which one a
/// backend would read is its parser's choice).
///
/// The client's bytes are kept: only the `arguments` object is written anew, its fixed
/// members first, then the client's other members as sent (a member it sent for a fixed name
/// is left out, however its name is escaped). One pass of serde_json over borrowed members,
/// no tree: about a third of the instructions of a `serde_json::Value` round trip.
pub fn with_arguments(body: &[u8], fixed: &Map<String, Value>, out: &mut Vec<u8>) -> bool {
    let len = out.len();
    let ok = write_with_arguments(body, fixed, out).is_some();
    if !ok {
        out.truncate(len);
    }
    ok
}

fn write_with_arguments(body: &[u8], fixed: &Map<String, Value>, out: &mut Vec<u8>) -> Option<()> {
    let text = std::str::from_utf8(body).ok()?;
    let top: Members<'_> = serde_json::from_str(text).ok()?;
    let params = top.only("params")??;
    let members: Members<'_> = serde_json::from_str(params.get()).ok()?;
    let args = members.only("arguments")?;
    let client: Option<Members<'_>> = args.and_then(|a| serde_json::from_str(a.get()).ok());
    let at = |raw: &RawValue| raw.get().as_ptr() as usize - text.as_ptr() as usize;
    // Where the new `arguments` object goes: in place of the old value, or first in `params`.
    let (start, end, member) = match args {
        Some(a) => (at(a), at(a) + a.get().len(), false),
        None => (at(params) + 1, at(params) + 1, true),
    };
    out.extend_from_slice(&body[..start]);
    if member {
        out.extend_from_slice(b"\"arguments\":");
    }
    out.push(b'{');
    let mut first = true;
    for (k, v) in fixed {
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, k).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut *out, v).ok()?;
    }
    for (k, v) in client.iter().flat_map(|m| &m.0) {
        if fixed.contains_key(k.as_ref()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, k.as_ref()).ok()?;
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    if member && !members.0.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(&body[end..]);
    Some(())
}

/// Writes into `out` the request `body` with `params._meta.traceparent` set to `value` (a
/// W3C `traceparent`, MCP's convention for carrying trace context in a message): the member
/// replaced if the client sent one, `_meta` or `params` created if absent; every other byte
/// kept. `false` (and `out` as it was) when `body` is not an object with an object
/// `params`, or names `params`, `_meta` or `traceparent` twice.
pub fn with_meta_traceparent(body: &[u8], value: &[u8], out: &mut Vec<u8>) -> bool {
    let len = out.len();
    let ok = write_with_meta_traceparent(body, value, out).is_some();
    if !ok {
        out.truncate(len);
    }
    ok
}

fn write_with_meta_traceparent(body: &[u8], value: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let text = std::str::from_utf8(body).ok()?;
    if value
        .iter()
        .any(|b| !b.is_ascii_graphic() || *b == b'"' || *b == b'\\')
    {
        return None;
    }
    let at = |raw: &RawValue| raw.get().as_ptr() as usize - text.as_ptr() as usize;
    let member = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"\"traceparent\":\"");
        out.extend_from_slice(value);
        out.push(b'"');
    };
    let top: Members<'_> = serde_json::from_str(text).ok()?;
    let Some(params) = top.only("params")? else {
        // No params: `,"params":{"_meta":{…}}` before the closing brace.
        let end = text.trim_end().len().checked_sub(1)?;
        out.extend_from_slice(&body[..end]);
        if !top.0.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(b"\"params\":{\"_meta\":{");
        member(out);
        out.extend_from_slice(b"}}");
        out.extend_from_slice(&body[end..]);
        return Some(());
    };
    let members: Members<'_> = serde_json::from_str(params.get()).ok()?;
    match members.only("_meta")? {
        None => {
            let start = at(params) + 1;
            out.extend_from_slice(&body[..start]);
            out.extend_from_slice(b"\"_meta\":{");
            member(out);
            out.push(b'}');
            if !members.0.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&body[start..]);
        }
        Some(meta) => {
            let fields: Members<'_> = serde_json::from_str(meta.get()).ok()?;
            match fields.only("traceparent")? {
                Some(old) => {
                    out.extend_from_slice(&body[..at(old)]);
                    out.push(b'"');
                    out.extend_from_slice(value);
                    out.push(b'"');
                    out.extend_from_slice(&body[at(old) + old.get().len()..]);
                }
                None => {
                    let start = at(meta) + 1;
                    out.extend_from_slice(&body[..start]);
                    member(out);
                    if !fields.0.is_empty() {
                        out.push(b',');
                    }
                    out.extend_from_slice(&body[start..]);
                }
            }
        }
    }
    Some(())
}

/// A JSON object's members, borrowed from its text: (name, decoded only when escaped; value).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The value of member `name`: `Some(None)` when absent, `None` when it appears twice.
    fn only(&self, name: &str) -> Option<Option<&'a RawValue>> {
        let mut found = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| *v);
        let first = found.next();
        found.next().is_none().then_some(first)
    }
}

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(8);
                while let Some(Key(k)) = map.next_key()? {
                    members.push((k, map.next_value::<&'de RawValue>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Object)
    }
}

/// A member name, borrowed unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// [`with_arguments`] the plain way, through a `serde_json::Value` (the oracle its fuzz
/// property holds it to).
#[doc(hidden)]
pub fn with_arguments_plainly(body: &[u8], fixed: &Map<String, Value>) -> Option<Value> {
    let mut msg = serde_json::from_slice::<Map<String, Value>>(body).ok()?;
    let Some(Value::Object(params)) = msg.get_mut("params") else {
        return None;
    };
    let args = params
        .entry("arguments")
        .or_insert_with(|| Value::Object(Map::new()));
    if !args.is_object() {
        *args = Value::Object(Map::new());
    }
    let args = args.as_object_mut().expect("made an object");
    for (k, v) in fixed {
        args.insert(k.clone(), v.clone());
    }
    Some(Value::Object(msg))
}

#[cfg(test)]
mod meta_tests {
    use super::*;

    fn set(body: &str) -> Option<serde_json::Value> {
        let mut out = Vec::new();
        with_meta_traceparent(body.as_bytes(), b"00-ab-cd-01", &mut out)
            .then(|| serde_json::from_slice(&out).expect("still JSON"))
    }

    #[test]
    fn the_traceparent_is_set_wherever_meta_stands() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"traceparent":"00-old-old-01","progressToken":3}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","_meta":{"progressToken":3}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"} "#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{}}}"#,
        ] {
            let v = set(body).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(v["params"]["_meta"]["traceparent"], "00-ab-cd-01", "{body}");
            let before: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["method"], before["method"]);
            assert_eq!(v["params"]["name"], before["params"]["name"]);
            assert_eq!(
                v["params"]["_meta"].get("progressToken"),
                before["params"]["_meta"].get("progressToken")
            );
        }
        for bad in [
            r#"{"params":[1]}"#,
            r#"{"params":{"_meta":1}}"#,
            r#"{"params":{},"params":{}}"#,
            r#"{"params":{"_meta":{"traceparent":1,"traceparent":2}}}"#,
            "not json",
        ] {
            assert!(set(bad).is_none(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ListKind;
    use crate::merge::Source;

    fn tools(json: &str) -> config::Tools {
        let files: Vec<config::RouteFile> =
            serde_json::from_str(&format!(r#"[{{"path": "/r", "tools": {json}}}]"#)).unwrap();
        config::check_routes(files, &["/mcp"], &["m"])
            .unwrap()
            .remove(0)
            .tools
    }

    /// The merged tools index of one prefixed backend `m` whose list is `page`.
    fn backend_m(page: &[u8]) -> (Vec<std::rc::Rc<Catalog>>, Index) {
        let mut cat = Catalog::new(ListKind::Tools);
        cat.add_page(page).unwrap();
        let cats = vec![std::rc::Rc::new(cat)];
        let sources = [Source {
            backend: 0,
            name: "m",
            prefixed: true,
            catalog: &cats[0],
        }];
        let index = Index::build(ListKind::Tools, &sources, "__", &[], 1);
        (cats, index)
    }

    #[test]
    fn a_shape_filters_renames_and_fixes() {
        let shape = Shape::new(&tools(
            r#"{"include": ["m__*"], "exclude": ["*secret*"], "overrides": {"m__add": {"name": "sum", "description": "Adds", "arguments": {"b": 2}}}}"#,
        ))
        .unwrap();
        assert!(shape.shows("m__add"));
        assert!(!shape.shows("m__secret_tool"));
        assert!(!shape.shows("other"));
        let (cats, index) = backend_m(
            br#"{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}},{"name":"echo"}]}"#,
        );
        let shaped = shape.apply(&index, &cats);
        let owner = shaped.route(&index, "sum").unwrap();
        assert_eq!(owner.item, 0);
        assert!(
            shaped.route(&index, "m__add").is_none(),
            "the old name is gone"
        );
        assert_eq!(shaped.route(&index, "m__echo").unwrap().item, 1);
        let edit = shaped.edit(owner).unwrap();
        let v: Value = serde_json::from_slice(&edit.bytes).unwrap();
        assert_eq!(v["name"], "sum");
        assert_eq!(v["description"], "Adds");
        assert!(v["inputSchema"]["properties"].get("b").is_none());
        assert_eq!(v["inputSchema"]["required"], serde_json::json!(["a"]));
        let mut body = Vec::new();
        assert!(with_arguments(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":99}}}"#,
            &edit.fixed,
            &mut body,
        ));
        assert!(!with_arguments(br#"{"params":[]}"#, &edit.fixed, &mut body));
        assert!(!with_arguments(
            br#"{"params":{"arguments":{},"arguments":{"b":1}}}"#,
            &edit.fixed,
            &mut body
        ));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["params"]["arguments"],
            serde_json::json!({"a": 1, "b": 2})
        );
        assert_eq!(v["id"], 1);
        // The client's bytes stay as sent, but for the arguments; a fixed name however escaped
        // is the operator's; arguments absent are added.
        let mut out = Vec::new();
        assert!(with_arguments(
            br#"{"id":7, "params": {"name":"add", "arguments": {"\u0062": 5, "a": 1.50}}, "jsonrpc":"2.0"}"#,
            &edit.fixed,
            &mut out,
        ));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":7, "params": {"name":"add", "arguments": {"b":2,"a":1.50}}, "jsonrpc":"2.0"}"#
        );
        out.clear();
        assert!(with_arguments(
            br#"{"params":{"name":"add"}}"#,
            &edit.fixed,
            &mut out
        ));
        assert_eq!(out, br#"{"params":{"arguments":{"b":2},"name":"add"}}"#);
        out.clear();
        assert!(with_arguments(br#"{"params":{}}"#, &edit.fixed, &mut out));
        assert_eq!(out, br#"{"params":{"arguments":{"b":2}}}"#);
    }

    #[test]
    fn an_override_it_cannot_apply_withholds_the_tool() {
        let shape = Shape::new(&tools(
            r#"{"overrides": {"m__add": {"name": "sum", "arguments": {"b": 2}}}}"#,
        ))
        .unwrap();
        // serde_json's raw check lets a lone surrogate through; its parser does not.
        let (cats, index) =
            backend_m(br#"{"tools":[{"name":"add","description":"\ud800"},{"name":"echo"}]}"#);
        let shaped = shape.apply(&index, &cats);
        assert_eq!(shaped.unreadable, vec!["m__add".to_string()]);
        assert!(shaped.route(&index, "sum").is_none());
        assert!(shaped.route(&index, "m__add").is_none());
        assert!(!shaped.shows(0, 0) && shaped.shows(0, 1));
    }

    #[test]
    fn a_new_name_hides_the_tool_that_had_it() {
        let shape = Shape::new(&tools(r#"{"overrides": {"m__a": {"name": "m__b"}}}"#)).unwrap();
        assert!(shape.shows("m__a"));
        assert!(!shape.shows("m__b"), "m__b is m__a's name on this route");
    }
}
