//! Deciding a call does not allocate: a counting global allocator around `Policy::decide`
//! with every rule on (hours in two zones, consent, caps, state lists, wireless).

use callgate::config::Config;
use callgate::lists::compact::SetBuilder;
use callgate::lists::{ListKind, ListSet, LoadedList, OptOuts};
use callgate::policy::consent::ConsentInput;
use callgate::policy::context::CallerId;
use callgate::policy::normalize::{Called, E164};
use callgate::policy::{Policy, PolicyState};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    let cfg = Config::from_str_named(
        "t.toml",
        "[[campaign]]\nid = \"default\"\nseller = \"Acme\"\nmethod = \"autodialed\"\n",
    )
    .unwrap();
    let policy = Policy::new(&cfg).unwrap();
    let set = |ns: &[u64]| {
        let mut b = SetBuilder::new();
        ns.iter().for_each(|n| b.insert(*n));
        b.build()
    };
    let mut fl = LoadedList::in_memory("fl", ListKind::State, set(&[18505550111]));
    fl.meta.state_code = callgate::policy::geo::State::parse("FL");
    let lists = Arc::new(ListSet::new(
        1,
        vec![
            LoadedList::in_memory("national", ListKind::National, set(&[18505550143])),
            fl,
            LoadedList::in_memory("wireless", ListKind::Wireless, set(&[18505550100])),
        ],
        vec![],
    ));
    let dir = tempfile::tempdir().unwrap();
    let optouts = OptOuts::open(&dir.path().join("o.jsonl"), callgate::clock::system()).unwrap();
    let state = PolicyState::in_memory();
    for n in ["+18505550100", "+18505550143"] {
        state
            .consent
            .add(
                vec![ConsentInput {
                    number: n.into(),
                    kind: "pewc".into(),
                    seller: Some("Acme".into()),
                    campaign: None,
                    captured: "2026-01-01".into(),
                    expires: None,
                    evidence: None,
                    address_state: Some("GA".into()),
                    time_zone: None,
                }],
                chrono::Utc::now(),
            )
            .unwrap();
    }
    let caller = CallerId::Number("+12025550100".parse().unwrap());
    // Allowed (wireless + PEWC, FL and GA rules, 850 in two zones), registry hit exempted by
    // consent, state-list hit, outside hours (with Retry-After computed).
    let cases = [
        ("+18505550100", "2026-11-24T16:00:00Z", "allowed"),
        ("+18505550143", "2026-11-24T16:00:00Z", "allowed"),
        ("+18505550111", "2026-11-24T16:00:00Z", "blocked"),
        ("+18505550100", "2026-11-24T12:00:00Z", "blocked"),
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
            snapshot,
            &optouts,
            &state,
            at,
            false,
        );
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(d.verdict.as_str(), verdict, "{number} at {at}");
        assert_eq!(allocs, 0, "{number} at {at}: {allocs} allocations");
    }
}
