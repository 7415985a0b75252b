//! `lists.watch`: a list file that changes on disk is picked up without a signal, with the
//! same all-or-nothing rule as a SIGHUP reload, and every such reload is an admin record.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// callgate on `write_data`'s lists, watching them every second.
fn watching(dir: &Path) -> Harness {
    write_data(dir, Some(2));
    Harness::in_dir_with(dir.to_path_buf(), "", |c| {
        c.lists.watch = true;
        c.lists.watch_interval_secs = 1;
    })
}

fn verdict(h: &Harness, number: &str) -> String {
    let (status, body) = h.http("GET", &format!("/v1/check?number={number}"), "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["verdict"].as_str().unwrap().to_string()
}

/// Replace a file as a download script should: write beside it, then rename over it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The admin records of reloads made by the watch so far.
fn watch_reloads_now(h: &Harness) -> Vec<serde_json::Value> {
    h.audit_lines()
        .into_iter()
        .filter(|l| l["admin"]["action"] == "lists_reload" && l["admin"]["who"] == "lists.watch")
        .collect()
}

/// The admin records of reloads made by the watch, once there are `n` (bounded: 10 s).
fn watch_reloads(h: &Harness, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = watch_reloads_now(h);
        if found.len() >= n || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_list_file_replaced_on_disk_is_in_service_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let h = watching(dir.path());
    assert_eq!(verdict(&h, "4155550100"), "allowed");
    replace(
        &dir.path().join("data/internal.txt"),
        "+1 202 555 0177\n4155550100\n",
    );
    assert_eq!(watch_reloads(&h, 1).len(), 1, "no reload by the watch");
    assert_eq!(verdict(&h, "4155550100"), "blocked");
}

#[test]
fn a_bad_list_file_on_disk_leaves_the_version_in_service_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let h = watching(dir.path());
    replace(
        &dir.path().join("data/internal.txt"),
        "4155550100\nnot a number\n",
    );
    let reloads = watch_reloads(&h, 1);
    assert_eq!(reloads.len(), 1);
    let detail = reloads[0]["admin"]["detail"].to_string();
    assert!(detail.contains("internal.txt:2"), "{detail}");
    // The list in service is the one before the bad file: 202 555 0177 blocked, 415 not.
    assert_eq!(verdict(&h, "2025550177"), "blocked");
    assert_eq!(verdict(&h, "4155550100"), "allowed");
    // Unchanged files are not reloaded again: three more intervals, still one reload.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(watch_reloads_now(&h).len(), 1);
}

#[test]
fn a_changed_manifest_is_picked_up_too() {
    let dir = tempfile::tempdir().unwrap();
    let h = watching(dir.path());
    std::fs::write(dir.path().join("data/extra.txt"), "3125550111\n").unwrap();
    let manifest = std::fs::read_to_string(dir.path().join("data/lists.toml")).unwrap();
    replace(
        &dir.path().join("data/lists.toml"),
        &format!("{manifest}\n[[list]]\nid = \"extra\"\nkind = \"custom\"\nfile = \"extra.txt\"\n"),
    );
    watch_reloads(&h, 1);
    assert_eq!(verdict(&h, "3125550111"), "blocked");
}

#[test]
fn a_change_already_reloaded_by_the_api_is_not_reloaded_again_by_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let h = watching(dir.path());
    replace(
        &dir.path().join("data/internal.txt"),
        "+1 202 555 0177\n4155550100\n",
    );
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(verdict(&h, "4155550100"), "blocked");
    // Three intervals: the watch sees the files as the lists in service were read from.
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(watch_reloads_now(&h).len(), 0);
}
