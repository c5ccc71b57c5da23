//! Criterion benchmarks of ringmux's hot paths live in `benches/`; each file's header holds the
//! command that runs it, the machine, the date and the results. Shared fixtures are here.

use ringmux_core::catalog::{Catalog, ListKind};

/// A ~300-byte `tools/call`, the envelope benchmark's input.
pub const TOOLS_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":4711,"method":"tools/call","params":{"name":"weather__get_forecast","arguments":{"city":"Reykjavik","days":5,"units":"metric","include":["wind","precipitation","pressure"],"name":"not the tool name","lang":"en-GB","source":"bench"},"_meta":{"progressToken":"c0ffee-42"}}}"#;

/// One backend's `tools/list` result with `n` tools of about `bytes` bytes each.
pub fn tools_page(backend: usize, n: usize, bytes: usize) -> Vec<u8> {
    let mut out = String::from(r#"{"tools":["#);
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let head = format!(r#"{{"name":"tool_{backend}_{i:04}","description":""#);
        let tail = r#"","inputSchema":{"type":"object","properties":{"name":{"type":"string","description":"a property called name"},"value":{"type":"integer"}},"required":["name"]}}"#;
        let pad = bytes.saturating_sub(head.len() + tail.len());
        out.push_str(&head);
        out.push_str(&"d".repeat(pad));
        out.push_str(tail);
    }
    out.push_str("]}");
    out.into_bytes()
}

/// A parsed catalog of `n` tools of about `bytes` bytes.
pub fn tools_catalog(backend: usize, n: usize, bytes: usize) -> Catalog {
    let mut c = Catalog::new(ListKind::Tools);
    c.add_page(&tools_page(backend, n, bytes))
        .expect("a valid fixture page");
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_have_the_advertised_size() {
        let c = tools_catalog(3, 50, 400);
        assert_eq!(c.len(), 50);
        assert!(
            (390..=410).contains(&c.item(7).len()),
            "{}",
            c.item(7).len()
        );
        assert!(
            (280..=320).contains(&TOOLS_CALL.len()),
            "{}",
            TOOLS_CALL.len()
        );
    }
}
