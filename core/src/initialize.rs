//! What a client session keeps of its `initialize` params: the protocol version, the
//! capabilities and `clientInfo`, which are what its backend sessions are (re)initialized
//! with. The rest (`_meta`, anything a client adds) is dropped, and the kept part is bounded:
//! a session lives for hours, and a 4 MiB `initialize` body kept whole per session was a way
//! to exhaust memory with a few hundred sessions.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Why params cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("initialize params must be an object: {0}")]
    Malformed(String),
    #[error("initialize params keep {0} bytes of capabilities and clientInfo, more than the {1} allowed (limits.max_initialize_params_bytes)")]
    TooLarge(usize, usize),
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Option<&'a RawValue>,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "clientInfo", borrow)]
    client_info: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Info<'a> {
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    version: Option<&'a RawValue>,
}

/// The kept form of `params` (a JSON object): `protocolVersion`, `capabilities` and
/// `clientInfo` as the client wrote them. When that is over `max` bytes, `clientInfo` is cut
/// to its `name` and `version` (icons as data URIs make it large); still over is an error.
pub fn essentials(params: &str, max: usize) -> Result<Box<RawValue>, ParamsError> {
    let p: Params<'_> =
        serde_json::from_str(params).map_err(|e| ParamsError::Malformed(e.to_string()))?;
    let mut out = String::with_capacity(params.len().min(max) + 32);
    let write = |out: &mut String, info: Option<&str>| {
        out.clear();
        out.push('{');
        let mut first = true;
        for (key, value) in [
            ("protocolVersion", p.protocol_version.map(RawValue::get)),
            ("capabilities", p.capabilities.map(RawValue::get)),
            ("clientInfo", info),
        ] {
            if let Some(v) = value {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push('"');
                out.push_str(key);
                out.push_str("\":");
                out.push_str(v);
            }
        }
        out.push('}');
    };
    write(&mut out, p.client_info.map(RawValue::get));
    if out.len() > max {
        let short = p.client_info.and_then(|i| {
            let info: Info<'_> = serde_json::from_str(i.get()).ok()?;
            let mut s = String::from("{");
            if let Some(n) = info.name {
                s.push_str("\"name\":");
                s.push_str(n.get());
            }
            if let Some(v) = info.version {
                if s.len() > 1 {
                    s.push(',');
                }
                s.push_str("\"version\":");
                s.push_str(v.get());
            }
            s.push('}');
            Some(s)
        });
        write(&mut out, short.as_deref());
        if out.len() > max {
            return Err(ParamsError::TooLarge(out.len(), max));
        }
    }
    RawValue::from_string(out).map_err(|e| ParamsError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_version_capabilities_and_client_info_only() {
        let p = r#"{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"c","version":"1"},"_meta":{"pad":"xxxxxxxxxxxxxxxx"},"extra":[1,2,3]}"#;
        assert_eq!(
            essentials(p, 1024).unwrap().get(),
            r#"{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true}},"clientInfo":{"name":"c","version":"1"}}"#
        );
        assert_eq!(essentials("{}", 1024).unwrap().get(), "{}");
    }

    #[test]
    fn large_client_info_is_cut_and_larger_capabilities_refused() {
        let icon = "A".repeat(4000);
        let p = format!(
            r#"{{"protocolVersion":"2025-11-25","capabilities":{{}},"clientInfo":{{"name":"c","version":"1","icons":[{{"src":"data:image/png;base64,{icon}"}}]}}}}"#
        );
        assert_eq!(
            essentials(&p, 1024).unwrap().get(),
            r#"{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}"#
        );
        let p = format!(r#"{{"capabilities":{{"experimental":{{"x":"{icon}"}}}}}}"#);
        assert!(matches!(
            essentials(&p, 1024),
            Err(ParamsError::TooLarge(_, 1024))
        ));
        assert!(matches!(
            essentials("[1]", 1024),
            Err(ParamsError::Malformed(_))
        ));
    }
}
