//! Decisions made at once by several SIP workers: a frequency cap is counted and taken in one
//! step, so its last slot goes to one call.

use callgate::config::Config;
use callgate::lists::compact::SetBuilder;
use callgate::lists::{ListKind, ListSet, LoadedList, OptOuts};
use callgate::number::{Called, E164};
use callgate::policy::context::CallerId;
use callgate::policy::{Against, Policy, PolicyState};
use std::sync::{Arc, Barrier};

const NUMBERS: u64 = 300;
/// Florida's cap (config/rules.toml, FL_OK_MD.cap_24h): 3 calls per rolling 24 hours.
const FLORIDA_CAP: usize = 3;

#[test]
fn two_workers_deciding_calls_to_one_number_at_once_allow_no_more_than_its_cap() {
    let cfg = Config::from_str_named(
        "race.toml",
        "[[campaign]]\nid = \"default\"\nseller = \"Acme\"\nmethod = \"manual\"\n",
    )
    .unwrap();
    let policy = Arc::new(Policy::new(&cfg).unwrap());
    let state = Arc::new(PolicyState::in_memory());
    let dir = tempfile::tempdir().unwrap();
    let optouts =
        Arc::new(OptOuts::open(&dir.path().join("o.jsonl"), callgate::clock::system()).unwrap());
    let national = LoadedList::in_memory("national", ListKind::National, SetBuilder::new().build());
    let lists = Arc::new(ListSet::new(1, vec![national], vec![]));
    let caller = CallerId::Number("+12025550100".parse().unwrap());
    // 11:00 in Miami: inside Florida's hours.
    let now: chrono::DateTime<chrono::Utc> = "2026-11-24T16:00:00Z".parse().unwrap();
    let workers = 2;
    let start = Arc::new(Barrier::new(workers));
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let (policy, state, optouts, lists, start) = (
                policy.clone(),
                state.clone(),
                optouts.clone(),
                lists.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut allowed = vec![0usize; NUMBERS as usize];
                // Each worker places the cap's worth of calls to every number, all at once.
                for i in 0..NUMBERS {
                    for _ in 0..FLORIDA_CAP {
                        let n: E164 = format!("+1305555{i:04}").parse().unwrap();
                        let ctx = policy.campaigns.classify(None, None, None, caller);
                        let at = Against {
                            lists: lists.clone(),
                            optouts: &optouts,
                            state: &state,
                            now,
                        };
                        let d = policy.decide(ctx, Ok(Called::Number(n)), at, true);
                        let why: Vec<_> = d.reasons.iter().map(|r| r.code()).collect();
                        match why.as_slice() {
                            [] => allowed[i as usize] += 1,
                            ["frequency_cap"] => {}
                            other => panic!("{n}: blocked for {other:?}"),
                        }
                    }
                }
                allowed
            })
        })
        .collect();
    let per_worker: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for i in 0..NUMBERS as usize {
        let total: usize = per_worker.iter().map(|w| w[i]).sum();
        assert_eq!(total, FLORIDA_CAP, "+1305555{i:04}: {total} calls allowed");
    }
}
