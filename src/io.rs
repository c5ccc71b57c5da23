//! Small socket helpers shared by the client-facing connections and the backend client.

pub use ringmux_tls_io::read_more;

/// Drops `n` consumed bytes from the front of `buf`, keeping its allocation.
pub fn consume(buf: &mut Vec<u8>, n: usize) {
    if n >= buf.len() {
        buf.clear();
    } else if n > 0 {
        buf.drain(..n);
    }
}

/// A buffer kept across messages may stay this large; past it, it is shrunk after use.
pub const KEEP_CAPACITY: usize = 64 << 10;

/// Shrinks `buf` to `keep` bytes of capacity (or its contents, if more) once it has grown past
/// [`KEEP_CAPACITY`]: one large message must not pin its size for the life of a connection.
pub fn trim(buf: &mut Vec<u8>, keep: usize) {
    if buf.capacity() > KEEP_CAPACITY {
        buf.shrink_to(keep.max(buf.len()));
    }
}
