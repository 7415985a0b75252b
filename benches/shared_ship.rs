//! How fast an instance ships its log to the cluster's records table: a log of synthetic calls
//! (`callgate records generate`, decisions and call records as the real writers write them)
//! in the audit directory of a callgate started with `[shared]` on a PostgreSQL started here
//! (loopback); the time from the first line in the table to the last, as lines per second.
//!
//!   cargo bench --bench shared_ship [-- CALLS]     default 50,000 calls

#[path = "../tests/common/mod.rs"]
mod common;

use common::postgres::Postgres;
use std::io::BufRead;
use std::time::{Duration, Instant};

fn main() {
    let calls = common::bench_size(50000, 500) as u64;
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit");
    let generated = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["records", "generate"])
        .arg(&audit)
        .args(["--calls", &calls.to_string(), "--days", "1"])
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
    let lines = log_lines(&audit);
    common::write_data(dir.path(), Some(2));
    let (sip, admin) = (common::free_port(), common::free_port());
    let d = dir.path().display();
    let config = dir.path().join("callgate.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[upstream]\naddress = \"127.0.0.1:9\"\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[shared]\nurl = \"{}\"\n",
            pg.url()
        ),
    )
    .unwrap();
    let admin = format!("127.0.0.1:{admin}").parse().unwrap();
    let mut child = common::spawn_binary(&config, &dir.path().join("callgate.log"), admin);
    common::wait_ready(admin, 200);
    let count = || {
        pg.psql("SELECT count(*) FROM callgate_records")
            .parse::<u64>()
            .unwrap()
    };
    let started = Instant::now();
    while count() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing shipped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let first = Instant::now();
    // The running instance adds a few lines of its own (its start, list loads).
    while count() < lines {
        assert!(
            first.elapsed() < Duration::from_secs(600),
            "not all shipped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = first.elapsed();
    println!(
        "{lines} log lines ({calls} calls) shipped in {:.2} s: {:.0} lines/s",
        took.as_secs_f64(),
        lines as f64 / took.as_secs_f64()
    );
    common::peers::unsafe_sigterm(child.id());
    let _ = child.wait();
}

/// Lines in the generated log (every day's file).
fn log_lines(audit: &std::path::Path) -> u64 {
    let mut n = 0;
    for entry in std::fs::read_dir(audit).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            let f = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
            n += f.lines().count() as u64;
        }
    }
    n
}
