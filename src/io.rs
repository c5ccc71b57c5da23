//! Small socket helpers shared by the client-facing connections and the backend client.

use std::io;

use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// Reads more bytes into `buf`, appending after its current contents (growing it by at least
/// `min_spare` free bytes first). Returns the number of bytes read; 0 means end of stream.
pub async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    mut buf: Vec<u8>,
    min_spare: usize,
) -> (io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < min_spare {
        buf.reserve(min_spare);
    }
    let len = buf.len();
    let (res, slice) = stream.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

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
