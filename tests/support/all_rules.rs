//! A policy with every rule kind in play, shared by `tests/policy_alloc.rs` and the
//! `policy_decide_*` benchmarks: an autodialed campaign with a caller-ID set; 850 numbers
//! (Florida, two zones) with a GA address on record (both states' rules apply); a national
//! list, a Florida list and a wireless list; PEWC records for the wireless number and for the
//! registry number.
#![allow(dead_code)] // each user takes what it needs

use callgate::config::Config;
use callgate::lists::compact::SetBuilder;
use callgate::lists::{ListKind, ListSet, LoadedList};
use callgate::policy::consent::ConsentInput;
use callgate::policy::{Policy, PolicyState};
use std::sync::Arc;

pub const WIRELESS_WITH_PEWC: &str = "+18505550100";
pub const ON_NATIONAL_WITH_PEWC: &str = "+18505550143";
pub const ON_FLORIDA_LIST: &str = "+18505550111";
pub const CALLER_ID: &str = "+12025550100";

pub fn fixture() -> (Policy, Arc<ListSet>, PolicyState) {
    let cfg = Config::from_str_named(
        "all_rules.toml",
        "[[campaign]]\nid = \"default\"\nseller = \"Acme\"\nmethod = \"autodialed\"\ncaller_ids = [\"+12025550100\"]\n",
    )
    .unwrap();
    let policy = Policy::new(&cfg).unwrap();
    let set = |ns: &[u64]| {
        let mut b = SetBuilder::new();
        ns.iter().for_each(|n| b.insert(*n));
        b.build()
    };
    let mut fl = LoadedList::in_memory("fl", ListKind::State, set(&[18505550111]));
    fl.meta.state_code = callgate::number::geo::State::parse("FL");
    let lists = Arc::new(ListSet::new(
        1,
        vec![
            LoadedList::in_memory("national", ListKind::National, set(&[18505550143])),
            fl,
            LoadedList::in_memory("wireless", ListKind::Wireless, set(&[18505550100])),
        ],
        vec![],
    ));
    let state = PolicyState::in_memory();
    for n in [WIRELESS_WITH_PEWC, ON_NATIONAL_WITH_PEWC] {
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
                    answer: None,
                    queried: None,
                }],
                chrono::Utc::now(),
            )
            .unwrap();
    }
    (policy, lists, state)
}
