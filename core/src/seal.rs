//! Sealed tokens: state ringmux hands a client and must get back unchanged and unread. Today
//! the 2026-07-28 `requestState` of a call parked on the client's input (`rm1.` +
//! base64url(nonce ‖ XChaCha20-Poly1305(claims)), with a domain-separating associated data);
//! session tokens may follow. Pure: the caller passes the nonce (from the OS random source)
//! and the time, so sealing and expiry are testable without either.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// What a sealed `requestState` starts with (the format's version).
pub const STATE_PREFIX: &str = "rm1.";
const STATE_AAD: &[u8] = b"ringmux/request-state/1";

/// What a sealed `requestState` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The shard the call is parked on.
    pub shard: u16,
    /// The parked call's number there.
    pub park: u64,
    /// Unix time in milliseconds after which the state is refused.
    pub expires_ms: u64,
    /// xxh3 of the principal session's key.
    pub principal: u64,
    /// What the retry must repeat (method, name or URI, canonical arguments), hashed.
    pub binding: u64,
}

const CLAIMS_LEN: usize = 2 + 8 * 4;

impl Claims {
    /// Whether the state is still valid at `now_ms` (Unix milliseconds).
    pub fn valid_at(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

/// Seals `claims` under `key` with `nonce` (24 fresh random bytes: never reuse one).
pub fn seal(key: &[u8; 32], claims: &Claims, nonce: [u8; 24]) -> String {
    let mut plain = [0u8; CLAIMS_LEN];
    plain[..2].copy_from_slice(&claims.shard.to_le_bytes());
    for (i, v) in [
        claims.park,
        claims.expires_ms,
        claims.principal,
        claims.binding,
    ]
    .iter()
    .enumerate()
    {
        plain[2 + 8 * i..10 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let sealed = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: STATE_AAD,
            },
        )
        .expect("encrypting into a Vec");
    let mut token = Vec::with_capacity(24 + sealed.len());
    token.extend_from_slice(&nonce);
    token.extend_from_slice(&sealed);
    let mut out = String::from(STATE_PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&token, &mut out);
    out
}

/// The claims of a state sealed under `key`; `None` for anything else (another key, a changed
/// byte, another format).
pub fn open(key: &[u8; 32], state: &str) -> Option<Claims> {
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(state.strip_prefix(STATE_PREFIX)?)
        .ok()?;
    if token.len() < 24 {
        return None;
    }
    let (nonce, sealed) = token.split_at(24);
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: STATE_AAD,
            },
        )
        .ok()?;
    if plain.len() != CLAIMS_LEN {
        return None;
    }
    let word =
        |i: usize| u64::from_le_bytes(plain[2 + 8 * i..10 + 8 * i].try_into().expect("8 bytes"));
    Some(Claims {
        shard: u16::from_le_bytes([plain[0], plain[1]]),
        park: word(0),
        expires_ms: word(1),
        principal: word(2),
        binding: word(3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            shard: 1,
            park: 42,
            expires_ms: 1_900_000_000_000,
            principal: 0xdead_beef,
            binding: 99,
        }
    }

    #[test]
    fn sealed_state_opens_only_with_its_key_and_unchanged() {
        let key = [7u8; 32];
        let s = seal(&key, &claims(), [1; 24]);
        assert!(s.starts_with(STATE_PREFIX));
        assert_eq!(open(&key, &s), Some(claims()));
        assert_ne!(
            seal(&key, &claims(), [2; 24]),
            s,
            "another nonce, another token"
        );
        assert_eq!(
            seal(&key, &claims(), [1; 24]),
            s,
            "deterministic given its inputs"
        );
        assert_eq!(open(&[8u8; 32], &s), None);
        let mut bytes = s.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open(&key, std::str::from_utf8(&bytes).unwrap()), None);
        assert_eq!(open(&key, "rm1.AAAA"), None);
        assert_eq!(open(&key, "garbage"), None);
    }

    #[test]
    fn expiry_is_judged_at_the_time_given() {
        let c = claims();
        assert!(c.valid_at(c.expires_ms - 1));
        assert!(!c.valid_at(c.expires_ms));
        assert!(!c.valid_at(u64::MAX));
    }
}
