//! A virtual server's tool shape (`routes[].tools`): which merged tools it shows (name
//! patterns), and the tools it edits (a new name, a new description, arguments fixed by the
//! operator: gone from the schema its clients see, set on every call). Sans-IO: the gateway
//! applies a [`Shape`] where it builds a route's merged tool list, once per catalog change,
//! and [`with_arguments`] where it writes a call's body.

use std::collections::{HashMap, HashSet};

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
}

/// A route's edits of one merged tool list ([`Shape::apply`]).
#[derive(Default)]
pub struct Shaped {
    /// By (source, item) in the merged index.
    pub edits: HashMap<(u32, u32), Edit>,
    /// A renamed tool's new name → its owner.
    names: HashMap<Box<str>, Owner>,
    /// Overridden tools whose definition is not a JSON object: shown unedited (logged by the
    /// caller).
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
/// object with an object `params`.
pub fn with_arguments(body: &[u8], fixed: &Map<String, Value>, out: &mut Vec<u8>) -> bool {
    let Ok(mut msg) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return false;
    };
    let Some(Value::Object(params)) = msg.get_mut("params") else {
        return false;
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
    let len = out.len();
    if serde_json::to_writer(&mut *out, &msg).is_err() {
        out.truncate(len);
        return false;
    }
    true
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

    #[test]
    fn a_shape_filters_renames_and_fixes() {
        let shape = Shape::new(&tools(
            r#"{"include": ["m__*"], "exclude": ["*secret*"], "overrides": {"m__add": {"name": "sum", "description": "Adds", "arguments": {"b": 2}}}}"#,
        ))
        .unwrap();
        assert!(shape.shows("m__add"));
        assert!(!shape.shows("m__secret_tool"));
        assert!(!shape.shows("other"));
        let mut cat = Catalog::new(ListKind::Tools);
        cat.add_page(br#"{"tools":[{"name":"add","inputSchema":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}},"required":["a","b"]}},{"name":"echo"}]}"#).unwrap();
        let cats = vec![std::rc::Rc::new(cat)];
        let sources = [Source {
            backend: 0,
            name: "m",
            prefixed: true,
            catalog: &cats[0],
        }];
        let index = Index::build(ListKind::Tools, &sources, "__", &[], 1);
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
            br#"{"params":{"name":"\ud800"}}"#,
            &edit.fixed,
            &mut body
        ));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["params"]["arguments"],
            serde_json::json!({"a": 1, "b": 2})
        );
        assert_eq!(v["id"], 1);
    }

    #[test]
    fn a_new_name_hides_the_tool_that_had_it() {
        let shape = Shape::new(&tools(r#"{"overrides": {"m__a": {"name": "m__b"}}}"#)).unwrap();
        assert!(shape.shows("m__a"));
        assert!(!shape.shows("m__b"), "m__b is m__a's name on this route");
    }
}
