//! Masking: secrets and personal data (configurable patterns) replaced inside the JSON strings
//! of backends' answers before they reach a client, and of calls' arguments before they reach a
//! backend. One `RegexSet` pass over the JSON text decides whether anything is to be done (the
//! common case: nothing, and the bytes go on as they are); only then is the message parsed,
//! every string value (and object key) rewritten, and written again.

use regex::bytes::RegexSet;
use regex::Regex;

/// A compiled set of patterns.
#[derive(Debug)]
pub struct Masker {
    set: RegexSet,
    each: Vec<(String, Regex)>,
}

/// What masking made of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to mask: the message goes on as it is.
    Clean,
    /// Something was masked: the message to send instead.
    Masked(Masked),
    /// A pattern matches its text, but it is not JSON that can be rewritten (a lone surrogate,
    /// say): it must not go on (fail closed).
    Unreadable,
}

impl Outcome {
    pub fn masked(self) -> Option<Masked> {
        match self {
            Outcome::Masked(m) => Some(m),
            _ => None,
        }
    }
}

/// What a message had masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub body: Vec<u8>,
    /// How many matches were replaced.
    pub count: usize,
    /// The name of the first pattern that matched.
    pub first: String,
}

impl Masker {
    /// `patterns`: (name, regular expression).
    pub fn new(patterns: &[(String, String)]) -> Result<Masker, String> {
        let set = RegexSet::new(patterns.iter().map(|(_, p)| p)).map_err(|e| e.to_string())?;
        let each = patterns
            .iter()
            .map(|(n, p)| {
                Regex::new(p)
                    .map(|r| (n.clone(), r))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok(Masker { set, each })
    }

    /// Whether the JSON text may hold something to mask: a pass of the set over the text, and
    /// over the decoded form of each string that has escapes (`\u0041KIA…` is `AKIA…` to the
    /// client: an escape must not hide a secret).
    pub fn may_match(&self, json: &[u8]) -> bool {
        if self.set.is_match(json) {
            return true;
        }
        escaped_strings(json).any(|lit| {
            serde_json::from_slice::<String>(lit).is_ok_and(|s| self.set.is_match(s.as_bytes()))
        })
    }

    /// `json` with every match inside its strings replaced by `[masked:<name>]`.
    pub fn mask_json(&self, json: &[u8]) -> Outcome {
        if !self.may_match(json) {
            return Outcome::Clean;
        }
        let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(json) else {
            return Outcome::Unreadable;
        };
        let mut count = 0;
        let mut first = None;
        self.walk(&mut v, &mut count, &mut first);
        let Some(first) = first else {
            // The text matched across strings or structure, no string did.
            return Outcome::Clean;
        };
        match serde_json::to_vec(&v) {
            Ok(body) => Outcome::Masked(Masked { body, count, first }),
            Err(_) => Outcome::Unreadable,
        }
    }

    fn mask_str(&self, s: &str, count: &mut usize, first: &mut Option<String>) -> Option<String> {
        if !self.set.is_match(s.as_bytes()) {
            return None;
        }
        let mut out = s.to_owned();
        for (name, re) in &self.each {
            let n = re.find_iter(&out).count();
            if n > 0 {
                *count += n;
                first.get_or_insert_with(|| name.clone());
                out = re
                    .replace_all(&out, format!("[masked:{name}]").as_str())
                    .into_owned();
            }
        }
        Some(out)
    }

    fn walk(&self, v: &mut serde_json::Value, count: &mut usize, first: &mut Option<String>) {
        match v {
            serde_json::Value::String(s) => {
                if let Some(m) = self.mask_str(s, count, first) {
                    *s = m;
                }
            }
            serde_json::Value::Array(a) => {
                for x in a {
                    self.walk(x, count, first);
                }
            }
            serde_json::Value::Object(o) => {
                let keys: Vec<String> = o.keys().cloned().collect();
                for k in keys {
                    let mut val = o.remove(&k).expect("a key just listed");
                    self.walk(&mut val, count, first);
                    let k = self.mask_str(&k, count, first).unwrap_or(k);
                    o.insert(k, val);
                }
            }
            _ => {}
        }
    }
}

/// The string literals of a JSON text (quotes included) that contain a backslash escape.
fn escaped_strings(json: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let open = at + memchr::memchr(b'"', json.get(at..)?)?;
        let mut i = open + 1;
        let mut escaped = false;
        loop {
            let j = i + memchr::memchr2(b'"', b'\\', json.get(i..)?)?;
            if json[j] == b'\\' {
                escaped = true;
                i = j + 2;
            } else {
                at = j + 1;
                if escaped {
                    return Some(&json[open..=j]);
                }
                break;
            }
        }
    })
}

/// Names and patterns masked when `masking.patterns` is not given: credentials of common
/// providers, bearer tokens and JWTs, private keys, e-mail addresses.
pub const DEFAULT_PATTERNS: &[(&str, &str)] = &[
    ("aws_access_key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github_token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("openai_key", r"\bsk-(proj-)?[A-Za-z0-9_-]{20,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    ("bearer", r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*"),
    (
        "private_key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Masker {
        let p: Vec<(String, String)> = DEFAULT_PATTERNS
            .iter()
            .map(|(n, r)| (n.to_string(), r.to_string()))
            .collect();
        Masker::new(&p).unwrap()
    }

    #[test]
    fn secrets_in_strings_are_masked_and_the_rest_kept() {
        let m = defaults();
        let clean =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"all fine"}]}}"#;
        assert_eq!(m.mask_json(clean), Outcome::Clean);
        let leaky = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"key AKIAABCDEFGHIJKLMNOP and mail bob@example.com"}],"isError":false}}"#;
        let out = m.mask_json(leaky).masked().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(
            v["result"]["content"][0]["text"],
            "key [masked:aws_access_key] and mail [masked:email]"
        );
        assert_eq!(v["id"], 1);
        assert_eq!(v["result"]["isError"], false);
        assert_eq!(out.count, 2);
        assert_eq!(out.first, "aws_access_key");
        // A private key, its newlines escaped in JSON.
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        let msg = serde_json::json!({"result": {"contents": [{"text": pem}]}}).to_string();
        let out = m.mask_json(msg.as_bytes()).masked().unwrap();
        assert!(String::from_utf8(out.body)
            .unwrap()
            .contains("[masked:private_key]"));
        // An escape does not hide a secret.
        let hidden =
            br#"{"text":"key \u0041KIAABCDEFGHIJKLMNOP, mail bob\u0040example.com \/ \"q\""}"#;
        let out = m.mask_json(hidden).masked().unwrap();
        assert_eq!(out.count, 2, "{}", String::from_utf8_lossy(&out.body));
        assert_eq!(
            super::escaped_strings(br#"["a\"b", "plain", "c\\"]"#).collect::<Vec<_>>(),
            [&br#""a\"b""#[..], br#""c\\""#]
        );
        // A match in text that cannot be rewritten does not go out.
        let lone = br#"{"text":"AKIAABCDEFGHIJKLMNOP \ud800"}"#;
        assert_eq!(m.mask_json(lone), Outcome::Unreadable);
    }
}
