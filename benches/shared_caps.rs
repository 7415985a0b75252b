//! What counting a call against a frequency cap in the shared PostgreSQL costs the call: the
//! time from receiving a dialer's INVITE to its final decision (each decision record's
//! `latency_us`; the INVITE leaves right after) for calls to Florida numbers (capped: counted
//! in the database first) and to California numbers (no cap: decided at once), through one
//! callgate with `[shared]`, in alternating blocks of calls so both see the same machine.
//! Every number is called once, so no cap is reached. A real PostgreSQL started here, on
//! loopback; sipp on both sides. (sipp's own response times count whole milliseconds.)
//!
//!   cargo bench --bench shared_caps [-- CALLS_PER_BLOCK]     default 100, 3 rounds
//!   CALLGATE_BENCH_SYNC_COMMIT=off cargo bench --bench shared_caps   without the commit's flush

#[path = "../tests/common/mod.rs"]
mod common;

use common::peers::{dialer_cmd, Callgate, Carrier};
use common::postgres::Postgres;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 3;

fn main() {
    let per_block = common::bench_size(100, 5);
    let pg = Postgres::start();
    // To see what the commit's flush costs: CALLGATE_BENCH_SYNC_COMMIT=off.
    if let Ok(v) = std::env::var("CALLGATE_BENCH_SYNC_COMMIT") {
        pg.psql(&format!("ALTER SYSTEM SET synchronous_commit = '{v}'"));
        pg.psql("SELECT pg_reload_conf()");
        println!(
            "synchronous_commit = {}",
            pg.psql("SHOW synchronous_commit")
        );
    }
    let carrier = Carrier::start();
    let shared = format!(
        "[shared]\nurl = \"{}\"\nmax_lag_ms = 5000\npoll_ms = 1000\ntimeout_ms = 3000\n",
        pg.url()
    );
    let cg = Callgate::start_with(carrier.port, &shared);
    let start = Instant::now();
    while common::http(cg.admin, "GET", "/readyz", "", None).0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "not ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let work = tempfile::tempdir().unwrap();
    let mut n = 0;
    for round in 0..ROUNDS {
        for area in ["305", "415"] {
            let numbers: Vec<String> = (0..per_block)
                .map(|_| {
                    n += 1;
                    format!("{area}556{n:04}")
                })
                .collect();
            call(
                &numbers,
                cg.sip,
                &work.path().join(format!("{area}-{round}")),
            );
        }
    }
    let (mut capped, mut uncapped) = (vec![], vec![]);
    for line in cg.audit() {
        let (Some(called), Some(us)) = (line["called_e164"].as_str(), line["latency_us"].as_f64())
        else {
            continue;
        };
        match &called[..5] {
            "+1305" => capped.push(us / 1e3),
            "+1415" => uncapped.push(us / 1e3),
            _ => {}
        }
    }
    assert_eq!(
        capped.len(),
        ROUNDS * per_block,
        "a decision record per call"
    );
    let counted = pg.psql("SELECT count(*) FROM callgate_cap_calls");
    println!("calls counted in the shared database: {counted}");
    let (c, u) = (
        report("capped (FL)", &mut capped),
        report("no cap (CA)", &mut uncapped),
    );
    println!(
        "added by the shared count: p50 {:+.2} ms, p99 {:+.2} ms",
        c.0 - u.0,
        c.1 - u.1
    );
}

/// Each number called once through `target`; every call must go through.
fn call(numbers: &[String], target: std::net::SocketAddr, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let status = dialer_cmd("uac_allow.xml", &refs, target, dir, &[])
        .status()
        .unwrap();
    assert!(status.success(), "sipp: some calls failed ({status})");
}

/// Prints and returns (p50, p99) in milliseconds.
fn report(what: &str, times: &mut [f64]) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let (p50, p99) = (at(0.50), at(0.99));
    println!(
        "{what}: INVITE received -> decided p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms ({} calls)",
        times[times.len() - 1],
        times.len()
    );
    (p50, p99)
}
