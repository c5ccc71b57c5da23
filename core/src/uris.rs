//! Resource URIs inside answers. A prefixed backend's resources are known to clients as
//! `ringmux://<backend>/<uri>` ([`crate::names`]); every URI such a backend hands a client in a
//! result must be that form too, or the client cannot read it back through ringmux: the
//! `contents[].uri` of `resources/read`, and the resource links (`type: resource_link`) and
//! embedded resources (`type: resource`) in tool results and prompt messages.
//!
//! Only those members are rewritten, each URI literal spliced in place (escapes kept), so the
//! rest of the answer stays byte for byte what the backend sent. An answer without the text
//! `"uri"` is not parsed at all.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::names;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Carriers<'a> {
    /// `tools/call`: an array of content blocks.
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    /// `resources/read`: resource contents, each with its `uri`.
    #[serde(borrow, default)]
    contents: Option<Vec<&'a RawValue>>,
    /// `prompts/get`: messages, each with one content block (or an array of them).
    #[serde(borrow, default)]
    messages: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WithUri<'a> {
    #[serde(borrow, default)]
    uri: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WithContent<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// The position of `part` (a slice of `whole`) in `whole`.
fn span_in(whole: &[u8], part: &RawValue) -> Range<usize> {
    let start = part.get().as_ptr() as usize - whole.as_ptr() as usize;
    start..start + part.get().len()
}

/// Collects the spans of the URI string literals in one content block (or an array of them).
fn blocks(whole: &[u8], content: &RawValue, spans: &mut Vec<Range<usize>>) {
    let list: Vec<&RawValue> = if content.get().starts_with('[') {
        serde_json::from_str(content.get()).unwrap_or_default()
    } else {
        vec![content]
    };
    for block in list {
        let Ok(b) = serde_json::from_str::<Block<'_>>(block.get()) else {
            continue;
        };
        let uri = match b.kind.as_deref() {
            Some("resource_link") => b.uri,
            Some("resource") => b
                .resource
                .and_then(|r| serde_json::from_str::<WithUri<'_>>(r.get()).ok())
                .and_then(|r| r.uri),
            _ => None,
        };
        if let Some(uri) = uri.filter(|u| u.get().starts_with('"')) {
            spans.push(span_in(whole, uri));
        }
    }
}

/// `answer` (a whole JSON-RPC response from prefixed backend `backend`) with every resource
/// URI its result hands the client mapped to the client's form; `None` when there is none
/// (the answer is relayed as it is).
pub fn map_answer(answer: &[u8], backend: &str) -> Option<Vec<u8>> {
    // The searcher is built once per thread: building it per answer cost more than searching.
    thread_local! {
        static URI_KEY: memchr::memmem::Finder<'static> = memchr::memmem::Finder::new(b"\"uri\"");
    }
    URI_KEY.with(|f| f.find(answer))?;
    let result = serde_json::from_slice::<Envelope<'_>>(answer)
        .ok()?
        .result?;
    let carriers = serde_json::from_str::<Carriers<'_>>(result.get()).ok()?;
    let mut spans = Vec::new();
    if let Some(content) = carriers.content {
        blocks(answer, content, &mut spans);
    }
    for item in carriers.contents.iter().flatten() {
        if let Some(uri) = serde_json::from_str::<WithUri<'_>>(item.get())
            .ok()
            .and_then(|i| i.uri)
            .filter(|u| u.get().starts_with('"'))
        {
            spans.push(span_in(answer, uri));
        }
    }
    for message in carriers.messages.iter().flatten() {
        if let Some(content) = serde_json::from_str::<WithContent<'_>>(message.get())
            .ok()
            .and_then(|m| m.content)
        {
            blocks(answer, content, &mut spans);
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_by_key(|s| s.start);
    let mut out = Vec::with_capacity(answer.len() + spans.len() * (backend.len() + 12));
    let mut at = 0;
    for span in spans {
        out.extend_from_slice(&answer[at..span.start]);
        names::write_prefixed_literal(&mut out, true, backend, "", &answer[span.clone()]);
        at = span.end;
    }
    out.extend_from_slice(&answer[at..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn mapped(v: Value) -> Option<Value> {
        map_answer(v.to_string().as_bytes(), "docs").map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn read_contents_are_mapped() {
        let got = mapped(json!({"jsonrpc":"2.0","id":1,"result":{"contents":[
            {"uri":"file:///a.txt","text":"a","mimeType":"text/plain"},
            {"uri":"file:///b\u{e9}.txt","blob":"YQ=="}
        ]}}))
        .unwrap();
        assert_eq!(
            got["result"]["contents"][0]["uri"],
            "ringmux://docs/file:///a.txt"
        );
        assert_eq!(
            got["result"]["contents"][1]["uri"],
            "ringmux://docs/file:///b\u{e9}.txt"
        );
        assert_eq!(got["result"]["contents"][0]["text"], "a");
    }

    #[test]
    fn links_and_embedded_resources_in_tool_results_and_prompts() {
        let got = mapped(json!({"jsonrpc":"2.0","id":"x","result":{"content":[
            {"type":"text","text":"see \"uri\" below","uri":"not://a-link"},
            {"type":"resource_link","uri":"test://static/1","name":"one"},
            {"type":"resource","resource":{"uri":"test://static/2","text":"two"}}
        ],"structuredContent":{"uri":"left://alone"}}}))
        .unwrap();
        let content = &got["result"]["content"];
        assert_eq!(
            content[0]["uri"], "not://a-link",
            "only links and resources"
        );
        assert_eq!(content[1]["uri"], "ringmux://docs/test://static/1");
        assert_eq!(
            content[2]["resource"]["uri"],
            "ringmux://docs/test://static/2"
        );
        assert_eq!(got["result"]["structuredContent"]["uri"], "left://alone");

        let got = mapped(json!({"jsonrpc":"2.0","id":2,"result":{"messages":[
            {"role":"user","content":{"type":"resource","resource":{"uri":"a://1","text":"t"}}},
            {"role":"user","content":[{"type":"resource_link","uri":"a://2","name":"n"}]},
            {"role":"assistant","content":{"type":"text","text":"hi"}}
        ]}}))
        .unwrap();
        let m = &got["result"]["messages"];
        assert_eq!(m[0]["content"]["resource"]["uri"], "ringmux://docs/a://1");
        assert_eq!(m[1]["content"][0]["uri"], "ringmux://docs/a://2");
    }

    #[test]
    fn untouched_answers_are_not_copied() {
        assert!(mapped(
            json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"x"}]}})
        )
        .is_none());
        assert!(
            mapped(json!({"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"\"uri\""}}))
                .is_none()
        );
        assert!(map_answer(b"{\"uri\" not json", "docs").is_none());
        // The bytes around a mapped URI stay as the backend wrote them.
        let raw = br#"{"jsonrpc":"2.0","id":1,"result":{"contents":[ {"uri" : "a:\/\/x" , "text":"\u0041"} ]}}"#;
        let out = map_answer(raw, "d").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"jsonrpc":"2.0","id":1,"result":{"contents":[ {"uri" : "ringmux://d/a:\/\/x" , "text":"\u0041"} ]}}"#
        );
    }
}
