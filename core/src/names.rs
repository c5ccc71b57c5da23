//! Namespacing. Tools and prompts from a prefixed backend appear as
//! `<backend><separator><name>`; resources and resource templates as
//! `ringmux://<backend>/<original-uri>` (a valid URI whose path keeps the original intact, so
//! the mapping is reversible without a table). Unprefixed backends keep their names and URIs.

/// Scheme of mapped resource URIs.
pub const URI_SCHEME: &str = "ringmux://";

/// How the global prefix setting applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixMode {
    /// Every backend is prefixed (unless its own setting turns it off).
    Always,
    /// Prefix only when more than one backend is configured.
    Conditional,
}

/// Whether a backend's names are prefixed, given the global mode, the backend's own switch
/// (`Some(false)` turns prefixing off for it) and how many backends there are.
pub fn is_prefixed(mode: PrefixMode, backend_switch: Option<bool>, backends: usize) -> bool {
    match backend_switch {
        Some(on) => on,
        None => mode == PrefixMode::Always || backends > 1,
    }
}

/// The spec's tool-name rule (2025-11-25): 1–128 characters of `A-Z a-z 0-9 _ - .`.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A backend name doubles as a tool prefix and a URI authority: 1–64 characters of
/// `A-Z a-z 0-9 _ -`.
pub fn is_valid_backend_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// A separator may only use tool-name characters, so prefixed names stay valid.
pub fn is_valid_separator(sep: &str) -> bool {
    (1..=8).contains(&sep.len())
        && sep
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Writes the merged form of the key literal `lit` (a JSON string literal with quotes, as it
/// stood in the backend's bytes) for a prefixed backend.
pub fn write_prefixed_literal(
    out: &mut Vec<u8>,
    uri_like: bool,
    backend: &str,
    sep: &str,
    lit: &[u8],
) {
    out.push(b'"');
    if uri_like {
        out.extend_from_slice(URI_SCHEME.as_bytes());
        out.extend_from_slice(backend.as_bytes());
        out.push(b'/');
    } else {
        out.extend_from_slice(backend.as_bytes());
        out.extend_from_slice(sep.as_bytes());
    }
    out.extend_from_slice(&lit[1..]);
}

/// The merged form of a decoded key.
pub fn prefixed(uri_like: bool, backend: &str, sep: &str, key: &str) -> String {
    if uri_like {
        format!("{URI_SCHEME}{backend}/{key}")
    } else {
        format!("{backend}{sep}{key}")
    }
}

/// Splits a mapped URI into (backend, original URI).
pub fn split_mapped_uri(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix(URI_SCHEME)?;
    let slash = rest.find('/')?;
    Some((&rest[..slash], &rest[slash + 1..]))
}

/// The literal text of a URI template before its first expression: a URI the template
/// produced starts with it.
pub fn template_literal_prefix(template: &str) -> &str {
    match template.find('{') {
        Some(i) => &template[..i],
        None => template,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_name_rules() {
        assert!(is_valid_tool_name("weather__get_forecast.v2-x"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("has space"));
        assert!(!is_valid_tool_name("slash/no"));
        assert!(is_valid_tool_name(&"a".repeat(128)));
        assert!(!is_valid_tool_name(&"a".repeat(129)));
    }

    #[test]
    fn prefix_modes() {
        assert!(is_prefixed(PrefixMode::Always, None, 1));
        assert!(!is_prefixed(PrefixMode::Conditional, None, 1));
        assert!(is_prefixed(PrefixMode::Conditional, None, 2));
        assert!(!is_prefixed(PrefixMode::Always, Some(false), 3));
    }

    #[test]
    fn uri_mapping_roundtrip() {
        let m = prefixed(true, "docs", "__", "test://static/resource/1?x=1#f");
        assert_eq!(m, "ringmux://docs/test://static/resource/1?x=1#f");
        assert_eq!(
            split_mapped_uri(&m),
            Some(("docs", "test://static/resource/1?x=1#f"))
        );
        let mut out = Vec::new();
        write_prefixed_literal(&mut out, false, "w", "__", br#""get""#);
        assert_eq!(out, br#""w__get""#);
        assert_eq!(template_literal_prefix("file:///{path}"), "file:///");
    }
}
