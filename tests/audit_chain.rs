//! The audit log is tamper-evident: a hash chain through every record and across files,
//! checked by `callgate audit verify`; exports filter what an auditor asks for.

mod common;

use callgate::audit::chain::{audit_files, GENESIS};
use callgate::audit::verify::{export, verify, Filter};
use common::*;
use std::path::{Path, PathBuf};

/// A harness whose audit log holds `n` decisions (alternating blocked and allowed numbers).
fn logged(h: &Harness, n: usize, tag: &str) {
    for i in 0..n {
        let number = if i % 2 == 0 {
            "2125550143"
        } else {
            "4155550100"
        };
        let inv = h
            .invite(number, &format!("{tag}-{i}"))
            .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}-{i}"));
        h.send_dialer(&inv);
        if i % 2 == 0 {
            // The final response: a 100 Trying for the call before may still be queued.
            assert!(h.recv_dialer_final().unwrap().contains("603"));
        } else {
            assert!(h.recv_carrier().is_some());
        }
    }
    h.run().app.audit.flush();
}

/// Lines that are records (decisions, call records), not seals: what `verify` counts.
fn records_in(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("{\"seal\""))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .count() as u64
}

/// Decision lines among them.
fn decisions_in(files: &[PathBuf]) -> usize {
    files
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("{\"id\""))
                .count()
        })
        .sum()
}

fn files(h: &Harness) -> Vec<PathBuf> {
    audit_files(&h.dir.join("audit")).unwrap()
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    f(&mut lines);
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn every_record_links_to_the_one_before() {
    let h = Harness::start();
    logged(&h, 6, "chain");
    let f = files(&h);
    let v = verify(&f).unwrap();
    assert_eq!(decisions_in(&f), 6);
    // Each blocked call's record follows its decision; the allowed calls are still open.
    assert_eq!(v.records, 6 + 3);
    assert_eq!(v.records, records_in(&f));
    assert_eq!(v.starts_from, GENESIS);
}

#[test]
fn a_changed_record_is_found() {
    let h = Harness::start();
    logged(&h, 5, "change");
    let f = files(&h);
    rewrite(&f[0], |l| l[0] = l[0].replace("\"blocked\"", "\"allowed\""));
    let e = verify(&f).unwrap_err().to_string();
    assert!(e.contains(":2: `prev` does not match"), "{e}");
}

#[test]
fn a_deleted_record_is_found() {
    let h = Harness::start();
    logged(&h, 5, "delete");
    let f = files(&h);
    rewrite(&f[0], |l| {
        l.remove(1);
    });
    let e = verify(&f).unwrap_err().to_string();
    assert!(e.contains(":2: `prev` does not match"), "{e}");
}

#[test]
fn reordered_records_are_found() {
    let h = Harness::start();
    logged(&h, 5, "swap");
    let f = files(&h);
    rewrite(&f[0], |l| l.swap(1, 2));
    assert!(verify(&f).is_err());
}

#[test]
fn the_chain_continues_across_a_restart() {
    let mut h = Harness::start();
    logged(&h, 3, "before");
    h.stop();
    let dir = h.dir.clone();
    let h2 = Harness::in_dir(dir, "");
    logged(&h2, 3, "after");
    let f = files(&h2);
    let v = verify(&f).unwrap();
    assert_eq!(decisions_in(&f), 6);
    assert_eq!(v.records, records_in(&f));
}

#[test]
fn a_new_day_seals_the_old_file_and_the_chain_runs_on() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    // The sealed file stays plain text (not compressed under the test's feet), to be read.
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| c.records.compress = false);
    logged(&h, 2, "day1");
    h.clock.advance(chrono::Duration::days(1));
    logged(&h, 2, "day2");
    let f = files(&h);
    assert_eq!(f.len(), 2);
    let first = std::fs::read_to_string(&f[0]).unwrap();
    assert!(
        first.lines().last().unwrap().starts_with("{\"seal\""),
        "{first}"
    );
    let v = verify(&f).unwrap();
    assert_eq!(decisions_in(&f), 4);
    assert_eq!((v.records, v.seals, v.files), (records_in(&f), 1, 2));
    // The sealed file cannot lose its tail unnoticed.
    rewrite(&f[0], |l| {
        l.remove(1);
    });
    assert!(verify(&f).is_err());
}

#[test]
fn a_torn_final_record_is_cut_at_restart_and_the_chain_still_verifies() {
    let mut h = Harness::start();
    logged(&h, 2, "torn");
    h.stop();
    let f = files(&h);
    let mut text = std::fs::read(&f[0]).unwrap();
    text.extend_from_slice(b"{\"id\":\"half a rec");
    std::fs::write(&f[0], &text).unwrap();
    assert!(verify(&f).unwrap().torn_tail);
    let h2 = Harness::in_dir(h.dir.clone(), "");
    logged(&h2, 1, "after-torn");
    let f = files(&h2);
    let v = verify(&f).unwrap();
    assert_eq!(decisions_in(&f), 3);
    assert_eq!((v.records, v.torn_tail), (records_in(&f), false));
    let (_, metrics) = h2.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_audit_torn_records_total 1"),
        "{metrics}"
    );
}

#[test]
fn export_keeps_only_the_records_asked_for() {
    let h = Harness::start();
    logged(&h, 4, "export");
    let mut out = Vec::new();
    let filter = Filter {
        number: Some("+12125550143".into()),
        verdict: Some(callgate::call::Verdict::Blocked),
        ..Filter::default()
    };
    let n = export(&files(&h), &filter, true, &mut out).unwrap();
    assert_eq!(n, 2);
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("id,ts,call_id,"));
    assert!(lines.all(|l| l.contains("+12125550143") && l.contains("blocked")));
}

#[test]
fn admin_changes_are_chained_records_naming_who_made_them() {
    let h = Harness::start();
    let (status, _) = h.http(
        "POST",
        "/v1/optouts",
        r#"{"number":"+1 202 555 0199","source":"agent 7"}"#,
    );
    assert_eq!(status, 201);
    assert_eq!(h.http("POST", "/v1/reload", "").0, 200);
    let lines = h.audit_lines();
    let admin: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("admin")).collect();
    assert_eq!(admin.len(), 2, "{lines:?}");
    assert_eq!(admin[0]["action"], "optout_add");
    assert_eq!(admin[0]["detail"]["number"], "+12025550199");
    assert!(admin[0]["who"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(admin[1]["action"], "lists_reload");
    assert!(verify(&files(&h)).is_ok());
}

/// `audit.durability = "before-forward"`: by the time the carrier sees an allowed INVITE, its
/// decision record is already on disk.
#[test]
fn before_forward_the_record_is_on_disk_when_the_carrier_sees_the_invite() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| {
        c.audit.durability = callgate::config::Durability::BeforeForward;
        // A long async interval: only the group commit can have written the record.
        c.audit.flush_interval_ms = 60_000;
    });
    for i in 0..5 {
        let id = format!("bf-{i}");
        h.send_dialer(
            &h.invite("4155550100", &id)
                .replace("z9hG4bK-1", &format!("z9hG4bK-{id}")),
        );
        let got = h.recv_carrier().expect("forwarded");
        assert!(got.starts_with("INVITE "));
        let on_disk = audit_lines(&tmp.path().join("audit"))
            .iter()
            .any(|r| r["call_id"] == id.as_str());
        assert!(on_disk, "record of {id} on disk before the INVITE left");
    }
}

#[test]
fn a_line_stamped_before_the_newest_day_file_joins_it_and_never_reopens_a_sealed_day() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    // Sealed days stay plain text, to be read back here.
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| c.records.compress = false);
    use callgate::clock::Clock;
    logged(&h, 2, "today");
    let today = h.clock.now().date_naive();
    h.clock.advance(chrono::Duration::days(1));
    logged(&h, 2, "tomorrow");
    // A line stamped on the earlier day reaches the writer after the next day's file opened.
    h.clock.advance(chrono::Duration::days(-1));
    logged(&h, 2, "late");
    let dir = h.dir.join("audit");
    let earlier = std::fs::read_to_string(dir.join(format!("audit-{today}.jsonl"))).unwrap();
    assert!(!earlier.contains("late-"), "a sealed day was reopened");
    let newer = today + chrono::Duration::days(1);
    let newer = std::fs::read_to_string(dir.join(format!("audit-{newer}.jsonl"))).unwrap();
    assert!(newer.contains("\"call_id\":\"late-1\""), "{newer}");
    assert!(verify(&audit_files(&dir).unwrap()).is_ok());
}
