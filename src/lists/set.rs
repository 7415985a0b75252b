//! The number-set structures behind the `NumberSet` trait: a blocked bloom filter (one cache
//! line per probe) in front of a sorted array searched exactly. The filter may say "maybe"; only
//! the exact set can say "yes", so a false positive costs a binary search, never a wrong block.

use crate::policy::normalize::E164;

/// A set of numbers. Issue "registry scale" swaps the implementation, not the callers.
pub trait NumberSet: Send + Sync {
    fn contains(&self, n: E164) -> bool;
    fn len(&self) -> usize;
    /// Heap bytes held, for the `callgate_list_memory_bytes` gauge.
    fn memory_bytes(&self) -> usize;
}

/// 512-bit blocks; each key sets `K` bits inside one block.
const BLOCK_WORDS: usize = 8;
const K: u32 = 6;
const BITS_PER_KEY: usize = 12;

pub struct BlockedBloom {
    blocks: Vec<[u64; BLOCK_WORDS]>,
}

#[inline]
fn mix(mut x: u64) -> u64 {
    // splitmix64 finalizer: numbers are dense and sequential, so they need a real mix.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

impl BlockedBloom {
    pub fn with_capacity(n: usize) -> Self {
        let bits = (n.max(1) * BITS_PER_KEY).next_power_of_two();
        let blocks = (bits / (BLOCK_WORDS * 64)).max(1);
        BlockedBloom {
            blocks: vec![[0u64; BLOCK_WORDS]; blocks],
        }
    }

    #[inline]
    fn locate(&self, key: u64) -> (usize, u64) {
        let h = mix(key);
        // High bits pick the block (fast range reduction); low bits pick the bits within it.
        let block = (((h >> 32) * self.blocks.len() as u64) >> 32) as usize;
        (block, h)
    }

    pub fn insert(&mut self, key: u64) {
        let (b, mut h) = self.locate(key);
        let block = &mut self.blocks[b];
        for _ in 0..K {
            let bit = (h & 511) as usize;
            block[bit / 64] |= 1 << (bit % 64);
            h = h.rotate_right(9);
        }
    }

    #[inline]
    pub fn may_contain(&self, key: u64) -> bool {
        let (b, mut h) = self.locate(key);
        let block = &self.blocks[b];
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
        self.blocks.len() * BLOCK_WORDS * 8
    }
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
        for &n in &numbers {
            bloom.insert(n);
        }
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
