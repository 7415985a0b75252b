//! The records index while callgate runs, with real sipp calls through the binary: it follows
//! the log off the call path, a kill -9 between the log and the index loses nothing (the next
//! start indexes the rest), a deleted index is rebuilt, and `GET /v1/records` pages through it.

mod common;

use common::http;
use common::peers::{dialer, five_calls, Callgate, Carrier};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A callgate (with `extra` configuration) that placed `five_calls`: ten lines (a decision
/// and a call record each), and the carrier it sent them to.
fn with_five_calls(extra: &str) -> (Carrier, Callgate) {
    let carrier = Carrier::start();
    let cg = Callgate::start_with(carrier.port, extra);
    five_calls(&cg);
    (carrier, cg)
}

fn audit_dir(cg: &Callgate) -> PathBuf {
    cg._dir.path().join("audit")
}

/// Lines the index file holds (read as another process would; None: no index file yet).
fn indexed(dir: &Path) -> Option<u64> {
    let path = dir.join("records-index.sqlite");
    if !path.exists() {
        return None;
    }
    let db = rusqlite::Connection::open(path).ok()?;
    db.query_row("SELECT COUNT(DISTINCT place) FROM entries", [], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })
    .ok()
}

/// Wait (bounded) until the index holds `n` lines; what it holds then.
fn wait_indexed(dir: &Path, n: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = indexed(dir);
        if now == Some(n) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(cg: &mut Callgate) {
    common::peers::unsafe_sigterm(cg.child.id());
    cg.child.wait().unwrap();
}

fn callgate_ok(args: &[&str]) -> String {
    let run = common::run_cli(args);
    assert!(run.ok, "callgate {args:?}: {}{}", run.stdout, run.stderr);
    run.stdout
}

#[test]
fn the_running_callgate_indexes_every_line_it_writes() {
    let (_carrier, mut cg) = with_five_calls("");
    let dir = audit_dir(&cg);
    assert_eq!(wait_indexed(&dir, 10), Some(10));
    stop(&mut cg);
    let said = callgate_ok(&["records", "check-index", dir.to_str().unwrap()]);
    assert!(said.contains("agrees with the log"), "{said}");
}

/// The writer hands the index what it wrote (the log is not read back): decisions, call
/// records and admin records (an opt-out, a batch of consents) come out as reading the log
/// gives them.
#[test]
fn what_the_writer_hands_the_index_is_what_the_log_says() {
    let (_carrier, mut cg) = with_five_calls("");
    let dir = audit_dir(&cg);
    assert_eq!(wait_indexed(&dir, 10), Some(10));
    let consent = r#"[{"number":"2125550100","type":"ebr_inquiry","captured":"2026-01-01","evidence":"web form 6"},{"number":"4155550100","type":"ebr_inquiry","captured":"2026-01-02","evidence":"web form 7"}]"#;
    let (status, body) = http(cg.admin, "POST", "/v1/consent", consent, None);
    assert_eq!(status, 201, "{body}");
    let optout = r#"{"number":"415 555 0101","source":"called in"}"#;
    let (status, body) = http(cg.admin, "POST", "/v1/optouts", optout, None);
    assert_eq!(status, 201, "{body}");
    assert_eq!(wait_indexed(&dir, 12), Some(12));
    let (_, metrics) = http(cg.admin, "GET", "/metrics", "", None);
    let fed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("callgate_records_indexed_lines_total{from=\"writer\"} "))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert!(fed.is_some_and(|n| n >= 2), "{metrics}");
    stop(&mut cg);
    let said = callgate_ok(&["records", "check-index", dir.to_str().unwrap()]);
    assert!(said.contains("agrees with the log"), "{said}");
}

#[test]
fn after_a_kill_9_the_next_start_indexes_what_the_index_missed() {
    // One pass at start, the next in an hour: the calls reach the log, not the index.
    let (_carrier, mut cg) = with_five_calls("[records]\nindex_interval_ms = 3600000\n");
    let dir = audit_dir(&cg);
    let before = indexed(&dir).unwrap_or(0);
    assert!(before < 10, "{before}");
    cg.kill_9_and_restart();
    assert_eq!(wait_indexed(&dir, 10), Some(10));
}

#[test]
fn a_deleted_index_is_rebuilt_at_the_next_start() {
    let (_carrier, mut cg) = with_five_calls("");
    let dir = audit_dir(&cg);
    assert_eq!(wait_indexed(&dir, 10), Some(10));
    stop(&mut cg);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("records-index.sqlite{suffix}")));
    }
    cg.kill_9_and_restart();
    assert_eq!(wait_indexed(&dir, 10), Some(10));
}

fn get(cg: &Callgate, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(cg.admin, "GET", path, "", None);
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

#[test]
fn the_api_pages_through_the_records_in_log_order() {
    let (_carrier, cg) = with_five_calls("");
    let (status, all) = get(&cg, "/v1/records?limit=1000");
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["records"].as_array().unwrap().len(), 10, "{all}");
    assert!(all["next"].is_null());
    let mut paged = vec![];
    let mut path = "/v1/records?limit=3".to_string();
    loop {
        let (status, page) = get(&cg, &path);
        assert_eq!(status, 200, "{page}");
        paged.extend(page["records"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/records?limit=3&after={next}"),
            None => break,
        }
    }
    assert_eq!(&paged, all["records"].as_array().unwrap());
}

#[test]
fn the_api_finds_one_numbers_calls() {
    let (_carrier, cg) = with_five_calls("");
    let (status, page) = get(&cg, "/v1/records?number=(415)%20555-0100&kind=call");
    assert_eq!(status, 200, "{page}");
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{page}");
    for r in records {
        assert_eq!(r["kind"], "call");
        assert_eq!(r["record"]["call"]["called"], "+14155550100");
    }
    let (_, blocked) = get(&cg, "/v1/records?kind=decision&verdict=blocked");
    assert_eq!(blocked["records"].as_array().unwrap().len(), 2, "{blocked}");
}

/// A call's Call-ID finds its decision and its call record; its decision id finds the same two
/// (the index keeps a hash of the one and a name and number for the other).
#[test]
fn the_api_finds_a_call_by_its_call_id_and_its_decision() {
    let (_carrier, cg) = with_five_calls("");
    let call = cg.wait_call_records(5).pop().unwrap();
    let (call_id, decision) = (
        call["call_id"].as_str().unwrap(),
        call["decision"].as_str().unwrap(),
    );
    let kinds = |page: &serde_json::Value| -> Vec<String> {
        let records = page["records"].as_array().unwrap();
        records
            .iter()
            .map(|r| r["kind"].as_str().unwrap().to_string())
            .collect()
    };
    let by_call_id = format!("/v1/records?call_id={}", call_id.replace('@', "%40"));
    let (status, page) = get(&cg, &by_call_id);
    assert_eq!(status, 200, "{page}");
    assert_eq!(kinds(&page), ["decision", "call"], "{page}");
    assert_eq!(page["records"][0]["record"]["id"], decision, "{page}");
    let (_, page) = get(&cg, &format!("/v1/records?decision={decision}"));
    assert_eq!(kinds(&page), ["decision", "call"], "{page}");
    assert_eq!(
        page["records"][1]["record"]["call"]["call_id"], call_id,
        "{page}"
    );
    let (_, none) = get(&cg, "/v1/records?call_id=no-such-call");
    assert_eq!(kinds(&none), Vec::<String>::new(), "{none}");
}

#[test]
fn the_api_says_which_parameter_is_wrong() {
    let carrier = Carrier::start();
    let cg = Callgate::start(carrier.port);
    for (path, names) in [
        ("/v1/records?limit=0", "limit"),
        ("/v1/records?limit=5000", "limit"),
        ("/v1/records?kind=calls", "kind"),
        ("/v1/records?number=12", "number"),
        ("/v1/records?from=yesterday", "from"),
        ("/v1/records?after=nowhere", "nowhere"),
        ("/v1/records?after=audit-2026-13-01@5", "not a place"),
        ("/v1/records?numbr=4155550100", "numbr"),
        ("/v1/records/dossier?number=4155550100&format=pdf", "format"),
    ] {
        let (status, body) = http(cg.admin, "GET", path, "", None);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(names), "{path}: {body}");
    }
}

/// `records reindex` beside a running callgate rebuilds the same file in place: callgate
/// goes on indexing into it, and the index agrees with the log afterwards.
#[test]
fn a_reindex_beside_the_running_callgate_keeps_one_index() {
    let (_carrier, mut cg) = with_five_calls("");
    let dir = audit_dir(&cg);
    assert_eq!(wait_indexed(&dir, 10), Some(10));
    let said = callgate_ok(&["records", "reindex", dir.to_str().unwrap()]);
    assert!(said.starts_with("10 records indexed"), "{said}");
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550177"], cg.sip, work.path()),
        0
    );
    assert_eq!(cg.wait_call_records(6).len(), 6);
    assert_eq!(wait_indexed(&dir, 12), Some(12));
    stop(&mut cg);
    let said = callgate_ok(&["records", "check-index", dir.to_str().unwrap()]);
    assert!(said.contains("agrees with the log: 12 rows"), "{said}");
}
