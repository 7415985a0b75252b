//! Five years, kept and pruned on purpose: sealed day files are compressed and still verify
//! and export; files past `records.retention_days` go only by an explicit prune, whose admin
//! record keeps their final hashes so the chain verifies from there.

mod common;
use callgate::audit::chain::audit_files;
use callgate::audit::verify::verify;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Two calls (one blocked, one allowed and hung up) on the harness's current day.
fn two_calls(h: &Harness, tag: &str) {
    let blocked = h
        .invite("2125550143", &format!("{tag}-b"))
        .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}-b"));
    h.send_dialer(&blocked);
    assert!(h.recv_dialer_final().unwrap().contains(" 603 "));
    let allowed = h
        .invite("4155550100", &format!("{tag}-a"))
        .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}-a"));
    h.send_dialer(&allowed);
    let inv = h.recv_carrier().unwrap();
    h.send_carrier(&reply(&inv, 486, "Busy Here", ""));
    assert!(h.recv_dialer_final().unwrap().contains(" 486 "));
    h.run().app.audit.flush();
}

fn files(h: &Harness) -> Vec<PathBuf> {
    audit_files(&h.dir.join("audit")).unwrap()
}

/// Wait (bounded) until the oldest file is compressed.
fn compressed(h: &Harness) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let f = files(h);
        if f[0].extension().is_some_and(|e| e == "gz") {
            return f;
        }
        assert!(Instant::now() < deadline, "not compressed: {f:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_sealed_day_file_is_compressed_and_still_verifies() {
    let h = Harness::start();
    two_calls(&h, "day1");
    h.clock.advance(chrono::Duration::days(1));
    two_calls(&h, "day2");
    let f = compressed(&h);
    assert_eq!(f.len(), 2);
    assert!(
        !f[0].with_extension("").exists(),
        "the plain file is removed once the compressed one is on disk"
    );
    let v = verify(&f).unwrap();
    assert_eq!((v.files, v.seals), (2, 1));
}

#[test]
fn exports_read_compressed_files() {
    let h = Harness::start();
    two_calls(&h, "day1");
    h.clock.advance(chrono::Duration::days(1));
    two_calls(&h, "day2");
    compressed(&h);
    let dir = h.dir.join("audit");
    let decisions = cli(&["audit", "export", dir.to_str().unwrap()]);
    let calls = cli(&[
        "records",
        "export",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        decisions
            .lines()
            .filter(|l| l.contains("\"verdict\""))
            .count(),
        4
    );
    assert_eq!(calls.lines().count(), 4, "{calls}");
}

#[test]
fn nothing_is_removed_without_an_explicit_prune() {
    let h = Harness::with(Some(2), "[records]\nretention_days = 1\n");
    two_calls(&h, "old");
    h.clock.advance(chrono::Duration::days(3));
    two_calls(&h, "new");
    assert_eq!(files(&h).len(), 2, "past the retention, still kept");
}

#[test]
fn a_dry_run_prune_names_the_files_and_removes_none() {
    let h = Harness::with(Some(2), "[records]\nretention_days = 1\n");
    two_calls(&h, "old");
    h.clock.advance(chrono::Duration::days(3));
    two_calls(&h, "new");
    let (status, body) = h.http("POST", "/v1/records/prune", r#"{"dry_run": true}"#);
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["removed"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(files(&h).len(), 2);
}

#[test]
fn a_prune_removes_files_past_retention_and_the_chain_verifies_from_its_record() {
    let h = Harness::with(Some(2), "[records]\nretention_days = 1\n");
    two_calls(&h, "old");
    h.clock.advance(chrono::Duration::days(3));
    two_calls(&h, "new");
    let (status, body) = h.http("POST", "/v1/records/prune", "");
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let removed = &report["removed"][0];
    let left = files(&h);
    assert_eq!(left.len(), 1, "{left:?}");
    let v = verify(&left).unwrap();
    assert_eq!(
        v.starts_from, removed["final_hash"],
        "the remaining chain starts where the pruned file ended"
    );
    let prune = h
        .audit_lines()
        .into_iter()
        .find(|l| l["admin"]["action"] == "records_prune")
        .expect("the prune is an admin record");
    assert_eq!(prune["admin"]["detail"]["removed"][0], *removed);
    assert!(prune["admin"]["who"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
}

/// The records index never points at a day the log no longer holds: a prune takes the
/// pruned days' rows with it (the index's own pass is an hour away here).
#[test]
fn a_prune_removes_the_pruned_days_from_the_records_index() {
    let h = Harness::with(
        Some(2),
        "[records]\nretention_days = 1\nindex_interval_ms = 3600000\n",
    );
    two_calls(&h, "old");
    h.clock.advance(chrono::Duration::days(3));
    two_calls(&h, "new");
    // The days the index holds rows of (a row's place is its day, in days since 1970, above
    // its byte offset's 40 bits).
    let days = || -> Vec<String> {
        let db = rusqlite::Connection::open(h.dir.join("audit/records-index.sqlite")).unwrap();
        let mut q = db
            .prepare("SELECT DISTINCT place >> 40 FROM entries ORDER BY 1")
            .unwrap();
        let rows = q.query_map([], |r| r.get::<_, i64>(0)).unwrap();
        rows.map(|d| {
            let day = chrono::NaiveDate::default() + chrono::Duration::days(d.unwrap());
            format!("audit-{day}")
        })
        .collect()
    };
    // The API answers 503 until callgate's first pass over the log is done.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.run().app.records_index.building().is_some() {
        assert!(
            Instant::now() < deadline,
            "the records index was never built"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = h.http("GET", "/v1/records?kind=call", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(days().len(), 2);
    let (status, body) = h.http("POST", "/v1/records/prune", "");
    assert_eq!(status, 200, "{body}");
    let left = files(&h);
    let left_day = left[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".jsonl", "");
    assert_eq!(days(), [left_day]);
}

#[test]
fn disk_use_is_a_metric() {
    let h = Harness::start();
    two_calls(&h, "disk");
    let (_, m) = h.http("GET", "/metrics", "");
    let bytes: i64 = m
        .lines()
        .find_map(|l| l.strip_prefix("callgate_audit_disk_bytes "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 1000, "{bytes}");
    assert!(m.contains("callgate_audit_disk_free_bytes "), "{m}");
}

#[test]
fn callgate_records_prune_asks_the_running_instance() {
    let h = Harness::with(Some(2), "[records]\nretention_days = 1\n");
    two_calls(&h, "old");
    h.clock.advance(chrono::Duration::days(3));
    two_calls(&h, "new");
    // The configuration the CLI reads names the running instance's admin address.
    let admin = h.run().admin_addr;
    let text = config_text(&h.dir, "127.0.0.1:5060".parse().unwrap(), "").replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        &format!("[admin]\nlisten = \"{admin}\""),
    );
    let cfg = h.dir.join("cli.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = cli(&[
        "records",
        "prune",
        "--config",
        cfg.to_str().unwrap(),
        "--dry-run",
    ]);
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["removed"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(files(&h).len(), 2, "a dry run removes nothing");
}
