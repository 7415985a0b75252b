//! The `NumberSet` trait, the blocked bloom filter (one cache line per probe) that the list set
//! puts in front of every list, and the core's first structure (bloom + sorted `u64`s), kept as
//! the baseline the benchmarks compare against. A filter may say "maybe"; only an exact set can
//! say "yes", so a false positive costs an exact probe, never a wrong block.

use super::mem::HugeBuf;
use crate::number::E164;

/// A set of numbers. Issue "registry scale" swaps the implementation, not the callers.
pub trait NumberSet: Send + Sync {
    fn contains(&self, n: E164) -> bool;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes held, for the `callgate_list_memory_bytes` gauge.
    fn memory_bytes(&self) -> usize;
}

/// 512-bit blocks, one cache line each; each key sets `K` bits inside one block.
const BLOCK_WORDS: usize = 8;
const K: u32 = 6;
/// 10 bits per key: ~1% false positives (each costs one exact probe), 312 MB at 250 M keys.
pub(crate) const BITS_PER_KEY: usize = 10;

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct Block([u64; BLOCK_WORDS]);

pub struct BlockedBloom {
    blocks: HugeBuf<Block>,
}

use crate::hashing::mix;

impl BlockedBloom {
    pub fn with_capacity(n: usize) -> Self {
        Self::with_bits_per_key(n, BITS_PER_KEY)
    }

    pub fn with_bits_per_key(n: usize, bits_per_key: usize) -> Self {
        let blocks = (n.max(1) * bits_per_key).div_ceil(BLOCK_WORDS * 64);
        BlockedBloom {
            blocks: HugeBuf::zeroed(blocks),
        }
    }

    #[inline]
    fn locate(&self, key: u64) -> (usize, u64) {
        let h = mix(key);
        // High bits pick the block (fast range reduction, any block count); low bits pick the
        // bits within it.
        let block = (((h >> 32) * self.blocks.len() as u64) >> 32) as usize;
        (block, h)
    }

    #[inline]
    fn set_bits(block: &mut Block, mut h: u64) {
        for _ in 0..K {
            let bit = (h & 511) as usize;
            block.0[bit / 64] |= 1 << (bit % 64);
            h = h.rotate_right(9);
        }
    }

    pub fn insert(&mut self, key: u64) {
        let (b, h) = self.locate(key);
        Self::set_bits(&mut self.blocks[b], h);
    }

    /// Insert many keys, prefetching each key's cache line a few keys ahead: building a filter
    /// of 250 M keys is bound by memory latency, and this keeps several misses in flight.
    pub(crate) fn inserter(&mut self) -> Inserter<'_> {
        Inserter {
            bloom: self,
            ring: [(0, 0); AHEAD],
            n: 0,
        }
    }

    /// Stops at the first clear bit. (A branch-free test of all eight words measured twice as
    /// slow here: more work waits on the cache miss, so fewer lookups overlap.)
    #[inline]
    pub fn may_contain(&self, key: u64) -> bool {
        let (b, mut h) = self.locate(key);
        let block = &self.blocks[b].0;
        for _ in 0..K {
            let bit = (h & 511) as usize;
            if block[bit / 64] & (1 << (bit % 64)) == 0 {
                return false;
            }
            h = h.rotate_right(9);
        }
        true
    }

    pub fn memory_bytes(&self) -> usize {
        self.blocks.len() * std::mem::size_of::<Block>()
    }
}

const AHEAD: usize = 16;

pub(crate) struct Inserter<'a> {
    bloom: &'a mut BlockedBloom,
    ring: [(usize, u64); AHEAD],
    n: usize,
}

impl Inserter<'_> {
    #[inline]
    pub fn push(&mut self, key: u64) {
        let (b, h) = self.bloom.locate(key);
        prefetch(&self.bloom.blocks[b]);
        let slot = &mut self.ring[self.n % AHEAD];
        if self.n >= AHEAD {
            BlockedBloom::set_bits(&mut self.bloom.blocks[slot.0], slot.1);
        }
        *slot = (b, h);
        self.n += 1;
    }
}

impl Drop for Inserter<'_> {
    fn drop(&mut self) {
        for i in self.n.saturating_sub(AHEAD)..self.n {
            let (b, h) = self.ring[i % AHEAD];
            BlockedBloom::set_bits(&mut self.bloom.blocks[b], h);
        }
    }
}

#[inline]
fn prefetch(b: &Block) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch hint on a valid reference; it never faults.
    unsafe {
        std::arch::x86_64::_mm_prefetch(
            b as *const Block as *const i8,
            std::arch::x86_64::_MM_HINT_T0,
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = b;
}

/// The core's list structure: bloom prefilter + sorted, deduplicated `u64`s.
pub struct BloomSortedSet {
    bloom: BlockedBloom,
    sorted: Box<[u64]>,
}

impl BloomSortedSet {
    pub fn from_numbers(mut numbers: Vec<u64>) -> Self {
        numbers.sort_unstable();
        numbers.dedup();
        let mut bloom = BlockedBloom::with_capacity(numbers.len());
        let mut ins = bloom.inserter();
        for &n in &numbers {
            ins.push(n);
        }
        drop(ins);
        BloomSortedSet {
            bloom,
            sorted: numbers.into_boxed_slice(),
        }
    }
}

impl NumberSet for BloomSortedSet {
    #[inline]
    fn contains(&self, n: E164) -> bool {
        let k = n.as_u64();
        self.bloom.may_contain(k) && self.sorted.binary_search(&k).is_ok()
    }
    fn len(&self) -> usize {
        self.sorted.len()
    }
    fn memory_bytes(&self) -> usize {
        self.bloom.memory_bytes() + self.sorted.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn answers_like_a_hashset() {
        let mut x = 12u64;
        let mut nums = Vec::new();
        for _ in 0..20_000 {
            x = mix(x);
            nums.push(12_000_000_000 + x % 8_000_000_000);
        }
        let truth: HashSet<u64> = nums.iter().copied().collect();
        let set = BloomSortedSet::from_numbers(nums);
        for q in 12_000_000_000u64..12_000_200_000 {
            assert_eq!(
                set.contains(E164::from_digits_unchecked(q)),
                truth.contains(&q)
            );
        }
        for &q in truth.iter().take(1000) {
            assert!(set.contains(E164::from_digits_unchecked(q)));
        }
    }

    #[test]
    fn bloom_false_positive_rate_is_small() {
        let mut bloom = BlockedBloom::with_capacity(100_000);
        for k in 0..100_000u64 {
            bloom.insert(12_000_000_000 + k * 7);
        }
        let fp = (0..100_000u64)
            .filter(|k| bloom.may_contain(15_000_000_000 + k))
            .count();
        assert!(fp < 2_000, "false positives: {fp}");
    }

    #[test]
    fn empty_set_contains_nothing() {
        let set = BloomSortedSet::from_numbers(vec![]);
        assert!(!set.contains(E164::from_digits_unchecked(12125550143)));
        assert_eq!(set.len(), 0);
    }
}
