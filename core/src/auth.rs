//! The credential a request presents, sans-IO: its `Authorization` header read as RFC 6750
//! says (`Bearer <b64token>`), bounded, and told apart as a JWT or an opaque key. Verifying
//! it is the gateway's (`src/auth.rs`); the challenge that answers a refusal is built here.

/// Longest credential accepted (the header value), in bytes: a JWT with many claims fits.
pub const MAX_CREDENTIAL: usize = 8 << 10;

/// What a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `Authorization: Bearer <token>`: the token's bytes.
    Bearer(&'a [u8]),
}

/// Why a header cannot be read as a credential (RFC 6750's `invalid_request`, 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadCredential {
    #[error("the Authorization header is not `Bearer <token>`")]
    Scheme,
    #[error("the bearer token is empty or holds characters a token cannot")]
    Malformed,
    #[error("the Authorization header is longer than 8192 bytes")]
    TooLong,
}

/// Reads an `Authorization` header value (already trimmed of surrounding whitespace).
pub fn parse(value: &[u8]) -> Result<Credential<'_>, BadCredential> {
    let token = bearer(value)?;
    if !is_b64token(token) {
        return Err(BadCredential::Malformed);
    }
    Ok(Credential::Bearer(token))
}

/// The token of a `Bearer` value, its characters not checked yet: what a cache of verified
/// tokens is looked up by (a token found there was checked when it was verified), so that a
/// session's later requests do not scan it again. [`parse`] is this and the check.
pub fn bearer(value: &[u8]) -> Result<&[u8], BadCredential> {
    if value.len() > MAX_CREDENTIAL {
        return Err(BadCredential::TooLong);
    }
    if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
        let word = value.split(|b| *b == b' ').next().unwrap_or_default();
        return Err(if word.eq_ignore_ascii_case(b"bearer") {
            BadCredential::Malformed
        } else {
            BadCredential::Scheme
        });
    }
    Ok(trim_spaces(&value[7..]))
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    s
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(t: &[u8]) -> bool {
    let body_end = t.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    // No early exit: the table lookups run branch-free.
    body_end > 0
        && t[..body_end]
            .iter()
            .fold(true, |ok, b| ok & TOKEN_CHARS[*b as usize])
}

/// The bytes a b64token's body may hold.
static TOKEN_CHARS: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        i += 1;
    }
    t
};

/// Whether a bearer token has a JWT's shape (three base64url segments, the last possibly
/// empty only for an unsigned token, which is refused later): it is then verified as one;
/// anything else is looked up as an API key.
pub fn looks_like_jwt(token: &[u8]) -> bool {
    let mut parts = token.split(|b| *b == b'.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !h.is_empty() && !p.is_empty()
}

/// Why a request is refused by authentication: how the challenge reads (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential where one is required: 401, no `error`.
    Missing,
    /// A credential that does not verify (expired, wrong issuer or audience, bad signature,
    /// unknown key): 401 `error="invalid_token"`.
    Invalid,
    /// A header that is not a credential: 400 `error="invalid_request"`.
    BadRequest,
    /// A valid token without the scopes required: 403 `error="insufficient_scope"`.
    InsufficientScope,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::Missing | Refusal::Invalid => 401,
            Refusal::BadRequest => 400,
            Refusal::InsufficientScope => 403,
        }
    }

    /// The `WWW-Authenticate` value: `Bearer resource_metadata="…"`, the scopes the client
    /// should ask for, and the error code when there is one.
    pub fn challenge(self, metadata_url: &str, scope: &str) -> String {
        let mut out = String::with_capacity(96 + metadata_url.len() + scope.len());
        out.push_str("Bearer resource_metadata=\"");
        push_quoted(&mut out, metadata_url);
        out.push('"');
        if !scope.is_empty() {
            out.push_str(", scope=\"");
            push_quoted(&mut out, scope);
            out.push('"');
        }
        let error = match self {
            Refusal::Missing => None,
            Refusal::Invalid => Some("invalid_token"),
            Refusal::BadRequest => Some("invalid_request"),
            Refusal::InsufficientScope => Some("insufficient_scope"),
        };
        if let Some(e) = error {
            out.push_str(", error=\"");
            out.push_str(e);
            out.push('"');
        }
        out
    }
}

/// A quoted-string's content: `"` and `\` escaped, control characters dropped.
fn push_quoted(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_as_rfc_6750_says() {
        assert_eq!(
            parse(b"Bearer abc.def-_~+/=="),
            Ok(Credential::Bearer(b"abc.def-_~+/=="))
        );
        assert_eq!(parse(b"bearer   xyz"), Ok(Credential::Bearer(b"xyz")));
        assert_eq!(parse(b"Basic dXNlcjpwdw=="), Err(BadCredential::Scheme));
        assert_eq!(parse(b"Bearer"), Err(BadCredential::Malformed));
        assert_eq!(parse(b"Bearer "), Err(BadCredential::Malformed));
        assert_eq!(parse(b"Bearer a b"), Err(BadCredential::Malformed));
        assert_eq!(parse(b"Bearer ==="), Err(BadCredential::Malformed));
        assert_eq!(parse(b"Bearer a=b"), Err(BadCredential::Malformed));
        assert_eq!(parse(b"Bearer t\x00"), Err(BadCredential::Malformed));
        let long = [b"Bearer ".as_slice(), &[b'a'; MAX_CREDENTIAL]].concat();
        assert_eq!(parse(&long), Err(BadCredential::TooLong));
    }

    #[test]
    fn jwts_are_told_from_keys() {
        assert!(looks_like_jwt(b"eyJh.eyJz.sig"));
        assert!(looks_like_jwt(b"eyJh.eyJz."));
        assert!(!looks_like_jwt(b"rmx_live_0123456789"));
        assert!(!looks_like_jwt(b"a.b"));
        assert!(!looks_like_jwt(b"a.b.c.d"));
        assert!(!looks_like_jwt(b".b.c"));
    }

    #[test]
    fn challenges_carry_the_metadata_scope_and_error() {
        let url = "https://gw.example/.well-known/oauth-protected-resource/mcp";
        assert_eq!(
            Refusal::Missing.challenge(url, "mcp:tools"),
            format!("Bearer resource_metadata=\"{url}\", scope=\"mcp:tools\"")
        );
        assert_eq!(
            Refusal::Invalid.challenge(url, ""),
            format!("Bearer resource_metadata=\"{url}\", error=\"invalid_token\"")
        );
        assert_eq!(
            Refusal::InsufficientScope.challenge("u\"x", "a b"),
            "Bearer resource_metadata=\"u\\\"x\", scope=\"a b\", error=\"insufficient_scope\""
        );
        assert_eq!(Refusal::InsufficientScope.status(), 403);
        assert_eq!(Refusal::BadRequest.status(), 400);
    }
}
