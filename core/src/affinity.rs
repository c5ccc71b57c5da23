//! Session affinity: which shard owns a session. The hash is xxh3 with a fixed seed, so the
//! mapping is the same in every process and every release (replicas behind a hashing load
//! balancer agree on it).

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Fixed so that every ringmux process maps a session id to the same shard.
const SEED: u64 = 0x7269_6e67_6d75_7800;

/// The shard that owns `key` among `shards`.
pub fn shard_of(key: &[u8], shards: usize) -> usize {
    debug_assert!(shards > 0);
    (xxh3_64_with_seed(key, SEED) % shards as u64) as usize
}

/// Alphabet of minted session ids: URL-safe and visible ASCII (0x21–0x7E), as the spec requires.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a minted id: 32 characters of 6 bits = 192 bits of randomness.
pub const SESSION_ID_LEN: usize = 32;

/// Turns 24 random bytes into a session id. The caller draws fresh bytes until
/// [`shard_of`] of the id is the accepting shard (on average `shards` draws).
pub fn encode_session_id(random: &[u8; 24]) -> [u8; SESSION_ID_LEN] {
    let mut out = [0u8; SESSION_ID_LEN];
    for (i, chunk) in random.chunks(3).enumerate() {
        let n = (chunk[0] as u32) << 16 | (chunk[1] as u32) << 8 | chunk[2] as u32;
        for j in 0..4 {
            out[i * 4 + j] = ALPHABET[(n >> (18 - 6 * j) & 63) as usize];
        }
    }
    out
}

/// Whether a client-sent session id is well-formed (visible ASCII, bounded length). Anything
/// else cannot be one of ours: 404 without a lookup.
pub fn plausible_session_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 256 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(shard_of(b"abc", 4), shard_of(b"abc", 4));
        let mut counts = [0usize; 4];
        for i in 0..4000u32 {
            counts[shard_of(&i.to_le_bytes(), 4)] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn ids_are_visible_ascii() {
        let id = encode_session_id(&[0xff; 24]);
        assert!(plausible_session_id(&id));
        let id = encode_session_id(&[0; 24]);
        assert_eq!(&id, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(!plausible_session_id(b"a b"));
        assert!(!plausible_session_id(b""));
    }
}
