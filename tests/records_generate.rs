//! `callgate records generate`: synthetic calls through callgate's own proxy, gate and audit
//! writer, for benchmarks. Its records are the real writer's: the chain verifies, the days
//! asked for are written (sealed ones compressed), each call has its decision and its record,
//! and the calls to the national list's number are blocked.

mod common;

use std::path::Path;

/// What `callgate ARGS` said (stdout and stderr); it must succeed.
fn callgate(args: &[&str]) -> String {
    let run = common::run_cli(args);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(run.ok, "callgate {args:?}: {said}");
    said
}

fn generated(dir: &Path) {
    let d = dir.to_str().unwrap();
    let args = ["records", "generate", d, "--calls", "300", "--days", "3"];
    let said = callgate(
        &[
            &args[..],
            &["--first-day", "2026-03-02", "--blocked-every", "10"],
        ]
        .concat(),
    );
    assert!(
        said.starts_with("300 calls from 2026-03-02 over 3 days"),
        "{said}"
    );
}

#[test]
fn generated_records_are_the_real_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    generated(&dir);
    let said = callgate(&["audit", "verify", dir.to_str().unwrap()]);
    assert!(said.contains("600 records in 3 files (2 sealed)"), "{said}");
    let files = callgate::audit::chain::audit_files(&dir).unwrap();
    // Sealed days are compressed in the background (maybe not yet when the generator ends).
    let days: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().replace(".gz", ""))
        .collect();
    assert_eq!(
        days,
        [
            "audit-2026-03-02.jsonl",
            "audit-2026-03-03.jsonl",
            "audit-2026-03-04.jsonl"
        ]
    );
}

#[test]
fn one_call_in_ten_goes_to_the_national_list_and_is_blocked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    generated(&dir);
    let d = dir.to_str().unwrap();
    let rejected = callgate(&["records", "export", d, "--disposition", "rejected"]);
    assert_eq!(
        rejected
            .lines()
            .filter(|l| l.contains("+12125550143"))
            .count(),
        30
    );
    let answered = callgate(&["records", "export", d, "--disposition", "answered"]);
    assert_eq!(
        answered.lines().filter(|l| l.contains("+1415")).count(),
        270
    );
}
