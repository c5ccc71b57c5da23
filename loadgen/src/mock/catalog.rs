//! The lists a mock serves (tools, prompts, resources, resource templates), kept as
//! pre-serialized items, and their pagination. The unpaginated result is rendered once and
//! copied out as is: `tools/list` on the fast path is one memcpy.

use std::sync::RwLock;

use ringmux_core::jsonrpc::{raw_str, Raw};

use super::dispatch::Fail;
use super::{fixtures, tools, MockConfig};

/// One list, as the items of its result array.
pub(crate) struct List {
    /// The result member holding the items: `tools`, `prompts`, `resources`, `resourceTemplates`.
    key: &'static str,
    items: Vec<Box<[u8]>>,
    /// Items per page; 0 = one page.
    page_size: usize,
    /// The whole list as one result (`{"tools":[…]}`), kept in step with `items`.
    full: Vec<u8>,
}

impl List {
    pub fn new(key: &'static str, items: Vec<Box<[u8]>>, page_size: usize) -> Self {
        let mut list = List {
            key,
            items,
            page_size,
            full: Vec::new(),
        };
        list.render_full();
        list
    }

    fn render_full(&mut self) {
        self.full.clear();
        render(self.key, &self.items, None, &mut self.full);
    }

    /// Replaces the first item `matches` picks.
    pub fn replace_where(&mut self, matches: impl Fn(&[u8]) -> bool, item: Box<[u8]>) {
        if let Some(slot) = self.items.iter_mut().find(|i| matches(i)) {
            *slot = item;
            self.render_full();
        }
    }

    pub fn push(&mut self, item: Box<[u8]>) {
        self.items.push(item);
        self.render_full();
    }

    /// Appends the result for a list request with `cursor` (absent: the first page). Cursors
    /// are item offsets as decimal strings; anything else, or an offset this list never
    /// handed out, is invalid params.
    pub fn page(&self, cursor: Option<Raw<'_>>, out: &mut Vec<u8>) -> Result<(), Fail> {
        let start = match cursor {
            None => 0,
            Some(raw) => self.parse_cursor(raw)?,
        };
        if start == 0 && (self.page_size == 0 || self.items.len() <= self.page_size) {
            out.extend_from_slice(&self.full);
            return Ok(());
        }
        let end = match self.page_size {
            0 => self.items.len(),
            n => (start + n).min(self.items.len()),
        };
        let next = (end < self.items.len()).then_some(end);
        render(self.key, &self.items[start..end], next, out);
        Ok(())
    }

    fn parse_cursor(&self, raw: Raw<'_>) -> Result<usize, Fail> {
        let invalid = || Fail::params(format!("Invalid cursor: {}", raw.get()));
        let text = raw_str(raw).ok_or_else(invalid)?;
        if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let offset: usize = text.parse().map_err(|_| invalid())?;
        let aligned = self.page_size == 0 || offset.is_multiple_of(self.page_size);
        if offset != 0 && (offset >= self.items.len() || !aligned) {
            return Err(invalid());
        }
        Ok(offset)
    }
}

/// Writes `{"<key>":[items…]}`, with `"nextCursor":"<next>"` when there is a next page.
fn render(key: &str, items: &[Box<[u8]>], next: Option<usize>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.push(b']');
    if let Some(next) = next {
        out.extend_from_slice(b",\"nextCursor\":\"");
        ringmux_core::http::write_usize(out, next);
        out.push(b'"');
    }
    out.push(b'}');
}

/// The tool list, which `touch_tools` grows at run time.
pub(crate) struct Tools {
    pub list: List,
    /// How many `extra_<k>` tools `touch_tools` has added.
    pub extras: usize,
}

/// Everything a mock lists.
pub(crate) struct Catalog {
    pub tools: RwLock<Tools>,
    /// How many `tool_NNNN` tools were generated.
    pub generated: usize,
    pub prompts: List,
    pub resources: List,
    pub templates: List,
    /// The initialize result after `protocolVersion`: `,"capabilities":…,"serverInfo":…}`.
    pub init_tail: Vec<u8>,
}

impl Catalog {
    pub fn new(cfg: &MockConfig) -> Self {
        let page = cfg.page_size;
        let (tools, prompts, resources, templates) = if cfg.conformance {
            (
                fixtures::tools(),
                fixtures::prompts(),
                fixtures::resources(),
                fixtures::templates(),
            )
        } else {
            (
                tools::tools(cfg),
                tools::prompts(cfg),
                tools::resources(cfg),
                tools::templates(cfg),
            )
        };
        let mut init_tail = br#","capabilities":{"tools":{"listChanged":true},"prompts":{"listChanged":true},"resources":{"subscribe":true,"listChanged":true},"logging":{},"completions":{}},"serverInfo":{"name":"#.to_vec();
        ringmux_core::jsonrpc::write_str(&mut init_tail, &cfg.name);
        init_tail.extend_from_slice(br#","version":"0.1.0"}"#);
        if let Some(text) = &cfg.instructions {
            init_tail.extend_from_slice(br#","instructions":"#);
            ringmux_core::jsonrpc::write_str(&mut init_tail, text);
        }
        init_tail.push(b'}');
        Catalog {
            generated: if cfg.conformance {
                0
            } else {
                tools::generated_count(cfg)
            },
            tools: RwLock::new(Tools {
                list: List::new("tools", tools, page),
                extras: 0,
            }),
            prompts: List::new("prompts", prompts, page),
            resources: List::new("resources", resources, page),
            templates: List::new("resourceTemplates", templates, page),
            init_tail,
        }
    }

    /// Adds the next `extra_<k>` tool and returns its name.
    pub fn add_extra_tool(&self) -> String {
        let mut tools = self.tools.write().unwrap_or_else(|e| e.into_inner());
        tools.extras += 1;
        let name = format!("extra_{}", tools.extras);
        tools.list.push(tools::extra_tool(&name));
        name
    }

    /// Replaces tool `name`'s definition with `item` (a rug pull).
    pub fn redefine_tool(&self, name: &str, item: &str) {
        let mut tools = self.tools.write().unwrap_or_else(|e| e.into_inner());
        let quoted = format!("\"name\":\"{name}\"");
        tools.list.replace_where(
            |i| i.windows(quoted.len()).any(|w| w == quoted.as_bytes()),
            item.as_bytes().into(),
        );
    }

    /// How many `extra_<k>` tools exist now.
    pub fn extras(&self) -> usize {
        self.tools.read().unwrap_or_else(|e| e.into_inner()).extras
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Box<[u8]>> {
        (0..n).map(|i| format!("{i}").into_bytes().into()).collect()
    }

    fn page(list: &List, cursor: Option<&str>) -> Result<serde_json::Value, Fail> {
        let mut out = Vec::new();
        list.page(cursor.map(|c| Raw::new(c).unwrap()), &mut out)?;
        Ok(serde_json::from_slice(&out).unwrap())
    }

    #[test]
    fn one_page_without_page_size() {
        let list = List::new("tools", items(3), 0);
        assert_eq!(
            page(&list, None).unwrap(),
            serde_json::json!({"tools": [0, 1, 2]})
        );
        let empty = List::new("prompts", Vec::new(), 0);
        assert_eq!(
            page(&empty, None).unwrap(),
            serde_json::json!({"prompts": []})
        );
    }

    #[test]
    fn walk_sees_every_item_once() {
        let list = List::new("tools", items(10), 4);
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let v = page(&list, cursor.as_deref()).unwrap();
            seen.extend(
                v["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap()),
            );
            match v.get("nextCursor") {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<u64>>());
    }

    #[test]
    fn exact_multiple_has_no_trailing_cursor() {
        let list = List::new("tools", items(8), 4);
        let second = page(&list, Some("\"4\"")).unwrap();
        assert_eq!(second["tools"].as_array().unwrap().len(), 4);
        assert!(second.get("nextCursor").is_none());
    }

    #[test]
    fn invalid_cursors() {
        let list = List::new("tools", items(10), 4);
        for bad in [
            "\"x\"",
            "\"3\"",
            "\"12\"",
            "\"-4\"",
            "4",
            "\"\"",
            "\"99999999999999999999\"",
        ] {
            let err = page(&list, Some(bad)).unwrap_err();
            assert_eq!(err.code, ringmux_core::error::code::INVALID_PARAMS, "{bad}");
        }
        assert!(page(&list, Some("\"0\"")).is_ok());
    }

    #[test]
    fn push_keeps_the_full_rendering_in_step() {
        let mut list = List::new("tools", items(2), 0);
        list.push(b"\"x\"".to_vec().into());
        assert_eq!(
            page(&list, None).unwrap(),
            serde_json::json!({"tools": [0, 1, "x"]})
        );
    }

    #[test]
    fn extra_tools_are_listed() {
        let catalog = Catalog::new(&MockConfig::default());
        assert_eq!(catalog.add_extra_tool(), "extra_1");
        assert_eq!(catalog.add_extra_tool(), "extra_2");
        assert_eq!(catalog.extras(), 2);
        let mut out = Vec::new();
        catalog
            .tools
            .read()
            .unwrap()
            .list
            .page(None, &mut out)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let names: Vec<_> = v["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names.len(), 16);
        assert_eq!(&names[14..], ["extra_1", "extra_2"]);
    }
}
