//! A backend's list (tools, prompts, resources or resource templates) as fetched: every item
//! kept as its original bytes plus the span of its key (`name`, `uri` or `uriTemplate`). Parsing
//! happens once per fetch; serving a merged page from here is memcpy (see [`crate::merge`]).

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::jsonrpc::raw_str;

/// The four federated lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];

    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }

    pub fn from_method(m: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.method() == m)
    }

    /// The member of the result holding the items.
    pub fn result_key(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// Whether items are keyed by a URI (mapped as a URI) rather than a name.
    pub fn uri_keyed(self) -> bool {
        matches!(self, ListKind::Resources | ListKind::ResourceTemplates)
    }

    /// The notification that says this list changed.
    pub fn changed_notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::ResourceTemplates => {
                "notifications/resources/list_changed"
            }
        }
    }
}

/// One item: spans into [`Catalog::bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub span: Range<u32>,
    /// The key's JSON string literal, quotes included.
    pub key: Range<u32>,
}

/// Why a page could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("list result is not valid JSON: {0}")]
    Json(String),
    #[error("list result has no \"{0}\" array")]
    Missing(&'static str),
    #[error("catalog exceeds {0} bytes")]
    TooLarge(usize),
}

/// A backend's whole list, all pages.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub kind: ListKind,
    bytes: Vec<u8>,
    items: Vec<Item>,
    /// Items skipped because their key was missing or not a string.
    pub malformed: usize,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow, default)]
    tools: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    prompts: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    resources: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "resourceTemplates")]
    templates: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "nextCursor")]
    next: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "uriTemplate")]
    uri_template: Option<&'a RawValue>,
}

/// Upper bound on one catalog's bytes (u32 spans).
pub const MAX_CATALOG_BYTES: usize = u32::MAX as usize;

impl Catalog {
    pub fn new(kind: ListKind) -> Self {
        Catalog {
            kind,
            bytes: Vec::new(),
            items: Vec::new(),
            malformed: 0,
        }
    }

    /// Takes in one page (a list request's `result` object). Returns the page's `nextCursor`.
    pub fn add_page(&mut self, result: &[u8]) -> Result<Option<String>, CatalogError> {
        let page: Page<'_> =
            serde_json::from_slice(result).map_err(|e| CatalogError::Json(e.to_string()))?;
        let list = match self.kind {
            ListKind::Tools => page.tools,
            ListKind::Prompts => page.prompts,
            ListKind::Resources => page.resources,
            ListKind::ResourceTemplates => page.templates,
        }
        .ok_or(CatalogError::Missing(self.kind.result_key()))?;
        let total: usize = list.iter().map(|i| i.get().len()).sum();
        if self.bytes.len() + total > MAX_CATALOG_BYTES {
            return Err(CatalogError::TooLarge(MAX_CATALOG_BYTES));
        }
        self.bytes.reserve(total);
        self.items.reserve(list.len());
        for raw in list {
            let text = raw.get();
            let Ok(keys) = serde_json::from_str::<Keys<'_>>(text) else {
                self.malformed += 1;
                continue;
            };
            let key = match self.kind {
                ListKind::Tools | ListKind::Prompts => keys.name,
                ListKind::Resources => keys.uri,
                ListKind::ResourceTemplates => keys.uri_template,
            };
            let Some(key) = key.filter(|k| k.get().starts_with('"')) else {
                self.malformed += 1;
                continue;
            };
            let base = self.bytes.len();
            let key_at = key.get().as_ptr() as usize - text.as_ptr() as usize;
            self.bytes.extend_from_slice(text.as_bytes());
            self.items.push(Item {
                span: base as u32..(base + text.len()) as u32,
                key: (base + key_at) as u32..(base + key_at + key.get().len()) as u32,
            });
        }
        Ok(page.next.map(Cow::into_owned).filter(|c| !c.is_empty()))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Item `i`'s bytes.
    pub fn item(&self, i: usize) -> &[u8] {
        let s = &self.items[i].span;
        &self.bytes[s.start as usize..s.end as usize]
    }

    /// Item `i`'s key literal (with quotes).
    pub fn key_literal(&self, i: usize) -> &[u8] {
        let k = &self.items[i].key;
        &self.bytes[k.start as usize..k.end as usize]
    }

    /// Item `i`'s key, decoded.
    pub fn key(&self, i: usize) -> Cow<'_, str> {
        let lit = self.key_literal(i);
        // The literal was validated as a JSON string when the page was parsed.
        let raw: &RawValue =
            serde_json::from_slice(lit).expect("catalog key literals are valid JSON strings");
        raw_str(raw.into())
            .map(|c| Cow::Owned(c.into_owned()))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_accumulate_with_key_spans() {
        let mut c = Catalog::new(ListKind::Tools);
        let next = c
            .add_page(br#"{"tools":[{"name":"a","inputSchema":{"type":"object","properties":{"name":{"type":"string"}}}},{"description":"x","name":"b\u0041"}],"nextCursor":"p2"}"#)
            .unwrap();
        assert_eq!(next.as_deref(), Some("p2"));
        let next = c
            .add_page(br#"{"tools":[{"name":"c"},{"nope":1},{"name":5}]}"#)
            .unwrap();
        assert_eq!(next, None);
        assert_eq!(c.len(), 3);
        assert_eq!(c.malformed, 2);
        assert_eq!(c.key_literal(0), br#""a""#);
        assert_eq!(c.key(1), "bA");
        assert_eq!(c.item(2), br#"{"name":"c"}"#);
    }

    #[test]
    fn resources_keyed_by_uri() {
        let mut c = Catalog::new(ListKind::Resources);
        c.add_page(br#"{"resources":[{"name":"n","uri":"test://x"}]}"#)
            .unwrap();
        assert_eq!(c.key(0), "test://x");
        let mut t = Catalog::new(ListKind::ResourceTemplates);
        t.add_page(br#"{"resourceTemplates":[{"name":"n","uriTemplate":"test://{id}"}]}"#)
            .unwrap();
        assert_eq!(t.key(0), "test://{id}");
    }

    #[test]
    fn bad_pages() {
        let mut c = Catalog::new(ListKind::Prompts);
        assert!(matches!(c.add_page(b"{"), Err(CatalogError::Json(_))));
        assert_eq!(
            c.add_page(br#"{"tools":[]}"#),
            Err(CatalogError::Missing("prompts"))
        );
    }
}
