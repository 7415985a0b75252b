//! How long an opt-out posted to one callgate takes to be in force on another sharing its
//! PostgreSQL (a real server started here, on loopback): the time from the 201 of
//! `POST /v1/optouts` on A to the first `GET /v1/check` on B that blocks the number, asked in
//! a tight loop. Also the time A takes to answer the POST (commit, and in force on A).
//!
//!   cargo bench --bench shared_propagation [-- OPTOUTS]     default 300 opt-outs

#[path = "../tests/common/mod.rs"]
mod common;

use common::http;
use common::peers::{Callgate, Carrier};
use common::postgres::Postgres;
use std::time::{Duration, Instant};

fn main() {
    let count = common::bench_size(300, 20);
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let shared = format!(
        "[shared]\nurl = \"{}\"\nmax_lag_ms = 5000\npoll_ms = 1000\ntimeout_ms = 3000\n",
        pg.url()
    );
    let a = Callgate::start_with(carrier.port, &shared);
    let b = Callgate::start_with(carrier.port, &shared);
    for cg in [&a, &b] {
        let start = Instant::now();
        while http(cg.admin, "GET", "/readyz", "", None).0 != 200 {
            assert!(start.elapsed() < Duration::from_secs(30), "not ready");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let (mut acknowledged, mut propagated, mut from_post) = (vec![], vec![], vec![]);
    for i in 0..count {
        let number = format!("415552{:04}", i);
        let body = format!(r#"{{"number":"{number}"}}"#);
        let posted = Instant::now();
        let (status, answer) = http(a.admin, "POST", "/v1/optouts", &body, None);
        assert_eq!(status, 201, "{answer}");
        let acked = Instant::now();
        let check = format!("/v1/check?number={number}");
        while !http(b.admin, "GET", &check, "", None)
            .1
            .contains("\"internal_dnc\"")
        {
            assert!(
                acked.elapsed() < Duration::from_secs(10),
                "{number} never reached B"
            );
        }
        propagated.push(acked.elapsed());
        from_post.push(posted.elapsed());
        acknowledged.push(acked - posted);
    }
    report(
        "POST /v1/optouts on A answered (committed, in force on A)",
        &mut acknowledged,
    );
    report("after that answer, in force on B", &mut propagated);
    report("from the POST sent to A, in force on B", &mut from_post);
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} opt-outs)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
}
