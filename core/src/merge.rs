//! Merging cached catalogs into the one list a client sees.
//!
//! [`Index::build`] runs once per change of the catalog set (a fetch, a list_changed, a TTL
//! expiry): it names every item (prefixing per backend), finds collisions and names that break
//! the spec's rules, and builds the routing table from merged key to owner. [`Index::write_page`]
//! runs per request: it copies item bytes into the output, writing a prefixed key where needed,
//! filtered by the session's view, one page at a time.
//!
//! Order and cursors: the merged list is the backends' lists in config order. A cursor names a
//! backend (by its stable config index) and an item offset in that backend's list, so a walk
//! sees every item exactly once and resumes correctly when a backend in front of the position
//! goes down or comes back.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use base64::Engine as _;

use crate::catalog::{Catalog, ListKind};
use crate::error::RpcError;
use crate::jsonrpc::{write_str, Raw};
use crate::names::{self, split_mapped_uri, template_literal_prefix};

/// One backend's catalog as input to a merge.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The backend's index in the config (stable across requests).
    pub backend: u16,
    pub name: &'a str,
    pub prefixed: bool,
    pub catalog: &'a Catalog,
}

/// A merged name two backends both produce; the first (in config order) keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub merged: String,
    pub kept: u16,
    pub hidden: u16,
}

/// Where a merged key leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Position of the owner among the index's sources.
    pub source: usize,
    pub backend: u16,
    pub item: u32,
}

/// The merged view of one list kind over a set of sources.
#[derive(Debug)]
pub struct Index {
    kind: ListKind,
    sep: String,
    sources: Vec<SourceMeta>,
    routes: HashMap<Box<str>, Route>,
    /// Unprefixed templates' literal prefixes (resources only), longest first.
    template_prefixes: Vec<(String, u16)>,
    pub collisions: Vec<Collision>,
    /// (backend, merged name) of items hidden because the merged name breaks the tool-name rule.
    pub invalid: Vec<(u16, String)>,
    fingerprint: u32,
}

#[derive(Debug)]
struct SourceMeta {
    backend: u16,
    name: String,
    prefixed: bool,
    /// Per item: hidden by a collision or an invalid merged name.
    hidden: Vec<bool>,
}

/// A decoded merged cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub backend: u16,
    pub offset: u32,
}

const CURSOR_VERSION: u8 = 1;

impl Index {
    /// Builds the index. `templates` (for `Resources` only) are the same backends' template
    /// catalogs, used to route template-made URIs of unprefixed backends. `config_fingerprint`
    /// changes when the backend set changes; cursors from another config are refused.
    pub fn build(
        kind: ListKind,
        sources: &[Source<'_>],
        sep: &str,
        templates: &[Source<'_>],
        config_fingerprint: u32,
    ) -> Index {
        Index::build_hiding(
            kind,
            sources,
            sep,
            templates,
            config_fingerprint,
            &|_, _| false,
        )
    }

    /// [`Index::build`], with the items `hide(source, item)` names left out as if absent: not
    /// listed, not routed (tool safety's quarantined and flagged tools).
    pub fn build_hiding(
        kind: ListKind,
        sources: &[Source<'_>],
        sep: &str,
        templates: &[Source<'_>],
        config_fingerprint: u32,
        hide_item: &dyn Fn(usize, usize) -> bool,
    ) -> Index {
        let mut routes: HashMap<Box<str>, Route> = HashMap::new();
        let mut collisions = Vec::new();
        let mut invalid = Vec::new();
        let mut metas = Vec::with_capacity(sources.len());
        for (si, src) in sources.iter().enumerate() {
            let mut hidden = vec![false; src.catalog.len()];
            for (i, hide) in hidden.iter_mut().enumerate() {
                if hide_item(si, i) {
                    *hide = true;
                    continue;
                }
                let key = src.catalog.key(i);
                let merged: Cow<'_, str> = if src.prefixed {
                    Cow::Owned(names::prefixed(kind.uri_keyed(), src.name, sep, &key))
                } else {
                    key
                };
                if kind == ListKind::Tools && src.prefixed && !names::is_valid_tool_name(&merged) {
                    invalid.push((src.backend, merged.into_owned()));
                    *hide = true;
                    continue;
                }
                match routes.get(merged.as_ref()) {
                    Some(first) => {
                        collisions.push(Collision {
                            merged: merged.into_owned(),
                            kept: first.backend,
                            hidden: src.backend,
                        });
                        *hide = true;
                    }
                    None => {
                        routes.insert(
                            merged.into_owned().into_boxed_str(),
                            Route {
                                source: si,
                                backend: src.backend,
                                item: i as u32,
                            },
                        );
                    }
                }
            }
            metas.push(SourceMeta {
                backend: src.backend,
                name: src.name.to_owned(),
                prefixed: src.prefixed,
                hidden,
            });
        }
        let mut template_prefixes: Vec<(String, u16)> = templates
            .iter()
            .filter(|t| !t.prefixed)
            .flat_map(|t| {
                (0..t.catalog.len()).map(move |i| {
                    (
                        template_literal_prefix(&t.catalog.key(i)).to_owned(),
                        t.backend,
                    )
                })
            })
            .filter(|(p, _)| !p.is_empty())
            .collect();
        template_prefixes.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Index {
            kind,
            sep: sep.to_owned(),
            sources: metas,
            routes,
            template_prefixes,
            collisions,
            invalid,
            fingerprint: config_fingerprint ^ kind as u32,
        }
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// Visible items in all sources.
    pub fn len(&self) -> usize {
        self.sources
            .iter()
            .map(|s| s.hidden.iter().filter(|h| !**h).count())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The owner of a merged key (tool or prompt name, resource URI).
    pub fn route(&self, merged: &str) -> Option<Route> {
        self.routes.get(merged).copied()
    }

    /// The owning backend of a resource URI not in the list: a mapped URI names its backend;
    /// otherwise the unprefixed template with the longest matching literal prefix.
    pub fn route_uri(&self, uri: &str) -> Option<(u16, usize)> {
        if let Some((backend, _)) = split_mapped_uri(uri) {
            return self
                .sources
                .iter()
                .find(|s| s.prefixed && s.name == backend)
                .map(|s| (s.backend, names::URI_SCHEME.len() + backend.len() + 1));
        }
        self.template_prefixes
            .iter()
            .find(|(p, _)| uri.starts_with(p.as_str()))
            .map(|(_, b)| (*b, 0))
    }

    /// Item `item` of source `source` (whose catalog is `catalog`) as the client knows it: its
    /// merged key, or `None` when the merge hides it (a collision, an invalid name).
    pub fn merged_key<'c>(
        &self,
        source: usize,
        catalog: &'c Catalog,
        item: usize,
    ) -> Option<Cow<'c, str>> {
        let meta = &self.sources[source];
        if meta.hidden[item] {
            return None;
        }
        let key = catalog.key(item);
        Some(if meta.prefixed {
            Cow::Owned(names::prefixed(
                self.kind.uri_keyed(),
                &meta.name,
                &self.sep,
                &key,
            ))
        } else {
            key
        })
    }

    /// Names of the sources, in order (for logs and errors).
    pub fn source_name(&self, source: usize) -> &str {
        &self.sources[source].name
    }

    /// Writes a whole JSON-RPC response carrying one merged page: at most `page_size` visible
    /// items (0 = no limit) starting at `cursor`, filtered by `allow(source, item)`.
    #[allow(clippy::too_many_arguments)]
    pub fn write_page(
        &self,
        out: &mut Vec<u8>,
        id: Raw<'_>,
        catalogs: &[impl Borrow<Catalog>],
        cursor: Option<Cursor>,
        page_size: usize,
        allow: impl Fn(usize, usize) -> bool,
    ) {
        self.write_page_as(out, id, catalogs, cursor, page_size, allow, |_, _| None)
    }

    /// [`Index::write_page`], with the items `instead(source, item)` gives bytes for written
    /// as those bytes (a whole JSON item: a virtual server's renamed or edited tool).
    #[allow(clippy::too_many_arguments)]
    pub fn write_page_as<'b>(
        &self,
        out: &mut Vec<u8>,
        id: Raw<'_>,
        catalogs: &[impl Borrow<Catalog>],
        cursor: Option<Cursor>,
        page_size: usize,
        allow: impl Fn(usize, usize) -> bool,
        instead: impl Fn(usize, usize) -> Option<&'b [u8]>,
    ) {
        debug_assert_eq!(catalogs.len(), self.sources.len());
        out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        out.extend_from_slice(id.get().as_bytes());
        out.extend_from_slice(b",\"result\":{\"");
        out.extend_from_slice(self.kind.result_key().as_bytes());
        out.extend_from_slice(b"\":[");
        let limit = if page_size == 0 {
            usize::MAX
        } else {
            page_size
        };
        let mut written = 0usize;
        let mut first = true;
        let mut next: Option<Cursor> = None;
        let uri_like = self.kind.uri_keyed();
        'outer: for (si, (meta, cat)) in self.sources.iter().zip(catalogs).enumerate() {
            let cat: &Catalog = cat.borrow();
            let start = match cursor {
                Some(c) if meta.backend < c.backend => continue,
                Some(c) if meta.backend == c.backend => c.offset as usize,
                _ => 0,
            };
            for i in start..cat.len() {
                if meta.hidden[i] || !allow(si, i) {
                    continue;
                }
                if written == limit {
                    next = Some(Cursor {
                        backend: meta.backend,
                        offset: i as u32,
                    });
                    break 'outer;
                }
                if !first {
                    out.push(b',');
                }
                first = false;
                written += 1;
                if let Some(bytes) = instead(si, i) {
                    out.extend_from_slice(bytes);
                    continue;
                }
                let item = &cat.items()[i];
                let bytes = cat.bytes();
                if meta.prefixed {
                    out.extend_from_slice(
                        &bytes[item.span.start as usize..item.key.start as usize],
                    );
                    names::write_prefixed_literal(
                        out,
                        uri_like,
                        &meta.name,
                        &self.sep,
                        &bytes[item.key.start as usize..item.key.end as usize],
                    );
                    out.extend_from_slice(&bytes[item.key.end as usize..item.span.end as usize]);
                } else {
                    out.extend_from_slice(&bytes[item.span.start as usize..item.span.end as usize]);
                }
            }
        }
        out.push(b']');
        if let Some(c) = next {
            out.extend_from_slice(b",\"nextCursor\":");
            write_str(out, &self.encode_cursor(c));
        }
        out.extend_from_slice(b"}}");
    }

    fn encode_cursor(&self, c: Cursor) -> String {
        let mut raw = [0u8; 11];
        raw[0] = CURSOR_VERSION;
        raw[1..3].copy_from_slice(&c.backend.to_be_bytes());
        raw[3..7].copy_from_slice(&c.offset.to_be_bytes());
        raw[7..11].copy_from_slice(&self.fingerprint.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a cursor this index (or one built from the same config) handed out.
    pub fn decode_cursor(&self, s: &str) -> Result<Cursor, RpcError> {
        let bad = || RpcError::InvalidParams("invalid or expired cursor".into());
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        if raw.len() != 11 || raw[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let fp = u32::from_be_bytes(raw[7..11].try_into().expect("4 bytes"));
        if fp != self.fingerprint {
            return Err(bad());
        }
        Ok(Cursor {
            backend: u16::from_be_bytes([raw[1], raw[2]]),
            offset: u32::from_be_bytes(raw[3..7].try_into().expect("4 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> Catalog {
        let items: Vec<String> = names
            .iter()
            .map(|n| {
                format!(r#"{{"name":"{n}","inputSchema":{{"type":"object","properties":{{"name":{{"type":"string"}}}}}}}}"#)
            })
            .collect();
        let mut c = Catalog::new(ListKind::Tools);
        c.add_page(format!(r#"{{"tools":[{}]}}"#, items.join(",")).as_bytes())
            .unwrap();
        c
    }

    fn src<'a>(backend: u16, name: &'a str, prefixed: bool, catalog: &'a Catalog) -> Source<'a> {
        Source {
            backend,
            name,
            prefixed,
            catalog,
        }
    }

    fn id() -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string("1".into()).unwrap()
    }

    fn names_of(page: &[u8]) -> (Vec<String>, Option<String>) {
        let v: serde_json::Value = serde_json::from_slice(page).unwrap();
        let names = v["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        (names, v["result"]["nextCursor"].as_str().map(str::to_owned))
    }

    #[test]
    fn prefixes_only_the_top_level_name() {
        let a = tools(&["x", "y"]);
        let b = tools(&["x"]);
        let srcs = [src(0, "a", true, &a), src(1, "b", true, &b)];
        let idx = Index::build(ListKind::Tools, &srcs, "__", &[], 7);
        let mut out = Vec::new();
        idx.write_page(&mut out, (&*id()).into(), &[&a, &b], None, 0, |_, _| true);
        let (names, next) = names_of(&out);
        assert_eq!(names, ["a__x", "a__y", "b__x"]);
        assert_eq!(next, None);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["result"]["tools"][0]["inputSchema"]["properties"]["name"]["type"],
            "string"
        );
        assert_eq!(idx.route("b__x").unwrap().backend, 1);
        assert!(idx.route("x").is_none());
    }

    #[test]
    fn collisions_are_reported_and_first_wins() {
        let a = tools(&["x", "y"]);
        let b = tools(&["y", "z"]);
        let srcs = [src(0, "a", false, &a), src(3, "b", false, &b)];
        let idx = Index::build(ListKind::Tools, &srcs, "__", &[], 0);
        assert_eq!(
            idx.collisions,
            vec![Collision {
                merged: "y".into(),
                kept: 0,
                hidden: 3
            }]
        );
        assert_eq!(idx.len(), 3);
        let mut out = Vec::new();
        idx.write_page(&mut out, (&*id()).into(), &[&a, &b], None, 0, |_, _| true);
        assert_eq!(names_of(&out).0, ["x", "y", "z"]);
        assert_eq!(idx.route("y").unwrap().backend, 0);
    }

    #[test]
    fn overlong_prefixed_names_are_hidden_and_reported() {
        let long = "t".repeat(127);
        let a = tools(&[&long, "ok"]);
        let srcs = [src(0, "a", true, &a)];
        let idx = Index::build(ListKind::Tools, &srcs, "__", &[], 0);
        assert_eq!(idx.invalid.len(), 1);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn pagination_walk_sees_everything_once() {
        let cats: Vec<Catalog> = (0..5)
            .map(|b| {
                tools(
                    &(0..(b * 3 + 1))
                        .map(|i| format!("t{i}"))
                        .collect::<Vec<_>>()
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let names: Vec<String> = (0..5).map(|b| format!("b{b}")).collect();
        let srcs: Vec<Source<'_>> = cats
            .iter()
            .enumerate()
            .map(|(i, c)| src(i as u16 * 2, &names[i], true, c))
            .collect();
        let refs: Vec<&Catalog> = cats.iter().collect();
        let idx = Index::build(ListKind::Tools, &srcs, "__", &[], 9);
        for page_size in [1, 2, 3, 7, 100] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let mut out = Vec::new();
                idx.write_page(
                    &mut out,
                    (&*id()).into(),
                    &refs,
                    cursor,
                    page_size,
                    |s, i| !(s == 2 && i == 1),
                );
                let (page, next) = names_of(&out);
                assert!(page.len() <= page_size);
                seen.extend(page);
                match next {
                    Some(c) => cursor = Some(idx.decode_cursor(&c).unwrap()),
                    None => break,
                }
            }
            let mut expected = Vec::new();
            for (b, c) in cats.iter().enumerate() {
                for i in 0..c.len() {
                    if !(b == 2 && i == 1) {
                        expected.push(format!("b{b}__t{i}"));
                    }
                }
            }
            assert_eq!(seen, expected, "page size {page_size}");
        }
    }

    #[test]
    fn cursor_resumes_after_a_backend_vanishes() {
        let a = tools(&["1", "2"]);
        let b = tools(&["3", "4"]);
        let full = [src(0, "a", true, &a), src(1, "b", true, &b)];
        let idx = Index::build(ListKind::Tools, &full, "__", &[], 1);
        let mut out = Vec::new();
        idx.write_page(&mut out, (&*id()).into(), &[&a, &b], None, 1, |_, _| true);
        let cursor = idx.decode_cursor(&names_of(&out).1.unwrap()).unwrap();
        let without_a = Index::build(ListKind::Tools, &full[1..], "__", &[], 1);
        let mut out = Vec::new();
        without_a.write_page(&mut out, (&*id()).into(), &[&b], Some(cursor), 0, |_, _| {
            true
        });
        assert_eq!(names_of(&out).0, ["b__3", "b__4"]);
    }

    #[test]
    fn bad_cursors_are_invalid_params() {
        let a = tools(&["1"]);
        let idx = Index::build(ListKind::Tools, &[src(0, "a", true, &a)], "__", &[], 1);
        for bad in ["", "!!!", "AAAA", "AQAAAAAAAAAAAAA"] {
            assert_eq!(idx.decode_cursor(bad).unwrap_err().code(), -32602, "{bad}");
        }
        let other = Index::build(ListKind::Tools, &[], "__", &[], 2);
        let mut out = Vec::new();
        idx.write_page(&mut out, (&*id()).into(), &[&a], None, 0, |_, _| true);
        let c = idx.encode_cursor(Cursor {
            backend: 0,
            offset: 0,
        });
        assert!(other.decode_cursor(&c).is_err());
    }

    #[test]
    fn resource_uris_map_and_route() {
        let mut r = Catalog::new(ListKind::Resources);
        r.add_page(br#"{"resources":[{"uri":"test://static/1","name":"one"}]}"#)
            .unwrap();
        let mut t = Catalog::new(ListKind::ResourceTemplates);
        t.add_page(br#"{"resourceTemplates":[{"uriTemplate":"file:///{path}","name":"f"}]}"#)
            .unwrap();
        let srcs = [src(0, "docs", true, &r)];
        let tsrcs = [src(1, "fs", false, &t)];
        let idx = Index::build(ListKind::Resources, &srcs, "__", &tsrcs, 0);
        let mut out = Vec::new();
        idx.write_page(&mut out, (&*id()).into(), &[&r], None, 0, |_, _| true);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["result"]["resources"][0]["uri"],
            "ringmux://docs/test://static/1"
        );
        assert_eq!(
            idx.route("ringmux://docs/test://static/1").unwrap().backend,
            0
        );
        assert_eq!(
            idx.route_uri("ringmux://docs/test://dynamic/9"),
            Some((0, 15))
        );
        assert_eq!(idx.route_uri("file:///etc/x"), Some((1, 0)));
        assert_eq!(idx.route_uri("other://x"), None);
    }
}
