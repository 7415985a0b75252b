//! The records index: `records find` and `records export` answer from it as a scan of the log
//! answers, on records made by real sipp calls through the callgate binary; it catches up with
//! records written after it was built; `records reindex` builds it anew.

mod common;

use common::peers::{five_calls, Callgate, Carrier};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// An audit directory with the records of real calls: three answered (two to one number), two
/// blocked. Made once for this file; each test copies it.
fn calls_made() -> &'static Path {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let carrier = Carrier::start();
        let cg = Callgate::start(carrier.port);
        five_calls(&cg);
        let kept = tempfile::tempdir().unwrap();
        let audit = kept.path().join("audit");
        copy_dir(&cg._dir.path().join("audit"), &audit);
        (kept, audit)
    })
    .1
}

/// The log's files only: the copy has no records index until a test builds one.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("audit-") {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

/// A copy of the audit directory of `calls_made`, to index and change.
fn audit_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    copy_dir(calls_made(), &dir);
    (tmp, dir)
}

/// (stdout, stderr) of `callgate ARGS`, which must succeed.
fn callgate(args: &[&str]) -> (String, String) {
    let run = common::run_cli(args);
    assert!(run.ok, "callgate {args:?}: {}", run.stderr);
    (run.stdout, run.stderr)
}

/// The day's plain file of the audit directory (the calls were placed on one day).
fn day_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
}

/// `records find DIR --number N`: (the calls found, what it said on stderr).
fn find(dir: &Path, number: &str) -> (String, String) {
    callgate(&["records", "find", dir.to_str().unwrap(), "--number", number])
}

fn reindex(dir: &Path) -> String {
    callgate(&["records", "reindex", dir.to_str().unwrap()]).0
}

const FILTERS: &[&[&str]] = &[
    &[],
    &["--number", "(415) 555-0100"],
    &["--number", "+14155550101"],
    &["--number", "2125550143"],
    &["--disposition", "answered"],
    &["--disposition", "rejected"],
    &["--campaign", "default"],
    &["--campaign", "nosuch"],
    &["--from", "2000-01-01", "--to", "2100-01-01"],
    &["--to", "2000-01-01"],
    &[
        "--number",
        "4155550100",
        "--disposition",
        "answered",
        "--from",
        "2000-01-01",
    ],
];

#[test]
fn the_index_and_a_scan_give_the_same_answers_for_every_filter() {
    let (_tmp, dir) = audit_copy();
    let d = dir.to_str().unwrap();
    assert!(reindex(&dir).starts_with("10 records indexed"));
    for filter in FILTERS {
        for format in ["json", "csv"] {
            let args = |scan: bool| {
                let mut a = vec!["records", "export", d, "--format", format];
                a.extend_from_slice(filter);
                if scan {
                    a.push("--scan");
                }
                a
            };
            let (indexed, said) = callgate(&args(false));
            let (scanned, _) = callgate(&args(true));
            assert!(said.contains("from the records index"), "{said}");
            assert_eq!(indexed, scanned, "{filter:?} {format}");
        }
    }
    let (found, _) = find(&dir, "415 555 0100");
    assert_eq!(found.lines().count(), 2, "{found}");
}

#[test]
fn without_an_index_find_scans_the_log() {
    let (_tmp, dir) = audit_copy();
    let (found, said) = find(&dir, "4155550100");
    assert_eq!(found.lines().count(), 2, "{found}");
    assert!(!said.contains("records index"), "{said}");
}

/// Records written after the index was built are found: the index reads the log past the last
/// line it indexed before it answers (as after a crash between the log and the index).
#[test]
fn records_written_after_the_index_was_built_are_found() {
    let (_tmp, dir) = audit_copy();
    reindex(&dir);
    let day = day_file(&dir);
    let text = std::fs::read_to_string(&day).unwrap();
    let last_call = text.lines().rfind(|l| l.contains(",\"call\":{")).unwrap();
    let again = last_call.replace("+16465550111", "+13125550199");
    std::fs::write(&day, format!("{text}{again}\n")).unwrap();
    let (found, _) = find(&dir, "3125550199");
    assert_eq!(found.lines().count(), 1, "{found}");
}

#[test]
fn a_reindex_from_scratch_gives_the_same_index() {
    let (_tmp, dir) = audit_copy();
    let d = dir.to_str().unwrap();
    reindex(&dir);
    let (first, _) = callgate(&["records", "export", d, "--format", "json"]);
    assert!(reindex(&dir).starts_with("10 records indexed"));
    let (second, _) = callgate(&["records", "export", d, "--format", "json"]);
    assert_eq!(first, second);
}

/// A day compressed after it was indexed (as callgate compresses sealed days) is the same day:
/// its rows still point at the right lines, read through the compressed file.
#[test]
fn a_day_compressed_after_indexing_answers_the_same() {
    let (_tmp, dir) = audit_copy();
    let d = dir.to_str().unwrap();
    reindex(&dir);
    let export = || {
        callgate(&[
            "records",
            "export",
            d,
            "--format",
            "json",
            "--number",
            "4155550100",
        ])
    };
    let (before, _) = export();
    let day = day_file(&dir);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &std::fs::read(&day).unwrap()).unwrap();
    std::fs::write(day.with_extension("jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::remove_file(&day).unwrap();
    let (after, said) = export();
    assert!(said.contains("records index"), "{said}");
    assert_eq!(before.lines().count(), 2);
    assert_eq!(after, before);
}

/// An index that cannot be brought up to date is not answered from: the log is read, and the
/// answer is the scan's.
#[test]
fn a_damaged_index_falls_back_to_the_log_and_says_so() {
    let (_tmp, dir) = audit_copy();
    std::fs::write(dir.join("records-index.sqlite"), "not a database").unwrap();
    let (found, said) = find(&dir, "4155550100");
    assert!(said.contains("cannot be used"), "{said}");
    assert_eq!(found.lines().count(), 2, "{found}");
}

/// (success, stdout + stderr) of `callgate records check-index DIR`.
fn check_index(dir: &Path) -> (bool, String) {
    let run = common::run_cli(&["records", "check-index", dir.to_str().unwrap()]);
    (run.ok, format!("{}{}", run.stdout, run.stderr))
}

#[test]
fn check_index_agrees_with_an_index_built_from_the_log() {
    let (_tmp, dir) = audit_copy();
    reindex(&dir);
    let (ok, said) = check_index(&dir);
    assert!(ok, "{said}");
    assert!(said.contains("agrees with the log: 10 rows"), "{said}");
}

/// A row changed and a row lost in the index are each named by their place in the log.
#[test]
fn check_index_names_where_the_index_and_the_log_differ() {
    let (_tmp, dir) = audit_copy();
    reindex(&dir);
    let db = rusqlite::Connection::open(dir.join("records-index.sqlite")).unwrap();
    // A row's place is its day (days since 1970) above its byte offset's 40 bits.
    let place_of = |place: i64| {
        let day = chrono::NaiveDate::default() + chrono::Duration::days(place >> 40);
        format!("audit-{day}@{}", place & ((1 << 40) - 1))
    };
    let changed: i64 = db
        .query_row(
            "SELECT place FROM entries JOIN facets f ON f.id = facet WHERE f.kind = 1
             ORDER BY place LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE entries SET call_key = call_key + 1 WHERE place = ?1",
        [changed],
    )
    .unwrap();
    let lost: i64 = db
        .query_row("SELECT MAX(place) FROM entries", [], |r| r.get(0))
        .unwrap();
    db.execute("DELETE FROM entries WHERE place = ?1", [lost])
        .unwrap();
    drop(db);
    let (ok, said) = check_index(&dir);
    assert!(!ok, "{said}");
    assert!(said.contains(&format!("{}:", place_of(changed))), "{said}");
    assert!(
        said.contains(&format!("{}: index (none)", place_of(lost))),
        "{said}"
    );
    assert!(said.contains("2 of 10 rows differ"), "{said}");
}
