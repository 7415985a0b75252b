//! The registry-scale list structures, measured.
//!
//!     cargo bench --bench lists                         # 2 M synthetic numbers (quick)
//!     CALLGATE_BENCH_NUMBERS=250000000 cargo bench --bench lists
//!     CALLGATE_BENCH_SNAPSHOT=/path/national.cgsnap cargo bench --bench lists
//!
//! Queries are random and precomputed (1 M of each kind): hits are random members; "miss in a
//! populated block" is a random non-member from a block that holds numbers (the hard case, what
//! a dialer calling real assigned numbers mostly asks); "miss, any NANP number" is uniform over
//! NPA/NXX 200-999. The multi-list case loads the national list plus 11 state lists, an internal
//! list and a litigator list, as a nationwide call centre would. Alternatives measured side by
//! side: a 12 bits/key blocked bloom probe (the prefilter the core used), and (below 30 M) the
//! core's bloom + sorted-u64 set.

use callgate::clock::{OffsetClock, SharedClock};
use callgate::lists::compact::{self, CompactSet, SetBuilder, BITMAP_LEN, BLOCKS};
use callgate::lists::set::{BlockedBloom, BloomSortedSet, NumberSet};
use callgate::lists::synth::{self, Sink, Spec};
use callgate::lists::{snapshot, ListKind, ListSet, LoadedList, OptOuts};
use callgate::number::{Called, E164};
use callgate::policy::Policy;
use criterion::{black_box, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn huge_pages() -> String {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("AnonHugePages"))
        .unwrap_or("?")
        .to_string()
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut x = self.0;
        x = (x ^ (x >> 31)).wrapping_mul(0xbf58476d1ce4e5b9);
        x ^ (x >> 29)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
}

struct Build(SetBuilder);
impl Sink for Build {
    fn full(&mut self, national: u64) -> std::io::Result<()> {
        self.0.insert(10_000_000_000 + national);
        Ok(())
    }
}

fn national() -> (CompactSet, String) {
    if let Ok(p) = std::env::var("CALLGATE_BENCH_SNAPSHOT") {
        let t = Instant::now();
        let s = snapshot::read(p.as_ref()).expect("snapshot");
        return (
            s.set,
            format!("snapshot {p} loaded in {:.2} s", t.elapsed().as_secs_f64()),
        );
    }
    let n: u64 = std::env::var("CALLGATE_BENCH_NUMBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let t = Instant::now();
    let mut b = Build(SetBuilder::new());
    synth::generate(
        &Spec {
            count: n,
            seed: 1,
            changes: 0,
        },
        &mut b,
    )
    .unwrap();
    let set = b.0.build();
    (
        set,
        format!(
            "synthetic, seed 1, built in {:.1} s",
            t.elapsed().as_secs_f64()
        ),
    )
}

/// A random member of a random populated block (weighted by blocks, not numbers: close enough
/// for random access), or a random non-member of such a block.
fn sample(set: &CompactSet, populated: &[u32], rng: &mut Rng, member: bool) -> u64 {
    loop {
        let b = populated[rng.below(populated.len() as u64) as usize] as usize;
        let c = set.block(b);
        if member {
            let s = if c.len() == BITMAP_LEN {
                let s = rng.below(10_000) as u16;
                if c[s as usize / 16] >> (s % 16) & 1 == 0 {
                    continue;
                }
                s
            } else {
                c[rng.below(c.len() as u64) as usize]
            };
            return compact::join(b, s);
        }
        let s = rng.below(10_000) as u16;
        if !set.block_contains(b, s) {
            return compact::join(b, s);
        }
    }
}

fn cycle(c: &mut Criterion, name: &str, queries: &[u64], f: impl Fn(u64) -> bool) {
    c.bench_function(name, |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & (queries.len() - 1);
            black_box(f(black_box(queries[i])))
        })
    });
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    let rss0 = rss_bytes();
    let (set, origin) = national();
    let rss1 = rss_bytes();
    let n = set.len();
    eprintln!(
        "national list: {n} numbers ({origin}); structure {} bytes ({:.2} bits/number); process RSS grew {} MB",
        set.memory_bytes(),
        set.memory_bytes() as f64 * 8.0 / n as f64,
        (rss1.saturating_sub(rss0)) >> 20
    );
    eprintln!("huge pages in use: {}", huge_pages());
    let populated: Vec<u32> = (0..BLOCKS)
        .filter(|&b| !set.block_is_empty(b))
        .map(|b| b as u32)
        .collect();
    let bitmaps = populated
        .iter()
        .filter(|&&b| set.block(b as usize).len() == BITMAP_LEN)
        .count();
    eprintln!(
        "populated blocks: {} ({} bitmaps, {} arrays)",
        populated.len(),
        bitmaps,
        populated.len() - bitmaps
    );
    let q = 1 << 20;
    let mut rng = Rng(42);
    let hits: Vec<u64> = (0..q)
        .map(|_| sample(&set, &populated, &mut rng, true))
        .collect();
    let misses: Vec<u64> = (0..q)
        .map(|_| sample(&set, &populated, &mut rng, false))
        .collect();
    let uniform: Vec<u64> = (0..q)
        .map(|_| {
            10_000_000_000
                + (200 + rng.below(800)) * 10_000_000
                + (200 + rng.below(800)) * 10_000
                + rng.below(10_000)
        })
        .collect();

    let set = Arc::new(set);
    cycle(&mut c, "national/hit", &hits, |x| {
        set.contains(E164::from_digits_unchecked(x))
    });
    cycle(&mut c, "national/miss_in_populated_block", &misses, |x| {
        set.contains(E164::from_digits_unchecked(x))
    });
    cycle(&mut c, "national/miss_any_nanp_number", &uniform, |x| {
        set.contains(E164::from_digits_unchecked(x))
    });

    // The other lists of a nationwide call centre: 11 state lists, each holding numbers of its
    // own state's area codes (3% of the national list's numbers there, a fifth of them not on
    // the national list), an internal list and a litigator list.
    let t = Instant::now();
    let mut lists = vec![LoadedList {
        meta: LoadedList::in_memory("national", ListKind::National, SetBuilder::new().build()).meta,
        set: set.clone(),
    }];
    let npa_states = synth::us_geographic_npa_states();
    for (i, st) in [
        "CO", "FL", "IN", "LA", "MA", "MO", "OK", "PA", "TN", "TX", "WY",
    ]
    .iter()
    .enumerate()
    {
        let npas: Vec<u64> = npa_states
            .iter()
            .filter(|(_, s)| s == st)
            .map(|(n, _)| *n as u64)
            .collect();
        let blocks: Vec<u32> = populated
            .iter()
            .copied()
            .filter(|&b| npas.contains(&(b as u64 / 800 + 200)))
            .collect();
        let in_state: u64 = blocks
            .iter()
            .map(|&b| compact::suffixes(set.block(b as usize)).count() as u64)
            .sum();
        let k = (in_state * 3 / 100).max(100);
        let mut r = Rng(100 + i as u64);
        let b: SetBuilder = (0..k)
            .map(|j| {
                if j % 5 == 0 {
                    sample(&set, &blocks, &mut r, false)
                } else {
                    sample(&set, &blocks, &mut r, true)
                }
            })
            .collect();
        lists.push(LoadedList::in_memory(
            &format!("state-{st}"),
            ListKind::State,
            b.build(),
        ));
    }
    let mut r = Rng(7);
    lists.push(LoadedList::in_memory(
        "internal",
        ListKind::Internal,
        (0..20_000)
            .map(|_| sample(&set, &populated, &mut r, false))
            .collect::<SetBuilder>()
            .build(),
    ));
    lists.push(LoadedList::in_memory(
        "litigators",
        ListKind::Custom,
        (0..50_000)
            .map(|_| sample(&set, &populated, &mut r, true))
            .collect::<SetBuilder>()
            .build(),
    ));
    let total: usize = lists.iter().map(|l| l.set.memory_bytes()).sum();
    let entries: usize = lists.iter().map(|l| l.set.len()).sum();
    eprintln!(
        "14 lists: {entries} entries, {} MB of exact structures, built in {:.1} s",
        total >> 20,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let rss_before = rss_bytes();
    let listset = Arc::new(ListSet::new(1, lists, vec![]));
    eprintln!(
        "prefilter (bloom over the union + block masks): {} MB, built in {:.1} s; process RSS now {} MB (grew {} MB)",
        listset.prefilter_bytes() >> 20,
        t.elapsed().as_secs_f64(),
        rss_bytes() >> 20,
        rss_bytes().saturating_sub(rss_before) >> 20
    );
    eprintln!("huge pages in use: {}", huge_pages());
    for (name, qs) in [
        ("misses in populated blocks", &misses),
        ("any NANP numbers", &uniform),
    ] {
        let fp = qs
            .iter()
            .filter(|&&x| {
                listset.prefilter_maybe(E164::from_digits_unchecked(x))
                    && listset.lookup(E164::from_digits_unchecked(x)) == 0
            })
            .count();
        let neg = qs
            .iter()
            .filter(|&&x| listset.lookup(E164::from_digits_unchecked(x)) == 0)
            .count();
        eprintln!(
            "prefilter false positives on {name}: {:.2}%",
            100.0 * fp as f64 / neg.max(1) as f64
        );
    }
    cycle(&mut c, "14_lists/miss_in_populated_block", &misses, |x| {
        listset.lookup(E164::from_digits_unchecked(x)) != 0
    });
    cycle(&mut c, "14_lists/miss_any_nanp_number", &uniform, |x| {
        listset.lookup(E164::from_digits_unchecked(x)) != 0
    });
    cycle(&mut c, "14_lists/hit", &hits, |x| {
        listset.lookup(E164::from_digits_unchecked(x)) != 0
    });

    // The whole-call decision: every list, the opt-out set, freshness and fail-closed checks.
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(OffsetClock::default());
    let optouts = OptOuts::open(&dir.path().join("optouts.jsonl"), clock.clone()).unwrap();
    let policy = Policy::new(&Default::default()).unwrap();
    let state = callgate::policy::PolicyState::in_memory();
    let now = clock.now();
    for (name, qs) in [
        ("decision/all_lists_miss", &misses),
        ("decision/all_lists_hit", &hits),
    ] {
        let ls = listset.clone();
        cycle(&mut c, name, qs, |x| {
            let ctx = policy.campaigns.classify(
                None,
                None,
                None,
                callgate::policy::context::CallerId::Number(E164::from_digits_unchecked(
                    12025550100,
                )),
            );
            let d = policy.decide(
                ctx,
                Ok(Called::Number(E164::from_digits_unchecked(x))),
                callgate::policy::Against {
                    lists: ls.clone(),
                    optouts: &optouts,
                    state: &state,
                    now,
                },
                false,
            );
            d.list_hits != 0
        });
    }

    // Alternatives, side by side on the same queries.
    let t = Instant::now();
    let mut bloom = BlockedBloom::with_bits_per_key(n, 12);
    for b in &populated {
        for s in compact::suffixes(set.block(*b as usize)) {
            bloom.insert(compact::join(*b as usize, s));
        }
    }
    eprintln!(
        "alternative blocked bloom (12 bits/key): {} MB, built in {:.1} s",
        bloom.memory_bytes() >> 20,
        t.elapsed().as_secs_f64()
    );
    cycle(
        &mut c,
        "alternative/blocked_bloom_probe_miss",
        &misses,
        |x| bloom.may_contain(x),
    );
    cycle(
        &mut c,
        "alternative/blocked_bloom_probe_any_nanp_number",
        &uniform,
        |x| bloom.may_contain(x),
    );
    drop(bloom);
    if n <= 30_000_000 {
        let core = BloomSortedSet::from_numbers(set.to_sorted_vec());
        eprintln!(
            "alternative core set (bloom + sorted u64): {} MB",
            core.memory_bytes() >> 20
        );
        cycle(&mut c, "alternative/core_bloom_sorted_hit", &hits, |x| {
            core.contains(E164::from_digits_unchecked(x))
        });
        cycle(&mut c, "alternative/core_bloom_sorted_miss", &misses, |x| {
            core.contains(E164::from_digits_unchecked(x))
        });
    }
    c.final_summary();
}
