//! Deciding a call does not allocate: a counting global allocator around `Policy::decide`
//! with every rule on (hours in two zones, consent, caps, state lists, wireless).

use callgate::lists::OptOuts;
use callgate::number::{Called, E164};
use callgate::policy::context::CallerId;
#[path = "support/all_rules.rs"]
mod all_rules;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn deciding_allocates_nothing() {
    let (policy, lists, state) = all_rules::fixture();
    let dir = tempfile::tempdir().unwrap();
    let optouts = OptOuts::open(&dir.path().join("o.jsonl"), callgate::clock::system()).unwrap();
    let caller = CallerId::Number(all_rules::CALLER_ID.parse().unwrap());
    // Allowed (wireless + PEWC, FL and GA rules, 850 in two zones), registry hit exempted by
    // consent, state-list hit, outside hours (with Retry-After computed).
    let cases = [
        (
            all_rules::WIRELESS_WITH_PEWC,
            "2026-11-24T16:00:00Z",
            "allowed",
        ),
        (
            all_rules::ON_NATIONAL_WITH_PEWC,
            "2026-11-24T16:00:00Z",
            "allowed",
        ),
        (
            all_rules::ON_FLORIDA_LIST,
            "2026-11-24T16:00:00Z",
            "blocked",
        ),
        (
            all_rules::WIRELESS_WITH_PEWC,
            "2026-11-24T12:00:00Z",
            "blocked",
        ),
    ];
    for (number, at, verdict) in cases {
        let n: E164 = number.parse().unwrap();
        let at = at.parse().unwrap();
        let ctx = policy.campaigns.classify(None, None, None, caller);
        let snapshot = lists.clone();
        let before = ALLOCS.load(Ordering::Relaxed);
        let d = policy.decide(
            ctx,
            Ok(Called::Number(n)),
            callgate::policy::Against {
                lists: snapshot,
                optouts: &optouts,
                state: &state,
                now: at,
            },
            false,
        );
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(d.verdict.as_str(), verdict, "{number} at {at}");
        assert_eq!(allocs, 0, "{number} at {at}: {allocs} allocations");
    }
}
