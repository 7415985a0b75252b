//! A fixed number of decisions (`ITERS`, default 10,000) with every rule kind on, for counting
//! instructions, which unlike time is repeatable on a noisy machine:
//!
//!     cargo bench --bench decide_loop --no-run
//!     ITERS=1000  valgrind --tool=callgrind target/release/deps/decide_loop-*  (then ITERS=11000)
//!
//! The difference of the two totals over 10,000 is the cost of one `Policy::decide`, setup
//! excluded. The fixture is `tests/support/all_rules.rs` (as `policy_decide_all_rules`).

#[path = "../tests/support/all_rules.rs"]
mod all_rules;
use callgate::lists::OptOuts;
use callgate::number::{Called, E164};
use callgate::policy::context::CallerId;
fn main() {
    let (policy, ls, state) = all_rules::fixture();
    let dir = tempfile::tempdir().unwrap();
    let optouts = OptOuts::open(&dir.path().join("o.jsonl"), callgate::clock::system()).unwrap();
    let n: E164 = all_rules::WIRELESS_WITH_PEWC.parse().unwrap();
    let caller = CallerId::Number(all_rules::CALLER_ID.parse().unwrap());
    let at: chrono::DateTime<chrono::Utc> = "2026-11-24T16:00:00Z".parse().unwrap();
    let iters: u32 = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10000);
    let mut k = 0;
    for _ in 0..iters {
        let ctx = policy.campaigns.classify(None, None, None, caller);
        let d = policy.decide(
            ctx,
            Ok(Called::Number(n)),
            callgate::policy::Against {
                lists: ls.clone(),
                optouts: &optouts,
                state: &state,
                now: at,
            },
            false,
        );
        k += d.retry_after.unwrap_or(1);
    }
    println!("{k}");
}
