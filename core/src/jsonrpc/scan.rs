//! A validating JSON cursor: it walks a document once, checks every byte against RFC 8259's
//! grammar, and hands out the byte ranges of the values the envelope wants without building
//! anything. Values it is not asked about are skipped, still validated.
//!
//! Why not a library: the envelope needs five fields out of a ~300-byte message. A typed
//! serde_json parse costs ≈455 ns there (serde's visitor machinery per member), sonic-rs
//! `get_many` about the same on a generic x86-64 build; this scanner, with an 8-byte SWAR
//! string skip, is measured in `bench/benches/envelope.rs`. The input must already be valid
//! UTF-8 (the caller checks the whole buffer once with `str::from_utf8`), so the cursor only
//! ever stops on ASCII bytes and every range it returns is a `str` boundary.

/// Deepest nesting accepted (serde_json's default recursion limit).
pub const MAX_DEPTH: u32 = 128;

/// A syntax error: what was wrong and at which byte. Eight bytes, so that every `Result` the
/// scanner returns travels in registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syntax {
    pub what: What,
    pub at: u32,
}

/// The kinds of syntax error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Empty,
    Trailing,
    CommaOrBrace,
    CommaOrBracket,
    MemberName,
    Colon,
    Unterminated,
    ControlCharacter,
    BadUnicodeEscape,
    BadEscape,
    TooDeep,
    EndOfInput,
    Value,
    Literal,
    Number,
}

impl std::fmt::Display for Syntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.what {
            What::Empty => "empty body",
            What::Trailing => "trailing characters",
            What::CommaOrBrace => "expected `,` or `}`",
            What::CommaOrBracket => "expected `,` or `]`",
            What::MemberName => "expected a member name",
            What::Colon => "expected `:`",
            What::Unterminated => "unterminated string",
            What::ControlCharacter => "control character in string",
            What::BadUnicodeEscape => "invalid \\u escape",
            What::BadEscape => "invalid escape",
            What::TooDeep => "nested too deeply",
            What::EndOfInput => "unexpected end of input",
            What::Value => "expected a value",
            What::Literal => "invalid literal",
            What::Number => "invalid number",
        };
        write!(f, "{what} at byte {}", self.at)
    }
}

/// A string literal found by [`Cursor::string`].
#[derive(Debug, Clone, Copy)]
pub struct Str<'a> {
    /// The literal with its quotes.
    pub raw: &'a str,
    /// Whether it contains an escape (and so must be decoded before comparing).
    pub escaped: bool,
}

impl<'a> Str<'a> {
    /// The characters between the quotes, undecoded.
    pub fn inner(&self) -> &'a str {
        &self.raw[1..self.raw.len() - 1]
    }
}

pub struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bytes of `w` that are `"`, `\` or a control character (< 0x20), as their high bits.
#[inline]
fn specials(w: u64) -> u64 {
    let quote = w ^ (LO * u64::from(b'"'));
    let slash = w ^ (LO * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(LO) & !v;
    (zero(quote) | zero(slash) | w.wrapping_sub(LO * 0x20)) & !w & HI
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Self {
        Cursor { text, pos: 0 }
    }

    #[inline]
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The text from `start` to the cursor.
    pub fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    #[cold]
    fn fail<T>(&self, what: What) -> Result<T, Syntax> {
        Err(Syntax {
            what,
            at: u32::try_from(self.pos).unwrap_or(u32::MAX),
        })
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    #[inline]
    pub fn ws(&mut self) {
        let b = self.bytes();
        while let Some(c) = b.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// Consumes `c` if it is next; whitespace before it is skipped.
    #[inline]
    pub fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    #[inline]
    pub fn expect(&mut self, c: u8, what: What) -> Result<(), Syntax> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// After the whole value: only whitespace may follow.
    pub fn end(&mut self) -> Result<(), Syntax> {
        self.ws();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            self.fail(What::Trailing)
        }
    }

    /// After a member: `,` (then another member follows) or `}`. Returns whether one follows.
    #[inline]
    pub fn next_member(&mut self) -> Result<bool, Syntax> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b'}') => {
                self.pos += 1;
                Ok(false)
            }
            _ => self.fail(What::CommaOrBrace),
        }
    }

    /// Just after `{`: whether the object has a first member (consumes `}` when it has not).
    #[inline]
    pub fn first_member(&mut self) -> bool {
        !self.eat(b'}')
    }

    /// A member's key and the `:` after it.
    #[inline]
    pub fn key(&mut self) -> Result<Str<'a>, Syntax> {
        self.ws();
        if self.peek() != Some(b'"') {
            return self.fail(What::MemberName);
        }
        let key = self.string()?;
        self.expect(b':', What::Colon)?;
        self.ws();
        Ok(key)
    }

    /// A string literal; the cursor is on its opening quote.
    pub fn string(&mut self) -> Result<Str<'a>, Syntax> {
        let b = self.bytes();
        let start = self.pos;
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            // Eight bytes at a time until one of them needs a look.
            while let Some(chunk) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let hits = specials(w);
                if hits != 0 {
                    i += (hits.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            match b.get(i) {
                None => {
                    self.pos = i;
                    return self.fail(What::Unterminated);
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Str {
                        raw: &self.text[start..i + 1],
                        escaped,
                    });
                }
                Some(b'\\') => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                Some(c) if *c < 0x20 => {
                    self.pos = i;
                    return self.fail(What::ControlCharacter);
                }
                Some(_) => i += 1,
            }
        }
    }

    /// Checks the escape whose letter is at `i`; returns the index after it.
    fn escape(&mut self, i: usize) -> Result<usize, Syntax> {
        let b = self.bytes();
        match b.get(i) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => match b.get(i + 1..i + 5) {
                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => Ok(i + 5),
                _ => {
                    self.pos = i;
                    self.fail(What::BadUnicodeEscape)
                }
            },
            _ => {
                self.pos = i;
                self.fail(What::BadEscape)
            }
        }
    }

    /// Skips one value of any kind, validating it.
    pub fn skip(&mut self, depth: u32) -> Result<(), Syntax> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return self.fail(What::TooDeep);
                }
                self.pos += 1;
                if self.first_member() {
                    loop {
                        self.key()?;
                        self.skip(depth + 1)?;
                        if !self.next_member()? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return self.fail(What::TooDeep);
                }
                self.pos += 1;
                if self.eat(b']') {
                    return Ok(());
                }
                loop {
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return self.fail(What::CommaOrBracket),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            None => self.fail(What::EndOfInput),
            Some(_) => self.fail(What::Value),
        }
    }

    /// Skips a value and returns its text.
    #[inline]
    pub fn value(&mut self, depth: u32) -> Result<&'a str, Syntax> {
        self.ws();
        let start = self.pos;
        self.skip(depth)?;
        Ok(self.since(start))
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<(), Syntax> {
        if self.bytes()[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.fail(What::Literal)
        }
    }

    fn digits(&mut self) -> usize {
        let b = self.bytes();
        let start = self.pos;
        while b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<(), Syntax> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail(What::Number),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.fail(What::Number);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.fail(What::Number);
            }
        }
        Ok(())
    }
}

/// Validates a whole document: one value, nothing after it but whitespace.
pub fn validate(text: &str) -> Result<(), Syntax> {
    let mut c = Cursor::new(text);
    c.skip(0)?;
    c.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agrees(doc: &str) {
        let ours = validate(doc).is_ok();
        let serde = serde_json::from_str::<serde::de::IgnoredAny>(doc).is_ok();
        assert_eq!(ours, serde, "disagreement on {doc:?}");
    }

    #[test]
    fn agrees_with_serde_json_on_validity() {
        for doc in [
            "{}",
            "[]",
            "0",
            "-0",
            "-",
            "01",
            "1.",
            "1.5",
            "1e",
            "1e+",
            "1E-7",
            "-1.0e10",
            ".5",
            "true",
            "tru",
            "nul",
            "null ",
            " null",
            "\"\"",
            "\"a\\u00e9\"",
            "\"\\u00g0\"",
            "\"\\x\"",
            "\"tab\there\"",
            "\"unterminated",
            "{\"a\":1,}",
            "[1,]",
            "[1 2]",
            "{\"a\" 1}",
            "{\"a\":1 \"b\":2}",
            "{1:2}",
            "\"ünïcødé and 😀\"",
            "[[[]]]",
            "{} {}",
            "\"0123456789abcdef\\\"0123456789\"",
            "\"12345678\"",
            "\"1234567\\n\"",
            "",
            "   ",
            "{\"a\":[1,{\"b\":null}],\"c\":\"\\/\"}",
            "[true,false,null]",
            "\"\\ud800\"",
            "\"\\udc00\\ud800\"",
            "\"\\u0000\"",
            "1.0E+2",
            "-01",
            "2.e3",
            "[1e309]",
            "123456789012345678901234567890",
            "{\"\\u0041\":1}",
        ] {
            agrees(doc);
        }
        // serde_json skips ignored values without a depth limit; ours is `MAX_DEPTH`.
        for depth in [1, 64, 128] {
            agrees(&("[".repeat(depth) + &"]".repeat(depth)));
            agrees(&("{\"a\":".repeat(depth) + "1" + &"}".repeat(depth)));
        }
    }

    #[test]
    fn depth_is_bounded() {
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(validate(&nested(MAX_DEPTH as usize)).is_ok());
        let deep = nested(MAX_DEPTH as usize + 1);
        assert_eq!(validate(&deep).unwrap_err().what, What::TooDeep);
    }

    #[test]
    fn swar_finds_each_special_byte() {
        for at in 0..8 {
            for special in [b'"', b'\\', 0x00, 0x1f] {
                let mut w = *b"abcdefgh";
                w[at] = special;
                let hits = specials(u64::from_le_bytes(w));
                assert_eq!(hits.trailing_zeros() / 8, at as u32);
            }
            let mut w = *b"abcdefgh";
            w[at] = 0xc3;
            assert_eq!(specials(u64::from_le_bytes(w)), 0);
        }
    }

    #[test]
    fn strings_report_escapes_and_ranges() {
        let text = r#""plain text here" "with \" escape""#;
        let mut c = Cursor::new(text);
        let s = c.string().unwrap();
        assert_eq!(s.inner(), "plain text here");
        assert!(!s.escaped);
        c.ws();
        let s = c.string().unwrap();
        assert_eq!(s.inner(), r#"with \" escape"#);
        assert!(s.escaped);
    }
}
