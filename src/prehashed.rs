//! The hasher of maps whose keys are hashes already (the credential cache's xxh3 keys, the
//! latency series' keys): no second hash on the request path.

use std::hash::Hasher;

/// The hasher of a map whose keys are hashes already: it passes the `u64` through.
#[derive(Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with it.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
