//! Server-Sent Events: an incremental decoder (for backend streams) and the event encoder (for
//! client streams). Follows the WHATWG event-stream rules: `\n`, `\r\n` or `\r` line ends,
//! `data` lines joined with `\n`, comments (`:`) skipped, an event dispatched on a blank line.

/// One decoded event. Events with no `data` field are still reported (an MCP server's priming
/// event carries only an `id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Vec<u8>,
    pub retry: Option<u64>,
}

/// Incremental decoder; push bytes with [`SseDecoder::feed`], take events with
/// [`SseDecoder::next_event`].
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    pos: usize,
    cur: Event,
    has_field: bool,
    /// A `\r` ended the previous line; skip a `\n` that follows it.
    after_cr: bool,
    /// `data` lines seen in the current event (the first is not preceded by `\n`).
    data_lines: usize,
    max_event: usize,
}

/// An event grew past the decoder's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SSE event larger than {0} bytes")]
pub struct EventTooLarge(pub usize);

impl SseDecoder {
    /// `max_event` bounds one event's size (a hostile backend must not exhaust memory).
    pub fn new(max_event: usize) -> Self {
        SseDecoder {
            max_event,
            ..Default::default()
        }
    }

    /// Bytes held for events not yet complete (what a memory budget must count).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos + self.cur.data.len()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if one has arrived.
    pub fn next_event(&mut self) -> Result<Option<Event>, EventTooLarge> {
        loop {
            if self.after_cr && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.pos..];
            let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
                if rest.len() + self.cur.data.len() > self.max_event {
                    return Err(EventTooLarge(self.max_event));
                }
                self.compact();
                return Ok(None);
            };
            let line_start = self.pos;
            self.after_cr = rest[end] == b'\r';
            self.pos += end + 1;
            let line = line_start..line_start + end;
            if line.is_empty() {
                if self.has_field {
                    self.has_field = false;
                    self.data_lines = 0;
                    return Ok(Some(std::mem::take(&mut self.cur)));
                }
                continue;
            }
            self.field(line)?;
        }
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    fn field(&mut self, line: std::ops::Range<usize>) -> Result<(), EventTooLarge> {
        let line = &self.buf[line];
        if line[0] == b':' {
            return Ok(());
        }
        let (name, mut value) = match memchr::memchr(b':', line) {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &b""[..]),
        };
        if let [b' ', rest @ ..] = value {
            value = rest;
        }
        match name {
            b"data" => {
                if self.cur.data.len() + value.len() + 1 > self.max_event {
                    return Err(EventTooLarge(self.max_event));
                }
                if self.data_lines > 0 {
                    self.cur.data.push(b'\n');
                }
                self.cur.data.extend_from_slice(value);
                self.data_lines += 1;
                self.has_field = true;
            }
            b"event" => {
                self.cur.event = Some(String::from_utf8_lossy(value).into_owned());
                self.has_field = true;
            }
            b"id" if !value.contains(&0) => {
                self.cur.id = Some(String::from_utf8_lossy(value).into_owned());
                self.has_field = true;
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.cur.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
                self.has_field = true;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Appends one event. `data` may span lines; each becomes its own `data:` line.
pub fn write_event(out: &mut Vec<u8>, id: Option<&str>, event: Option<&str>, data: &[u8]) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    let mut rest = data;
    loop {
        let end = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&rest[..end]);
        out.push(b'\n');
        if end == rest.len() {
            break;
        }
        let skip = if rest[end..].starts_with(b"\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
    out.push(b'\n');
}

/// Appends a priming event: an id and empty data, telling the client where it may resume
/// from and (`retry`) how long to wait before it does.
pub fn write_priming(out: &mut Vec<u8>, id: &str, retry_ms: u64) {
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\nretry: ");
    crate::http::write_usize(out, retry_ms as usize);
    out.extend_from_slice(b"\ndata: \n\n");
}

/// A comment line; keeps idle connections and proxies from timing out.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn all(dec: &mut SseDecoder) -> Vec<Event> {
        let mut v = Vec::new();
        while let Some(e) = dec.next_event().unwrap() {
            v.push(e);
        }
        v
    }

    #[test]
    fn decodes_fields_and_multiline_data() {
        let mut d = SseDecoder::new(1024);
        d.feed(b": comment\nid: 7\nevent: message\ndata: {\"a\":\ndata: 1}\n\nretry: 10\n\n");
        let ev = all(&mut d);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].id.as_deref(), Some("7"));
        assert_eq!(ev[0].event.as_deref(), Some("message"));
        assert_eq!(ev[0].data, b"{\"a\":\n1}");
        assert_eq!(ev[1].retry, Some(10));
    }

    #[test]
    fn any_line_ending_any_split() {
        let stream = b"data: one\r\n\r\ndata: two\r\rdata:three\n\n";
        for split in 0..stream.len() {
            let mut d = SseDecoder::new(1024);
            d.feed(&stream[..split]);
            let mut ev = all(&mut d);
            d.feed(&stream[split..]);
            ev.extend(all(&mut d));
            let data: Vec<_> = ev.iter().map(|e| e.data.clone()).collect();
            assert_eq!(
                data,
                vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()],
                "split {split}"
            );
        }
    }

    #[test]
    fn priming_event_without_data() {
        let mut d = SseDecoder::new(1024);
        d.feed(b"id: p0\ndata:\n\n");
        let ev = all(&mut d);
        assert_eq!(ev[0].id.as_deref(), Some("p0"));
        assert!(ev[0].data.is_empty());
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut d = SseDecoder::new(8);
        d.feed(b"data: 0123456789\n\n");
        assert_eq!(d.next_event(), Err(EventTooLarge(8)));
        let mut d = SseDecoder::new(8);
        d.feed(b"data: 0123456789");
        assert_eq!(d.next_event(), Err(EventTooLarge(8)));
    }

    #[test]
    fn priming_roundtrip() {
        let mut out = Vec::new();
        write_priming(&mut out, "3.17", 250);
        let mut d = SseDecoder::new(1024);
        d.feed(&out);
        let ev = all(&mut d);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].id.as_deref(), Some("3.17"));
        assert_eq!(ev[0].retry, Some(250));
        assert!(ev[0].data.is_empty());
    }

    #[test]
    fn encoder_roundtrip() {
        let mut out = Vec::new();
        write_event(&mut out, Some("e1"), Some("message"), b"{\n\"a\": 1\r\n}");
        let mut d = SseDecoder::new(1024);
        d.feed(&out);
        let ev = all(&mut d);
        assert_eq!(ev[0].id.as_deref(), Some("e1"));
        assert_eq!(ev[0].data, b"{\n\"a\": 1\n}");
    }
}
