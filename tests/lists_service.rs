//! Lists in service: snapshots named in lists.toml, reloads that keep what is sound, and the
//! freshness rule applied to every list with a download date.

mod common;

use callgate::lists::compact::SetBuilder;
use callgate::lists::snapshot::{self, SnapshotMeta};
use callgate::lists::ListKind;
use common::*;
use std::path::Path;

fn write_snapshot(path: &Path, id: &str, kind: ListKind, numbers: &[u64]) -> String {
    let set = numbers.iter().copied().collect::<SetBuilder>().build();
    let meta = SnapshotMeta {
        id: id.into(),
        kind,
        state: None,
        source_date: Some("2026-11-01".into()),
        created: chrono::Utc::now(),
        entries: numbers.len() as u64,
        sources: vec![],
    };
    snapshot::write(path, &meta, &set).unwrap()
}

/// National list as a snapshot (2125550143), downloaded 2 days ago, plus `extra` manifest text.
fn snapshot_dir(extra: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_snapshot(
        &data.join("national.cgsnap"),
        "national",
        ListKind::National,
        &[12125550143],
    );
    std::fs::write(
        data.join("lists.toml"),
        format!(
            "[[list]]\nid = \"national\"\nkind = \"national\"\nfile = \"national.cgsnap\"\ndownloaded = \"{}\"\n\n{extra}",
            days_ago(2)
        ),
    )
    .unwrap();
    tmp
}

fn harness(tmp: &tempfile::TempDir) -> Harness {
    Harness::in_dir(tmp.path().to_path_buf(), "")
}

fn verdict(h: &Harness, number: &str) -> serde_json::Value {
    let (status, body) = h.http("GET", &format!("/v1/check?number={number}"), "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn a_snapshot_named_in_the_manifest_is_loaded_and_enforced() {
    let tmp = snapshot_dir("");
    let h = harness(&tmp);
    h.send_dialer(&h.invite("2125550143", "snap-1"));
    let reply = h.recv_dialer().unwrap();
    assert!(reply.contains("national_dnc"), "{reply}");
}

#[test]
fn decision_records_name_the_snapshot_version_they_used() {
    let tmp = snapshot_dir("");
    let sum = snapshot::read(&tmp.path().join("data/national.cgsnap"))
        .unwrap()
        .sha256;
    let h = harness(&tmp);
    h.send_dialer(&h.invite("2125550143", "snap-version"));
    h.recv_dialer().unwrap();
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "snap-version")
        .expect("the decision record");
    assert_eq!(rec["lists"][0]["version"], format!("sha256:{}", &sum[..16]));
}

#[test]
fn a_corrupt_snapshot_on_reload_leaves_the_version_in_service() {
    let tmp = snapshot_dir("");
    let h = harness(&tmp);
    let path = tmp.path().join("data/national.cgsnap");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("national.cgsnap") && body.contains("checksum"),
        "{body}"
    );
    assert_eq!(verdict(&h, "2125550143")["verdict"], "blocked");
}

#[test]
fn a_snapshot_of_another_list_is_refused() {
    let tmp = snapshot_dir("");
    write_snapshot(
        &tmp.path().join("data/national.cgsnap"),
        "litigators",
        ListKind::Custom,
        &[13105550188],
    );
    let h = harness(&tmp);
    let (_, body) = h.http("GET", "/readyz", "");
    assert!(
        body.contains("the snapshot holds list `litigators`"),
        "{body}"
    );
    // No earlier version: the national list is unavailable, so calls fail closed.
    assert_eq!(verdict(&h, "4155550100")["verdict"], "blocked");
}

#[test]
fn a_reload_reuses_an_unchanged_snapshot_and_swaps_a_new_one() {
    let tmp = snapshot_dir("");
    let h = harness(&tmp);
    let (_, body) = h.http("POST", "/v1/reload", "");
    assert!(body.contains("unchanged"), "{body}");
    write_snapshot(
        &tmp.path().join("data/national.cgsnap"),
        "national",
        ListKind::National,
        &[14155550100],
    );
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(verdict(&h, "4155550100")["verdict"], "blocked");
    assert_eq!(verdict(&h, "2125550143")["verdict"], "allowed");
}

fn state_list(age_days: i64, max_age: Option<u32>) -> String {
    format!(
        "[[list]]\nid = \"tx\"\nkind = \"state\"\nstate = \"TX\"\nfile = \"tx.txt\"\ndownloaded = \"{}\"\n{}",
        days_ago(age_days),
        max_age.map(|d| format!("max_age_days = {d}\n")).unwrap_or_default()
    )
}

#[test]
fn a_stale_state_list_fails_calls_closed_and_says_why() {
    let tmp = snapshot_dir(&state_list(40, None));
    std::fs::write(tmp.path().join("data/tx.txt"), "5125550100\n").unwrap();
    let h = harness(&tmp);
    let v = verdict(&h, "4155550100");
    assert_eq!(v["verdict"], "blocked");
    assert_eq!(v["reasons"][0]["code"], "stale_list");
    let (status, body) = h.http("GET", "/readyz", "");
    assert_eq!(status, 503);
    assert!(body.contains("stale lists: tx"), "{body}");
    let (_, metrics) = h.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_list_fresh{list=\"tx\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callgate_list_age_seconds{list=\"tx\"}"),
        "{metrics}"
    );
}

#[test]
fn a_list_with_its_own_max_age_stays_fresh_within_it() {
    let tmp = snapshot_dir(&state_list(40, Some(90)));
    std::fs::write(tmp.path().join("data/tx.txt"), "5125550100\n").unwrap();
    let h = harness(&tmp);
    assert_eq!(verdict(&h, "4155550100")["verdict"], "allowed");
    assert_eq!(h.http("GET", "/readyz", "").0, 200);
}

#[test]
fn the_national_31_day_rule_cannot_be_raised_per_list() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("national.txt"), "2125550143\n").unwrap();
    std::fs::write(
        data.join("lists.toml"),
        format!("[[list]]\nid = \"national\"\nkind = \"national\"\nfile = \"national.txt\"\ndownloaded = \"{}\"\nmax_age_days = 90\n", days_ago(40)),
    )
    .unwrap();
    let h = harness(&tmp);
    let v = verdict(&h, "4155550100");
    assert_eq!(v["reasons"][0]["code"], "stale_list", "{v}");
}
