//! The exact number set, sized for the whole National DNC Registry.
//!
//! A NANP number is `NPA-NXX-XXXX`; both NPA and NXX run 200..=999, so there are 640,000
//! "blocks" of 10,000 numbers. Real registrations cluster in assigned blocks, so each block is
//! stored the way Roaring bitmaps store a chunk: empty, a sorted array of `u16` suffixes when
//! it holds fewer than 625 numbers, or a 10,000-bit bitmap (1,250 bytes) when that is smaller.
//! A dense block then costs under 3 bits per number and is probed with one memory access;
//! numbers outside the block space (non-NANP lists) sit in a sorted side array.
//!
//! The whole set lives in one `u64` buffer in its on-disk layout, so a snapshot file is loaded
//! with a single read and used in place (no second copy: a reload peaks at old + new).
//!
//! Body layout, in little-endian `u64` words:
//! ```text
//! [0] BLOCKS  [1] data_len (u16 units)  [2] other_len  [3] entries
//! index:  BLOCKS + 1 u32 offsets into data (padded to a word)
//! data:   data_len u16 (arrays and bitmaps, block after block; padded to a word)
//! other:  other_len u64, sorted (numbers outside the NANP block space)
//! ```

use super::mem::HugeBuf;
use super::set::NumberSet;
use crate::number::E164;

#[cfg(not(target_endian = "little"))]
compile_error!("the snapshot layout is little-endian; big-endian hosts are not supported");

pub(crate) const NPA_MIN: u64 = 200;
pub const BLOCKS: usize = 800 * 800;
/// A bitmap container: 10,000 bits in `u16` words. Arrays are always shorter.
pub const BITMAP_LEN: usize = 625;
const HEADER_WORDS: usize = 4;
const BUILD_WORDS: usize = 157; // 10,048 bits >= 10,000

/// Block id and 4-digit suffix of a NANP E.164 number, if it lies in the block space.
#[inline]
pub fn split(e164: u64) -> Option<(usize, u16)> {
    let national = e164.wrapping_sub(10_000_000_000);
    if national >= 10_000_000_000 {
        return None;
    }
    let npa = national / 10_000_000;
    let nxx = (national / 10_000) % 1000;
    if npa < NPA_MIN || nxx < NPA_MIN {
        return None;
    }
    let block = ((npa - NPA_MIN) * 800 + (nxx - NPA_MIN)) as usize;
    Some((block, (national % 10_000) as u16))
}

/// Inverse of `split`.
#[inline]
pub fn join(block: usize, suffix: u16) -> u64 {
    let npa = block as u64 / 800 + NPA_MIN;
    let nxx = block as u64 % 800 + NPA_MIN;
    10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + suffix as u64
}

/// Structural problems found when validating a loaded body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    #[error("body is truncated: need {need} words, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("body declares {0} blocks, this build knows {BLOCKS}")]
    Blocks(u64),
    #[error("block index is not monotonic at block {0}")]
    Index(usize),
    #[error("block {0}: suffixes not strictly increasing or out of range")]
    Container(usize),
    #[error("side array not strictly increasing or holds a block-space number")]
    Other,
    #[error("declares {declared} entries, holds {actual}")]
    Count { declared: u64, actual: u64 },
    #[error("body has {0} trailing words")]
    Trailing(usize),
}

pub struct CompactSet {
    words: HugeBuf<u64>,
    index_at: usize,
    data_at: usize,
    data_len: usize,
    other_at: usize,
    other_len: usize,
    entries: usize,
}

fn index_words() -> usize {
    (BLOCKS + 1).div_ceil(2)
}

impl CompactSet {
    /// Adopt a body buffer (from a snapshot file) after checking every structural invariant the
    /// lookup relies on, so a corrupt file can never make `contains` lie or panic.
    pub(crate) fn from_words(words: HugeBuf<u64>) -> Result<CompactSet, LayoutError> {
        let have = words.len();
        if have < HEADER_WORDS {
            return Err(LayoutError::Truncated {
                need: HEADER_WORDS,
                have,
            });
        }
        if words[0] != BLOCKS as u64 {
            return Err(LayoutError::Blocks(words[0]));
        }
        let data_len = words[1] as usize;
        let other_len = words[2] as usize;
        let index_at = HEADER_WORDS;
        let data_at = index_at + index_words();
        let other_at = data_at.saturating_add(data_len.div_ceil(4));
        let need = other_at.saturating_add(other_len);
        if have < need {
            return Err(LayoutError::Truncated { need, have });
        }
        if have > need {
            return Err(LayoutError::Trailing(have - need));
        }
        let set = CompactSet {
            index_at,
            data_at,
            data_len,
            other_at,
            other_len,
            entries: words[3] as usize,
            words,
        };
        set.validate()?;
        Ok(set)
    }

    fn validate(&self) -> Result<(), LayoutError> {
        let index = self.index();
        let data = self.data();
        if index[0] != 0 || index[BLOCKS] as usize != self.data_len {
            return Err(LayoutError::Index(0));
        }
        let mut count = 0u64;
        for b in 0..BLOCKS {
            let (lo, hi) = (index[b] as usize, index[b + 1] as usize);
            // Found by fuzzing (snapshot_body): an offset past the data in mid-index, even if
            // the last one is right, must be refused before it is used to slice.
            if hi < lo || hi > self.data_len {
                return Err(LayoutError::Index(b));
            }
            let c = &data[lo..hi];
            if c.len() == BITMAP_LEN {
                // 625 x 16 = 10,000 bits exactly: no padding bits to check.
                count += c.iter().map(|w| w.count_ones() as u64).sum::<u64>();
            } else {
                if c.len() > BITMAP_LEN
                    || c.windows(2).any(|w| w[0] >= w[1])
                    || c.last().is_some_and(|&s| s >= 10_000)
                {
                    return Err(LayoutError::Container(b));
                }
                count += c.len() as u64;
            }
        }
        let other = self.other();
        if other.windows(2).any(|w| w[0] >= w[1]) || other.iter().any(|&n| split(n).is_some()) {
            return Err(LayoutError::Other);
        }
        count += other.len() as u64;
        if count != self.entries as u64 {
            return Err(LayoutError::Count {
                declared: self.entries as u64,
                actual: count,
            });
        }
        Ok(())
    }

    #[inline]
    fn index(&self) -> &[u32] {
        &bytemuck::cast_slice(&self.words[self.index_at..self.data_at])[..BLOCKS + 1]
    }

    #[inline]
    fn data(&self) -> &[u16] {
        &bytemuck::cast_slice(&self.words[self.data_at..self.other_at])[..self.data_len]
    }

    #[inline]
    fn other(&self) -> &[u64] {
        &self.words[self.other_at..self.other_at + self.other_len]
    }

    /// The container of one block: empty, a sorted suffix array, or a bitmap.
    #[inline]
    pub fn block(&self, b: usize) -> &[u16] {
        let index = self.index();
        let (lo, hi) = (index[b] as usize, index[b + 1] as usize);
        &self.data()[lo..hi]
    }

    #[inline]
    pub fn block_is_empty(&self, b: usize) -> bool {
        let index = self.index();
        index[b] == index[b + 1]
    }

    /// Exact membership of `suffix` in `block` (the prefilter has already split the number).
    #[inline]
    pub fn block_contains(&self, block: usize, suffix: u16) -> bool {
        container_contains(self.block(block), suffix)
    }

    /// Every member in the NANP block space, ascending, without allocating.
    pub(crate) fn for_each_in_blocks(&self, mut f: impl FnMut(u64)) {
        for b in 0..BLOCKS {
            let c = self.block(b);
            let base = join(b, 0);
            if c.len() == BITMAP_LEN {
                for (w, &word) in c.iter().enumerate() {
                    let mut word = word;
                    while word != 0 {
                        f(base + (w * 16) as u64 + word.trailing_zeros() as u64);
                        word &= word - 1;
                    }
                }
            } else {
                for &s in c {
                    f(base + s as u64);
                }
            }
        }
    }

    /// Members in the NANP block space (all but the side array).
    pub(crate) fn len_in_blocks(&self) -> usize {
        self.entries - self.other_len
    }

    pub(crate) fn has_other(&self) -> bool {
        self.other_len > 0
    }

    /// The body in its on-disk form.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Every member, ascending.
    pub fn to_sorted_vec(&self) -> Vec<u64> {
        let mut v: Vec<u64> = (0..BLOCKS)
            .flat_map(|b| suffixes(self.block(b)).map(move |s| join(b, s)))
            .chain(self.other().iter().copied())
            .collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn builder(&self) -> SetBuilder {
        let mut b = SetBuilder::new();
        for blk in 0..BLOCKS {
            let c = self.block(blk);
            if c.is_empty() {
                continue;
            }
            let bits = b.bits_mut(blk);
            if c.len() == BITMAP_LEN {
                bytemuck::cast_slice_mut::<u64, u16>(&mut bits[..])[..BITMAP_LEN]
                    .copy_from_slice(c);
            } else {
                for &s in c {
                    bits[s as usize / 64] |= 1 << (s % 64);
                }
            }
        }
        b.other.extend(self.other().iter().copied());
        b
    }
}

/// Iterate the suffixes of a container, ascending.
pub fn suffixes(c: &[u16]) -> Box<dyn Iterator<Item = u16> + '_> {
    if c.len() == BITMAP_LEN {
        Box::new((0..10_000u16).filter(move |&s| c[s as usize / 16] >> (s % 16) & 1 == 1))
    } else {
        Box::new(c.iter().copied())
    }
}

#[inline]
fn container_contains(c: &[u16], s: u16) -> bool {
    if c.len() == BITMAP_LEN {
        c[s as usize / 16] >> (s % 16) & 1 == 1
    } else {
        c.binary_search(&s).is_ok()
    }
}

impl NumberSet for CompactSet {
    #[inline]
    fn contains(&self, n: E164) -> bool {
        match split(n.as_u64()) {
            Some((b, s)) => container_contains(self.block(b), s),
            None => self.other().binary_search(&n.as_u64()).is_ok(),
        }
    }
    fn len(&self) -> usize {
        self.entries
    }
    fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

/// A mutable set used to compile lists and apply change lists: one lazily allocated 10,000-bit
/// bitmap per touched block, so inserts and deletes are O(1) in any order and duplicates vanish.
pub struct SetBuilder {
    blocks: Vec<Option<Box<[u64; BUILD_WORDS]>>>,
    other: std::collections::BTreeSet<u64>,
}

impl Default for SetBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SetBuilder {
    pub fn new() -> SetBuilder {
        SetBuilder {
            blocks: (0..BLOCKS).map(|_| None).collect(),
            other: Default::default(),
        }
    }

    fn bits_mut(&mut self, b: usize) -> &mut [u64; BUILD_WORDS] {
        self.blocks[b].get_or_insert_with(|| Box::new([0; BUILD_WORDS]))
    }

    pub fn insert(&mut self, e164: u64) {
        match split(e164) {
            Some((b, s)) => self.bits_mut(b)[s as usize / 64] |= 1 << (s % 64),
            None => {
                self.other.insert(e164);
            }
        }
    }

    pub fn remove(&mut self, e164: u64) {
        match split(e164) {
            Some((b, s)) => {
                if let Some(bits) = &mut self.blocks[b] {
                    bits[s as usize / 64] &= !(1 << (s % 64));
                }
            }
            None => {
                self.other.remove(&e164);
            }
        }
    }

    pub fn build(self) -> CompactSet {
        let mut counts = vec![0u32; BLOCKS];
        let mut data_len = 0usize;
        for (b, bits) in self.blocks.iter().enumerate() {
            if let Some(bits) = bits {
                let n = bits.iter().map(|w| w.count_ones()).sum::<u32>();
                counts[b] = n;
                data_len += container_len(n);
            }
        }
        assert!(
            data_len <= u32::MAX as usize,
            "set too large for u32 offsets"
        );
        let other_len = self.other.len();
        let data_at = HEADER_WORDS + index_words();
        let other_at = data_at + data_len.div_ceil(4);
        let mut words = HugeBuf::<u64>::zeroed(other_at + other_len);
        let entries = counts.iter().map(|&c| c as u64).sum::<u64>() + other_len as u64;
        words[..HEADER_WORDS].copy_from_slice(&[
            BLOCKS as u64,
            data_len as u64,
            other_len as u64,
            entries,
        ]);
        {
            let (head, rest) = words.split_at_mut(data_at);
            let index: &mut [u32] = bytemuck::cast_slice_mut(&mut head[HEADER_WORDS..]);
            let data: &mut [u16] = bytemuck::cast_slice_mut(&mut rest[..other_at - data_at]);
            let mut at = 0usize;
            for (b, bits) in self.blocks.iter().enumerate() {
                index[b] = at as u32;
                let Some(bits) = bits else { continue };
                let n = counts[b];
                let len = container_len(n);
                let out = &mut data[at..at + len];
                if len == BITMAP_LEN {
                    out.copy_from_slice(&bytemuck::cast_slice::<u64, u16>(&bits[..])[..BITMAP_LEN]);
                } else {
                    let mut i = 0;
                    for (w, &word) in bits.iter().enumerate() {
                        let mut word = word;
                        while word != 0 {
                            out[i] = (w * 64 + word.trailing_zeros() as usize) as u16;
                            i += 1;
                            word &= word - 1;
                        }
                    }
                }
                at += len;
            }
            index[BLOCKS] = at as u32;
        }
        for (slot, n) in words[other_at..].iter_mut().zip(&self.other) {
            *slot = *n;
        }
        CompactSet::from_words(words).expect("builder output is valid")
    }
}

fn container_len(n: u32) -> usize {
    if n as usize >= BITMAP_LEN {
        BITMAP_LEN
    } else {
        n as usize
    }
}

impl FromIterator<u64> for SetBuilder {
    fn from_iter<I: IntoIterator<Item = u64>>(iter: I) -> Self {
        let mut b = SetBuilder::new();
        for n in iter {
            b.insert(n);
        }
        b
    }
}
