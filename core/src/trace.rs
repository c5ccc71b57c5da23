//! W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/): parsing what a
//! client sends (the HTTP header, or `params._meta.traceparent` as MCP's convention carries
//! it) and writing what ringmux sends its backends.

/// A span's context as `traceparent` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    /// The parent span (the sender's).
    pub span_id: [u8; 8],
    /// Trace flags; bit 0: sampled.
    pub flags: u8,
}

/// The length of a version-00 `traceparent`.
pub const LEN: usize = 55;

/// The trace context a client's headers carry: its `traceparent`, and its `tracestate`
/// (vendors' entries), which a proxy passes on as it came (W3C Trace Context §3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub parent: TraceParent,
    pub state: Option<Box<str>>,
}

/// The longest `tracestate` passed on (W3C: 32 entries of at most 256 bytes may make more;
/// a vendor must cope with it cut, and a longer one is dropped whole here).
pub const MAX_TRACESTATE: usize = 512;

/// A `tracestate` value as it may be passed on: 1 to [`MAX_TRACESTATE`] bytes of printable
/// ASCII (the header's grammar, list members and optional whitespace, is the vendors'; only
/// what could not be written back as a header is refused), trimmed.
pub fn tracestate(value: &[u8]) -> Option<&str> {
    let v = value.trim_ascii();
    if v.is_empty() || v.len() > MAX_TRACESTATE || !v.iter().all(|b| (0x20..0x7f).contains(b)) {
        return None;
    }
    std::str::from_utf8(v).ok()
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        out[i] = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

impl TraceParent {
    /// Parses a `traceparent` value (surrounding spaces allowed). Refused: uppercase or
    /// non-hex digits, version `ff`, an all-zero trace or span id, a version-00 value of
    /// another length; a later version is read by its first four fields.
    pub fn parse(value: &[u8]) -> Option<TraceParent> {
        let v = value.trim_ascii();
        if v.len() < LEN || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let [version] = decode::<1>(&v[..2])?;
        if version == 0xff || (version == 0 && v.len() != LEN) {
            return None;
        }
        if version > 0 && v.len() > LEN && v[LEN] != b'-' {
            return None;
        }
        let trace_id = decode::<16>(&v[3..35])?;
        let span_id = decode::<8>(&v[36..52])?;
        let [flags] = decode::<1>(&v[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The version-00 value, 55 bytes.
    pub fn write(&self) -> [u8; LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; LEN];
        out[0] = b'0';
        out[1] = b'0';
        let mut put = |at: usize, bytes: &[u8]| {
            for (i, b) in bytes.iter().enumerate() {
                out[at + 2 * i] = HEX[(b >> 4) as usize];
                out[at + 2 * i + 1] = HEX[(b & 15) as usize];
            }
        };
        put(3, &self.trace_id);
        put(36, &self.span_id);
        put(53, &[self.flags]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_writes_the_same_value() {
        let t = TraceParent::parse(GOOD).unwrap();
        assert_eq!(t.trace_id[0], 0x4b);
        assert_eq!(t.span_id[7], 0xb7);
        assert!(t.sampled());
        assert_eq!(&t.write()[..], GOOD);
        assert_eq!(
            TraceParent::parse(b"  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ")
                .map(|t| t.sampled()),
            Some(false)
        );
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version: its first four fields, and what follows after a dash.
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01xyz")
                .is_none()
        );
    }
}
