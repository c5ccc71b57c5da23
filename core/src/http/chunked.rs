//! Incremental decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1). Feed it bytes as
//! they arrive; it appends payload to an output buffer and says how much input it consumed.
//! Chunk extensions and trailers are skipped.

use super::HeadError;

/// Longest chunk-size line (with extensions) we accept before calling the body malformed.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size line.
    Size,
    /// `n` payload bytes left in the current chunk.
    Data(usize),
    /// Expecting the CRLF after a chunk's payload.
    DataEnd,
    /// After the last chunk: skipping trailer lines until an empty one.
    Trailer,
    Done,
}

/// Decoder state; one per body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        ChunkedDecoder { state: State::Size }
    }

    /// Whether the terminating chunk and trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending payload to `out`. Returns the number of
    /// input bytes consumed; stops at the end of the body (`is_done`). `limit` bounds the total
    /// payload `out` may hold.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<usize, HeadError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Size => {
                    let Some((line, nl)) = take_line(&input[pos..])? else {
                        break;
                    };
                    let hex = match memchr::memchr(b';', line) {
                        Some(i) => &line[..i],
                        None => line,
                    };
                    let size = parse_hex(hex)?;
                    pos += nl + 1;
                    self.state = if size == 0 {
                        State::Trailer
                    } else {
                        if out.len().saturating_add(size) > limit {
                            return Err(HeadError::BodyTooLarge);
                        }
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let take = left.min(input.len() - pos);
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    self.state = if take == left {
                        State::DataEnd
                    } else {
                        State::Data(left - take)
                    };
                }
                State::DataEnd => {
                    let rest = &input[pos..];
                    match rest {
                        [b'\r', b'\n', ..] => pos += 2,
                        [b'\n', ..] => pos += 1,
                        [b'\r'] => break,
                        _ => return Err(HeadError::Malformed),
                    }
                    self.state = State::Size;
                }
                State::Trailer => {
                    let Some((line, nl)) = take_line(&input[pos..])? else {
                        break;
                    };
                    pos += nl + 1;
                    if line.is_empty() {
                        self.state = State::Done;
                    }
                }
                State::Done => break,
            }
        }
        Ok(pos)
    }
}

/// The next line of `rest` without its line end, and the index of its `\n`; `None` until the
/// line is complete. An overlong line is malformed.
fn take_line(rest: &[u8]) -> Result<Option<(&[u8], usize)>, HeadError> {
    match memchr::memchr(b'\n', rest) {
        Some(nl) => {
            let line = &rest[..nl];
            Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), nl)))
        }
        None if rest.len() > MAX_LINE => Err(HeadError::Malformed),
        None => Ok(None),
    }
}

fn parse_hex(hex: &[u8]) -> Result<usize, HeadError> {
    let hex = {
        let mut h = hex;
        while let [rest @ .., b' ' | b'\t'] = h {
            h = rest;
        }
        h
    };
    if hex.is_empty() || hex.len() > 15 {
        return Err(HeadError::Malformed);
    }
    hex.iter().try_fold(0usize, |n, c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(HeadError::Malformed),
        };
        Ok(n << 4 | d as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    #[test]
    fn whole_body() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode(BODY, &mut out, 1024).unwrap();
        assert!(d.is_done());
        assert_eq!(out, b"hello, world");
        assert_eq!(&BODY[n..], b"NEXT");
    }

    #[test]
    fn byte_by_byte() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for b in BODY {
            pending.push(*b);
            let n = d.decode(&pending, &mut out, 1024).unwrap();
            pending.drain(..n);
            if d.is_done() {
                break;
            }
        }
        assert!(d.is_done());
        assert_eq!(out, b"hello, world");
    }

    #[test]
    fn malformed_and_limits() {
        let mut out = Vec::new();
        assert_eq!(
            ChunkedDecoder::new().decode(b"zz\r\n", &mut out, 10),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"5\r\nhelloXX", &mut out, 10),
            Err(HeadError::Malformed)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"ff\r\n", &mut out, 10),
            Err(HeadError::BodyTooLarge)
        );
        assert_eq!(
            ChunkedDecoder::new().decode(b"ffffffffffffffffff\r\n", &mut out, 10),
            Err(HeadError::Malformed)
        );
    }
}
