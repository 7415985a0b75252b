//! The registry-scale list structures, specified against a `HashSet`: exact answers for random
//! sets (boundaries included), snapshot round trips, change lists, corrupt files refused.

use callgate::lists::compact::{CompactSet, SetBuilder};
use callgate::lists::compile::{compile, CompileSpec};
use callgate::lists::snapshot::{self, SnapshotMeta};
use callgate::lists::{ListKind, ListSet, LoadedList, NumberSet};
use callgate::number::E164;
use proptest::prelude::*;
use std::collections::HashSet;
use std::io::Write;

/// NANP numbers biased to the edges: NPA/NXX 200 and 999, suffixes 0000 and 9999, plus a few
/// numbers outside the block space (international, or +1 with an NXX below 200).
fn number() -> impl Strategy<Value = u64> {
    let edge3 = prop_oneof![Just(200u64), Just(201), Just(998), Just(999), 200u64..=999];
    let suffix = prop_oneof![Just(0u64), Just(1), Just(9998), Just(9999), 0u64..10_000];
    prop_oneof![
        8 => (edge3.clone(), edge3, suffix)
            .prop_map(|(npa, nxx, s)| 10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + s),
        1 => 440_000_000_000u64..449_999_999_999,
        1 => (200u64..=999, 0u64..200, 0u64..10_000)
            .prop_map(|(npa, nxx, s)| 10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + s),
    ]
}

/// A set with a few dense blocks (bitmap containers) among sparse ones (array containers).
fn numbers() -> impl Strategy<Value = Vec<u64>> {
    (
        prop::collection::vec(number(), 0..400),
        prop::collection::vec((200u64..=999, 200u64..=999, 600usize..1500), 0..3),
    )
        .prop_map(|(mut v, dense)| {
            for (npa, nxx, n) in dense {
                let base = 10_000_000_000 + npa * 10_000_000 + nxx * 10_000;
                v.extend((0..n as u64).map(|i| base + (i * 7919) % 10_000));
            }
            v
        })
}

fn build(v: &[u64]) -> CompactSet {
    v.iter().copied().collect::<SetBuilder>().build()
}

fn queries(v: &[u64], extra: &[u64]) -> Vec<u64> {
    v.iter()
        .flat_map(|&n| [n.saturating_sub(1), n, n + 1])
        .chain(extra.iter().copied())
        .collect()
}

fn meta(id: &str, entries: u64) -> SnapshotMeta {
    SnapshotMeta {
        id: id.into(),
        kind: ListKind::National,
        state: None,
        source_date: Some("2026-11-20".into()),
        created: chrono::Utc::now(),
        entries,
        sources: vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compact_set_answers_like_a_hashset(v in numbers(), extra in prop::collection::vec(number(), 0..200)) {
        let truth: HashSet<u64> = v.iter().copied().collect();
        let set = build(&v);
        prop_assert_eq!(set.len(), truth.len());
        for q in queries(&v, &extra) {
            prop_assert_eq!(set.contains(E164::from_digits_unchecked(q)), truth.contains(&q), "query {}", q);
        }
        let mut sorted: Vec<u64> = truth.into_iter().collect();
        sorted.sort_unstable();
        prop_assert_eq!(set.to_sorted_vec(), sorted);
    }

    #[test]
    fn several_lists_one_lookup_names_every_list_that_matched(
        a in numbers(), b in numbers(), c in prop::collection::vec(number(), 0..50),
        extra in prop::collection::vec(number(), 0..200),
    ) {
        let sets = [&a, &b, &c];
        let truths: Vec<HashSet<u64>> = sets.iter().map(|v| v.iter().copied().collect()).collect();
        let lists = ListSet::new(1, sets.iter().enumerate()
            .map(|(i, v)| LoadedList::in_memory(&format!("l{i}"), ListKind::Custom, build(v)))
            .collect(), vec![]);
        let all: Vec<u64> = a.iter().chain(&b).chain(&c).copied().collect();
        for q in queries(&all, &extra) {
            let want = truths.iter().enumerate()
                .fold(0u64, |m, (i, t)| if t.contains(&q) { m | 1 << i } else { m });
            prop_assert_eq!(lists.lookup(E164::from_digits_unchecked(q)), want, "query {}", q);
        }
    }

    #[test]
    fn snapshot_round_trip(v in numbers()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.cgsnap");
        let set = build(&v);
        let sum = snapshot::write(&path, &meta("national", set.len() as u64), &set).unwrap();
        let back = snapshot::read(&path).unwrap();
        prop_assert_eq!(back.sha256, sum);
        prop_assert_eq!(back.meta.id, "national");
        prop_assert_eq!(back.set.to_sorted_vec(), set.to_sorted_vec());
        prop_assert_eq!(back.set.words(), set.words());
    }

    #[test]
    fn base_plus_change_list_equals_the_new_full_list(
        base in numbers(),
        ops in prop::collection::vec((number(), any::<bool>()), 0..300),
        deletes_of_members in prop::collection::vec(any::<prop::sample::Index>(), 0..100),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let nanp = |n: &u64| E164::nanp(n - 10_000_000_000).is_some() && (10_000_000_000..20_000_000_000).contains(n);
        let base: Vec<u64> = base.into_iter().filter(nanp).collect();
        let mut ops: Vec<(u64, bool)> = ops.into_iter().filter(|(n, _)| nanp(n)).collect();
        if !base.is_empty() {
            ops.extend(deletes_of_members.iter().map(|i| (base[i.index(base.len())], false)));
        }
        let mut truth: HashSet<u64> = base.iter().copied().collect();
        let mut changes = String::new();
        for (n, add) in &ops {
            if *add { truth.insert(*n); } else { truth.remove(n); }
            changes.push_str(&format!("{},2026-11-20,{}\n", n - 10_000_000_000, if *add { 'A' } else { 'D' }));
        }
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::File::create(&p).unwrap().write_all(text.as_bytes()).unwrap();
            p
        };
        let lines = |v: &mut dyn Iterator<Item = u64>| v.map(|n| format!("{}\n", n - 10_000_000_000)).collect::<String>();
        let base_txt = write("base.txt", &lines(&mut base.iter().copied()));
        let changes_txt = write("changes.txt", &changes);
        let new_txt = write("new.txt", &lines(&mut truth.iter().copied()));
        let spec = |full: Vec<std::path::PathBuf>, base: Option<std::path::PathBuf>, changes: Vec<std::path::PathBuf>| CompileSpec {
            id: Some("national".into()), kind: Some(ListKind::National), state: None, source_date: None,
            base, full, changes,
        };
        let now = chrono::Utc::now();
        let (m0, s0) = compile(&spec(vec![base_txt], None, vec![]), now).unwrap();
        let base_snap = dir.path().join("base.cgsnap");
        snapshot::write(&base_snap, &m0, &s0).unwrap();
        let (_, applied) = compile(&spec(vec![], Some(base_snap), vec![changes_txt]), now).unwrap();
        let (_, fresh) = compile(&spec(vec![new_txt], None, vec![]), now).unwrap();
        prop_assert_eq!(applied.words(), fresh.words());
    }

    #[test]
    fn a_damaged_snapshot_is_refused(v in numbers(), at in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.cgsnap");
        let set = build(&v);
        snapshot::write(&path, &meta("national", set.len() as u64), &set).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i); } else { bytes[i] ^= flip; }
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(snapshot::read(&path).is_err());
    }
}

#[test]
fn truncated_snapshot_error_names_the_file_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("national.cgsnap");
    let set = build(&[12125550143]);
    snapshot::write(&path, &meta("national", 1), &set).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 8).unwrap();
    let e = snapshot::read(&path).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!("{}: truncated or padded", path.display())),
        "{e}"
    );
}

#[test]
fn dense_blocks_cost_under_three_bits_per_number() {
    // 5,000 numbers in each of 100 blocks: bitmaps, 1,250 bytes per block.
    let v: Vec<u64> = (0..100u64)
        .flat_map(|b| (0..5000u64).map(move |i| 12_000_000_000 + (200 + b) * 10_000 + i * 2))
        .collect();
    let set = build(&v);
    let index_bytes = (callgate::lists::compact::BLOCKS + 1) * 4;
    let data_bytes = set.memory_bytes() - index_bytes;
    assert!(
        data_bytes * 8 / v.len() < 3,
        "{} bytes for {} numbers",
        data_bytes,
        v.len()
    );
}
