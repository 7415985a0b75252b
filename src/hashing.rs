//! One cheap, well-spread hash of a `u64`, shared by the list structures (numbers) and the SIP
//! core (transaction keys into branches, Call-IDs into call keys).

/// The splitmix64 finalizer.
#[inline]
pub(crate) fn mix(mut x: u64) -> u64 {
    // Numbers are dense and sequential, and a branch must not show its key: both need a real mix.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// A hash of a byte string that is the same in every process (SipHash with fixed keys): what
/// the SIP core keys calls by.
pub(crate) fn hash_bytes(b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::hash::DefaultHasher::new();
    h.write(b);
    h.finish()
}

/// Lower-case hex of a digest. On the audit writer's path for every line: a table, not a
/// `format!` per byte (which cost ~14,000 instructions per 32-byte hash).
pub(crate) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[(x >> 4) as usize] as char);
        s.push(DIGITS[(x & 15) as usize] as char);
    }
    s
}
