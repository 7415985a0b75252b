//! The complaint dossier, on a number's real history through the callgate binary: called
//! (answered), given consent, opted out, called again (blocked). Every record shows, in order,
//! with its line's hash; a line changed afterwards shows as not verified.

mod common;

use common::http;
use common::peers::{dialer, Callgate, Carrier};
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

const NUMBER: &str = "+14155550100";

/// The history, made once; each test copies the audit directory it left (log and index).
fn history() -> &'static (tempfile::TempDir, Value, String, Value) {
    static MADE: OnceLock<(tempfile::TempDir, Value, String, Value)> = OnceLock::new();
    MADE.get_or_init(|| {
        let carrier = Carrier::start();
        let cg = Callgate::start(carrier.port);
        let work = tempfile::tempdir().unwrap();
        assert_eq!(dialer("uac_allow.xml", &["4155550100"], cg.sip, work.path()), 0);
        assert_eq!(cg.wait_call_records(1).len(), 1);
        // A batch with someone else's consent in it: the dossier must not show it.
        let consent = r#"[{"number":"2125550100","type":"ebr_inquiry","captured":"2026-01-01","evidence":"web form 6"},{"number":"4155550100","type":"ebr_inquiry","captured":"2026-01-02","evidence":"web form 7"}]"#;
        let (status, body) = http(cg.admin, "POST", "/v1/consent", consent, None);
        assert_eq!(status, 201, "{body}");
        let optout = r#"{"number":"415 555 0100","source":"called in"}"#;
        let (status, body) = http(cg.admin, "POST", "/v1/optouts", optout, None);
        assert_eq!(status, 201, "{body}");
        let rejected = dialer("uac_expect_reject.xml", &["4155550100"], cg.sip, work.path());
        assert_eq!(rejected, 0);
        assert_eq!(cg.wait_call_records(2).len(), 2);
        let ask = |format: &str| {
            let path = format!("/v1/records/dossier?number=4155550100&format={format}");
            let (status, body) = http(cg.admin, "GET", &path, "", None);
            assert_eq!(status, 200, "{body}");
            body
        };
        let json: Value = serde_json::from_str(&ask("json")).unwrap();
        let html = ask("html");
        let path = "/v1/records?number=4155550100&kind=admin";
        let (status, admin) = http(cg.admin, "GET", path, "", None);
        assert_eq!(status, 200, "{admin}");
        let kept = tempfile::tempdir().unwrap();
        let audit = cg._dir.path().join("audit");
        for e in std::fs::read_dir(&audit).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, kept.path().join(p.file_name().unwrap())).unwrap();
        }
        (kept, json, html, serde_json::from_str(&admin).unwrap())
    })
}

fn what(e: &Value) -> String {
    let r = &e["record"];
    match e["kind"].as_str().unwrap() {
        "decision" => format!("decision {}", r["verdict"].as_str().unwrap()),
        "call" => format!("call {}", r["disposition"].as_str().unwrap()),
        _ => format!("admin {}", r["action"].as_str().unwrap()),
    }
}

#[test]
fn the_dossier_shows_the_whole_history_in_order() {
    let d = &history().1;
    let seen: Vec<String> = d["entries"].as_array().unwrap().iter().map(what).collect();
    assert_eq!(
        seen,
        [
            "decision allowed",
            "call answered",
            "admin consent_add",
            "admin optout_add",
            "decision blocked",
            "call rejected",
        ],
        "{d:#}"
    );
    assert_eq!(d["number"], NUMBER);
    assert_eq!(d["counts"]["not_verified"], 0);
}

#[test]
fn each_record_names_its_lines_hash_and_is_verified() {
    for e in history().1["entries"].as_array().unwrap() {
        let hash = e["hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "{e}");
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{e}");
        assert_eq!(e["verified"], true, "{e}");
    }
}

/// The JSON carries each line's exact text: anyone can hash it and compare.
#[test]
fn each_lines_hash_can_be_recomputed_from_the_dossier() {
    use sha2::Digest;
    let entries = history().1["entries"].as_array().unwrap();
    let with_line: Vec<&Value> = entries.iter().filter(|e| e["line"].is_string()).collect();
    // All but the batch of consent records, which names someone else too.
    assert_eq!(with_line.len(), entries.len() - 1);
    for e in with_line {
        let line = e["line"].as_str().unwrap();
        let digest = sha2::Sha256::digest(line.as_bytes());
        let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(e["hash"].as_str().unwrap(), hash, "{e}");
    }
}

#[test]
fn the_opt_out_and_the_consent_say_who_entered_them_and_their_source() {
    let entries = history().1["entries"].as_array().unwrap().clone();
    let admin: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "admin").collect();
    let optout = &admin[1]["record"];
    assert_eq!(optout["detail"]["source"], "called in");
    assert!(
        optout["who"].as_str().unwrap().contains("127.0.0.1"),
        "{optout}"
    );
    let consent = &admin[0]["record"]["detail"]["consents"][0];
    assert_eq!(consent["number"], NUMBER);
    assert_eq!(consent["evidence"], "web form 7");
    let blocked = &entries[4]["record"];
    assert_eq!(blocked["reasons"][0], "internal_dnc", "{blocked}");
}

/// A batch of consent records shows the number's own record only, and not the batch's size,
/// in the dossier and in the records API asked by number.
#[test]
fn a_batch_of_consents_shows_only_the_numbers_own() {
    let (_, d, _, api) = history();
    let batch = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["record"]["action"] == "consent_add")
        .unwrap();
    let api_batch = &api["records"][0]["record"]["admin"];
    for detail in [&batch["record"]["detail"], &api_batch["detail"]] {
        assert_eq!(detail["consents"].as_array().unwrap().len(), 1, "{detail}");
        assert_eq!(detail["consents"][0]["number"], NUMBER);
        assert!(detail.get("records").is_none(), "{detail}");
        assert!(!detail.to_string().contains("2125550100"), "{detail}");
    }
    assert!(batch["line"].is_null());
}

#[test]
fn the_html_dossier_is_one_printable_page_of_the_same_records() {
    let (_, json, html, _) = history();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains(NUMBER));
    assert!(!html.contains("<script"));
    assert!(!html.contains("NOT VERIFIED"));
    for e in json["entries"].as_array().unwrap() {
        assert!(html.contains(e["hash"].as_str().unwrap()), "{e}");
    }
}

/// `callgate records reindex DIR`.
fn reindex(dir: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(["records", "reindex", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The opt-out changed to name another number (its length kept) and the index rebuilt: the
/// record is no longer found for the number, but its day's chain breaks, and the dossier
/// says so.
#[test]
fn a_record_changed_away_from_the_number_still_breaks_the_dossier() {
    let copy = copy_of_history();
    let day = day_file(copy.path());
    let text = std::fs::read_to_string(&day).unwrap();
    let optout = text.lines().find(|l| l.contains("optout_add")).unwrap();
    let changed = text.replace(optout, &optout.replace(NUMBER, "+14155550109"));
    std::fs::write(&day, changed).unwrap();
    reindex(copy.path());
    let out = copy.path().join("dossier.json");
    let said = dossier_of(copy.path(), &out);
    let d: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let seen: Vec<String> = d["entries"].as_array().unwrap().iter().map(what).collect();
    assert!(!seen.contains(&"admin optout_add".to_string()), "{seen:?}");
    assert_eq!(d["counts"]["days_not_verified"], 1, "{d:#}");
    assert!(said.contains("NOT VERIFIED"), "{said}");
}

fn day_file(dir: &Path) -> std::path::PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
}

/// The dossier of a copy of the log: `records dossier DIR --number N --out FILE`.
fn dossier_of(dir: &Path, out: &Path) -> String {
    let result = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args([
            "records",
            "dossier",
            dir.to_str().unwrap(),
            "--number",
            "(415) 555-0100",
        ])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{said}");
    said
}

fn copy_of_history() -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(history().0.path()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
    }
    copy
}

#[test]
fn the_command_line_dossier_is_the_apis() {
    let copy = copy_of_history();
    let out = copy.path().join("dossier.json");
    dossier_of(copy.path(), &out);
    let cli: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let api = &history().1;
    assert_eq!(cli["entries"], api["entries"]);
}

/// One byte of the first call record changed (its length kept): that record and every line
/// after it in its day show as not verified; the decision before it still verifies.
#[test]
fn a_changed_line_shows_as_not_verified() {
    let copy = copy_of_history();
    let day = day_file(copy.path());
    let text = std::fs::read_to_string(&day).unwrap();
    let changed = text.replacen(
        "\"disposition\":\"answered\"",
        "\"disposition\":\"answereD\"",
        1,
    );
    assert_ne!(text, changed);
    std::fs::write(&day, changed).unwrap();
    let out = copy.path().join("dossier.json");
    let said = dossier_of(copy.path(), &out);
    assert!(said.contains("NOT VERIFIED"), "{said}");
    let d: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let verified: Vec<bool> = d["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["verified"].as_bool().unwrap())
        .collect();
    assert_eq!(verified, [true, false, false, false, false, false]);
    let html_out = copy.path().join("dossier.html");
    dossier_of(copy.path(), &html_out);
    let html = std::fs::read_to_string(html_out).unwrap();
    assert!(html.contains("NOT VERIFIED"));
}
