//! Deadlines in a min-heap, so that the once-a-second sweep finds what is due without scanning
//! every open call and transaction (issue 25: a sweep at 100,000 open calls cost the SIP thread
//! a full walk of both maps each second). Removal is lazy: a changed deadline is pushed anew and
//! the owner, when an entry comes due, checks it against the deadline it holds now, so the heap
//! holds at most the live deadlines plus those superseded within the longest horizon.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::Instant;

pub(super) struct Deadlines<K> {
    heap: Mutex<BinaryHeap<Reverse<(Instant, K)>>>,
}

impl<K: Ord + Copy> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: Mutex::new(BinaryHeap::new()),
        }
    }
}

impl<K: Ord + Copy> Deadlines<K> {
    pub(super) fn push(&self, at: Instant, key: K) {
        self.lock().push(Reverse((at, key)));
    }

    /// Take out the entries due at `now`, earliest first. The lock is released before the
    /// caller looks at its maps (no lock order to keep with them).
    pub(super) fn due(&self, now: Instant) -> Vec<(Instant, K)> {
        let mut heap = self.lock();
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            out.push((at, key));
        }
        out
    }

    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<(Instant, K)>>> {
        // A panic elsewhere aborts the process; a poisoned heap is still a valid heap.
        self.heap.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_what_is_due_comes_out_earliest_first() {
        let d = Deadlines::default();
        let t = Instant::now();
        d.push(t + Duration::from_secs(3), 3u64);
        d.push(t + Duration::from_secs(1), 1);
        d.push(t + Duration::from_secs(2), 2);
        let due: Vec<u64> = d
            .due(t + Duration::from_secs(2))
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(due, [1, 2]);
        assert!(d.due(t + Duration::from_secs(2)).is_empty());
        assert_eq!(d.due(t + Duration::from_secs(9)).len(), 1);
    }
}
