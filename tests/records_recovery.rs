//! After a crash, the next start gives every decision without a call record its record, from
//! what the decision holds; an unreadable file in the recovery window is said and counted and
//! does not stop the start. The log is written here by hand, as a crashed run left it.

mod common;
use common::*;
use serde_json::{json, Value};

/// A decision line as callgate writes them (the fields recovery reads).
fn decision(id: &str, call_id: &str, refused: Option<&str>) -> String {
    let mut d = json!({
        "id": id,
        "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "call_id": call_id,
        "source": "127.0.0.1:5070",
        "transport": "udp",
        "from": "\"Acme Sales\" <sip:+12025550100@127.0.0.1>;tag=1",
        "called_raw": "sip:4155550100@127.0.0.1",
        "called_e164": "+14155550100",
        "verdict": "allowed",
        "reasons": [],
        "sip_status": null,
        "policy": {
            "campaign": "spring", "seller": "Acme Corp", "subject": "Acme Corp",
            "audience": "consumer", "script": "spring-v2", "purpose": "marketing",
            "method": "live", "caller_id": "+12025550100"
        }
    });
    if let Some(why) = refused {
        d["refused"] = json!(why);
        d["sip_status"] = json!(503);
    }
    d.to_string()
}

/// A harness started on an audit log that holds `lines` for today, and more `files`.
fn restarted(lines: &[String], files: &[(&str, &[u8])]) -> (Harness, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let audit = tmp.path().join("audit");
    std::fs::create_dir_all(&audit).unwrap();
    let today = chrono::Utc::now().date_naive();
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(audit.join(format!("audit-{today}.jsonl")), text).unwrap();
    for (name, bytes) in files {
        std::fs::write(audit.join(name), bytes).unwrap();
    }
    let h = Harness::in_dir(tmp.path().to_path_buf(), "");
    (h, tmp)
}

fn record_of(h: &Harness, call_id: &str) -> Value {
    let recs: Vec<Value> = h
        .audit_lines()
        .into_iter()
        .filter_map(|l| l.get("call").cloned())
        .filter(|c| c["call_id"] == call_id)
        .collect();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    recs.into_iter().next().unwrap()
}

#[test]
fn a_call_refused_for_unwritable_records_is_recovered_as_rejected() {
    let (h, _tmp) = restarted(
        &[decision("x-1", "refused-1", Some("records_unwritable"))],
        &[],
    );
    let r = record_of(&h, "refused-1");
    assert_eq!(r["disposition"], "rejected");
    assert_eq!(r["ended_by"], "callgate");
    assert_eq!(r["sip_status"], 503);
}

#[test]
fn a_recovered_record_carries_what_its_decision_holds() {
    let (h, _tmp) = restarted(&[decision("x-2", "open-1", None)], &[]);
    let r = record_of(&h, "open-1");
    assert_eq!(r["disposition"], "unknown");
    assert_eq!(r["ended_by"], "restart");
    assert!(r["duration_ms"].is_null(), "an unknown end has no duration");
    for (field, want) in [
        ("telemarketer", "127.0.0.1:5070"),
        ("caller_id", "+12025550100"),
        ("caller_name", "Acme Sales"),
        ("campaign", "spring"),
        ("seller", "Acme Corp"),
        ("subject", "Acme Corp"),
        ("audience", "consumer"),
        ("script", "spring-v2"),
    ] {
        assert_eq!(r[field], want, "{field}: {r:#?}");
    }
}

#[test]
fn a_corrupt_compressed_day_in_the_window_is_counted_and_the_start_goes_on() {
    let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    let name = format!("audit-{yesterday}.jsonl.gz");
    let garbage: &[u8] = b"\x1f\x8b\x08\x00not really gzip at all";
    let (h, _tmp) = restarted(&[decision("x-3", "open-2", None)], &[(&name, garbage)]);
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_records_recovery_unreadable_files_total 1"),
        "{m}"
    );
    assert_eq!(record_of(&h, "open-2")["ended_by"], "restart");
}
