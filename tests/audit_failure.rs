//! When records cannot be written (disk full, I/O error), callgate says so and, by default,
//! refuses new marketing calls with 503 rather than place them unrecorded
//! (`audit.on_write_error`). The failure is real: the day's audit file is /dev/full.

mod common;
use common::*;
use std::time::{Duration, Instant};

/// A harness whose next day's audit file is /dev/full, moved to that day, after one call
/// there was written into the failing file (the first flush fails).
fn disk_full(edit: impl FnOnce(&mut callgate::config::Config)) -> (Harness, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", edit);
    h.send_dialer(&h.invite("4155550100", "full-0"));
    assert!(h.recv_carrier().is_some(), "a call on a working disk goes");
    let _trying = h.recv_dialer();
    let tomorrow = (h.clock.now() + chrono::Duration::days(1)).date_naive();
    let full = h.dir.join(format!("audit/audit-{tomorrow}.jsonl"));
    std::os::unix::fs::symlink("/dev/full", &full).unwrap();
    h.clock.advance(chrono::Duration::days(1));
    let inv = h
        .invite("4155550100", "full-1")
        .replace("z9hG4bK-1", "z9hG4bK-full-1");
    h.send_dialer(&inv);
    assert!(
        h.recv_carrier().is_some(),
        "forwarded before the failure is known"
    );
    let _trying = h.recv_dialer();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !h
        .http("GET", "/metrics", "")
        .1
        .contains("callgate_audit_writable 0")
    {
        assert!(
            Instant::now() < deadline,
            "the write failure was not noticed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (h, tmp)
}

use callgate::clock::Clock;

#[test]
fn a_marketing_call_gets_503_while_records_cannot_be_written() {
    let (h, _tmp) = disk_full(|_| {});
    let inv = h
        .invite("4155550100", "full-2")
        .replace("z9hG4bK-1", "z9hG4bK-full-2");
    h.send_dialer(&inv);
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 503 "), "{r}");
    assert!(
        header(&r, "warning")
            .unwrap()
            .contains("records_unwritable"),
        "{r}"
    );
    assert_eq!(header(&r, "retry-after"), Some("5"));
    assert!(h.nothing_at(&h.carrier));
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_calls_refused_unrecordable_total 1"),
        "{m}"
    );
}

#[test]
fn an_emergency_call_still_goes_while_records_cannot_be_written() {
    let (h, _tmp) = disk_full(|_| {});
    let inv = h
        .invite("911", "full-911")
        .replace("z9hG4bK-1", "z9hG4bK-full-911");
    h.send_dialer(&inv);
    assert!(h.recv_carrier().is_some(), "911 is never refused");
}

#[test]
fn on_write_error_allow_places_marketing_calls_unrecorded() {
    let (h, _tmp) = disk_full(|c| c.audit.on_write_error = callgate::config::FailMode::Allow);
    let inv = h
        .invite("4155550100", "full-3")
        .replace("z9hG4bK-1", "z9hG4bK-full-3");
    h.send_dialer(&inv);
    assert!(
        h.recv_carrier().is_some(),
        "fail-open is the configuration's choice"
    );
}
