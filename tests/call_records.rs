//! Call records, in-process: every call the dialers place ends in one record of the audit log,
//! linked to its decision, saying how it ended, who ended it and how long it lasted (TSR
//! 310.5(a)(2)). UDP sockets on loopback play the dialer and the carrier. One behaviour per
//! test.

mod common;
use common::calls::*;
use common::*;
use serde_json::Value;
use std::time::Duration;

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

#[test]
fn answered_call_hung_up_by_the_dialer_is_answered_and_ended_by_the_dialer() {
    let h = Harness::start();
    let a = answer(&h, "rec-dialer-bye");
    std::thread::sleep(Duration::from_millis(300)); // the call's length, as a dialer holds it
    dialer_hangs_up(&h, &a, "");
    let r = record(&h, "rec-dialer-bye");
    assert_eq!(r["disposition"], "answered");
    assert_eq!(r["ended_by"], "dialer");
    assert_eq!(r["direction"], "outbound");
    assert_eq!(r["called"], "+14155550100");
    let duration = r["duration_ms"].as_u64().unwrap();
    assert!((300..700).contains(&duration), "duration {duration} ms");
    assert_eq!(
        ms(&r["ended_at"]) - ms(&r["answered_at"]),
        duration as i64,
        "duration is answer to end"
    );
    assert!(ms(&r["ringing_at"]) >= ms(&r["invite_at"]));
    assert!(r["setup_ms"].as_u64().is_some());
}

#[test]
fn call_record_names_its_decision() {
    let h = Harness::start();
    let a = answer(&h, "rec-link");
    dialer_hangs_up(&h, &a, "");
    let decision = decision_of(&h, "rec-link");
    assert_eq!(decision.len(), 1);
    assert_eq!(record(&h, "rec-link")["decision"], decision[0]["id"]);
}

#[test]
fn answered_call_hung_up_by_the_carrier_is_ended_by_the_carrier() {
    let h = Harness::start();
    let a = answer(&h, "rec-carrier-bye");
    h.send_carrier(&from_carrier(
        &h,
        &a,
        "BYE",
        1,
        "Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n",
    ));
    let bye = h.recv_dialer().unwrap();
    assert!(bye.starts_with("BYE "), "{bye}");
    let r = record(&h, "rec-carrier-bye");
    assert_eq!(r["disposition"], "answered");
    assert_eq!(r["ended_by"], "carrier");
    assert_eq!(r["q850_cause"], 16);
}

fn refused_by_carrier(status: u16, phrase: &str, call_id: &str) -> Value {
    let h = Harness::start();
    let inv = place(&h, call_id);
    h.send_carrier(&reply(&inv, status, phrase, ""));
    assert!(h
        .recv_dialer()
        .unwrap()
        .starts_with(&format!("SIP/2.0 {status}")));
    record(&h, call_id)
}

#[test]
fn busy_is_recorded_busy_with_its_status() {
    let r = refused_by_carrier(486, "Busy Here", "rec-busy");
    assert_eq!(r["disposition"], "busy");
    assert_eq!(r["sip_status"], 486);
    assert_eq!(r["ended_by"], "carrier");
    assert_eq!(r["duration_ms"], 0);
}

#[test]
fn temporarily_unavailable_is_no_answer() {
    let r = refused_by_carrier(480, "Temporarily Unavailable", "rec-480");
    assert_eq!(r["disposition"], "no_answer");
}

#[test]
fn request_timeout_is_no_answer() {
    let r = refused_by_carrier(408, "Request Timeout", "rec-408");
    assert_eq!(r["disposition"], "no_answer");
}

#[test]
fn another_failure_is_failed_with_its_status() {
    let r = refused_by_carrier(503, "Service Unavailable", "rec-503");
    assert_eq!(r["disposition"], "failed");
    assert_eq!(r["sip_status"], 503);
}

#[test]
fn cancel_before_answer_is_cancelled_by_the_dialer() {
    let h = Harness::start();
    let text = h.invite("4155550100", "rec-cancel");
    h.send_dialer(&text);
    let inv = h.recv_carrier().unwrap();
    let _trying = h.recv_dialer().unwrap();
    h.send_dialer(&cancel_for(&text));
    let cancel = h.recv_carrier().unwrap();
    h.send_carrier(&reply(&cancel, 200, "OK", ""));
    let _ = h.recv_dialer();
    h.send_carrier(&reply(&inv, 487, "Request Terminated", ""));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 487"));
    let r = record(&h, "rec-cancel");
    assert_eq!(r["disposition"], "cancelled");
    assert_eq!(r["ended_by"], "dialer");
    assert!(r["answered_at"].is_null());
}

#[test]
fn blocked_call_is_recorded_rejected_with_callgate_reasons() {
    let h = Harness::start();
    h.send_dialer(&h.invite("2125550143", "rec-blocked"));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 603"));
    let r = record(&h, "rec-blocked");
    assert_eq!(r["disposition"], "rejected");
    assert_eq!(r["reasons"], serde_json::json!(["national_dnc"]));
    assert_eq!(r["ended_by"], "callgate");
    assert_eq!(r["sip_status"], 603);
    assert_eq!(r["decision"], decision_of(&h, "rec-blocked")[0]["id"]);
}

#[test]
fn refer_makes_the_call_transferred_with_its_target() {
    let h = Harness::start();
    let a = answer(&h, "rec-refer");
    let target = "Refer-To: <sip:+13125550123@pbx.example.com>\r\n";
    h.send_dialer(&from_dialer(&h, &a, "REFER", 2, target));
    let refer = h.recv_carrier().unwrap();
    assert!(refer.starts_with("REFER "), "{refer}");
    h.send_carrier(&reply(&refer, 202, "Accepted", ""));
    let _ = h.recv_dialer();
    h.send_dialer(&from_dialer(&h, &a, "BYE", 3, ""));
    let _ = h.recv_carrier().unwrap();
    let r = record(&h, "rec-refer");
    assert_eq!(r["disposition"], "transferred");
    assert_eq!(r["transfer_to"], "sip:+13125550123@pbx.example.com");
}

#[test]
fn reinvite_is_not_a_new_call() {
    let h = Harness::start();
    let a = answer(&h, "rec-reinvite");
    h.send_dialer(&from_dialer(&h, &a, "INVITE", 2, ""));
    let re = h.recv_carrier().unwrap();
    assert!(re.starts_with("INVITE "), "{re}");
    h.send_carrier(&reply(&re, 200, "OK", ""));
    let _ = h.recv_dialer();
    assert!(
        call_records(&h, "rec-reinvite").is_empty(),
        "the call goes on"
    );
    dialer_hangs_up(&h, &a, "");
    assert_eq!(decision_of(&h, "rec-reinvite").len(), 1, "one decision");
    assert_eq!(record(&h, "rec-reinvite")["disposition"], "answered");
}

#[test]
fn retransmitted_bye_writes_one_record() {
    let h = Harness::start();
    let a = answer(&h, "rec-bye-twice");
    let bye = from_dialer(&h, &a, "BYE", 2, "");
    h.send_dialer(&bye);
    let _ = h.recv_carrier().unwrap();
    h.send_dialer(&bye);
    let _ = h.recv_carrier().unwrap();
    record(&h, "rec-bye-twice");
}

#[test]
fn dialer_marking_abandoned_on_its_bye_makes_the_call_abandoned() {
    let h = Harness::start();
    let a = answer(&h, "rec-abandoned");
    dialer_hangs_up(&h, &a, "X-Callgate-Disposition: abandoned\r\n");
    assert_eq!(record(&h, "rec-abandoned")["disposition"], "abandoned");
}

#[test]
fn a_second_fork_answering_does_not_change_the_call() {
    let h = Harness::start();
    let a = answer(&h, "rec-fork");
    // Another fork's 200 (another To tag): relayed for the dialer to ACK and BYE, not news.
    let other = reply(&a.inv, 200, "OK", "").replace(";tag=uas1", ";tag=fork2");
    h.send_carrier(&other);
    let _ = h.recv_dialer().unwrap();
    let other_bye = from_dialer(&h, &a, "BYE", 2, "").replace(";tag=uas1", ";tag=fork2");
    h.send_dialer(&other_bye);
    let _ = h.recv_carrier().unwrap();
    assert!(
        call_records(&h, "rec-fork").is_empty(),
        "the answered fork goes on"
    );
    dialer_hangs_up(&h, &a, "");
    assert_eq!(record(&h, "rec-fork")["disposition"], "answered");
}

#[test]
fn a_call_without_bye_ends_at_the_longest_call_as_timeout() {
    let h = Harness::with(Some(2), "[calls]\nmax_duration_secs = 1\n");
    let _a = answer(&h, "rec-timeout");
    let r = record_within(&h, "rec-timeout", Duration::from_secs(5));
    assert_eq!(r["ended_by"], "timeout");
    assert_eq!(r["disposition"], "answered");
}

#[test]
fn session_expires_of_the_answer_limits_the_call() {
    let h = Harness::start();
    let inv = place(&h, "rec-session");
    h.send_carrier(&reply(
        &inv,
        200,
        "OK",
        "Session-Expires: 1;refresher=uas\r\n",
    ));
    let _ok = h.recv_dialer().unwrap();
    let r = record_within(&h, "rec-session", Duration::from_secs(5));
    assert_eq!(r["ended_by"], "timeout");
}

#[test]
fn a_graceful_stop_records_open_calls_as_stopped() {
    let mut h = Harness::start();
    let _a = answer(&h, "rec-stop");
    let dir = h.dir.join("audit");
    h.stop();
    let recs: Vec<Value> = audit_lines(&dir)
        .into_iter()
        .filter_map(|l| l.get("call").cloned())
        .filter(|c| c["call_id"] == "rec-stop")
        .collect();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["ended_by"], "callgate_stopped");
    assert_eq!(recs[0]["disposition"], "answered");
}

#[test]
fn record_carries_campaign_telemarketer_and_caller_id() {
    let h = Harness::with(
        Some(2),
        "[dialers.names]\nacme-vicidial = [\"127.0.0.0/8\"]\n[[campaign]]\nid = \"default\"\nseller = \"Acme Solar\"\nsubject = \"solar panels\"\naudience = \"business\"\nscript = \"solar-v2\"\n",
    );
    let a = answer(&h, "rec-fields");
    dialer_hangs_up(&h, &a, "");
    let r = record(&h, "rec-fields");
    assert_eq!(r["telemarketer"], "acme-vicidial");
    assert_eq!(r["seller"], "Acme Solar");
    assert_eq!(r["subject"], "solar panels");
    assert_eq!(r["audience"], "business");
    assert_eq!(r["script"], "solar-v2");
    assert_eq!(r["campaign"], "default");
    assert_eq!(r["caller_id"], "+12025550100");
    assert_eq!(r["caller_name"], "Dialer");
    assert_eq!(r["prerecorded"], false);
}

#[test]
fn calls_are_counted_by_disposition_and_open_calls_are_a_gauge() {
    let h = Harness::start();
    let a = answer(&h, "rec-metrics");
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(m.contains("callgate_calls_open 1"), "{m}");
    dialer_hangs_up(&h, &a, "");
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(m.contains("callgate_calls_open 0"), "{m}");
    assert!(
        m.contains("callgate_calls_total{disposition=\"answered\"} 1"),
        "{m}"
    );
    assert!(m.contains("callgate_call_duration_seconds_count 1"), "{m}");
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .output()
        .unwrap()
}

/// Two calls to 415 555 0100 (answered, busy) and one to 415 555 0101.
fn three_records() -> Harness {
    let h = Harness::start();
    let a = answer(&h, "find-1");
    dialer_hangs_up(&h, &a, "");
    let inv = place(&h, "find-2");
    h.send_carrier(&reply(&inv, 486, "Busy Here", ""));
    let _ = h.recv_dialer();
    h.send_dialer(
        &h.invite("4155550101", "find-3")
            .replace("z9hG4bK-1", "z9hG4bK-3"),
    );
    let inv = h.recv_carrier().unwrap();
    let _ = h.recv_dialer();
    h.send_carrier(&reply(&inv, 480, "Temporarily Unavailable", ""));
    let _ = h.recv_dialer();
    h.run().app.audit.flush();
    h
}

#[test]
fn records_find_lists_every_call_to_a_number() {
    let h = three_records();
    let dir = h.dir.join("audit");
    let out = cli(&[
        "records",
        "find",
        dir.to_str().unwrap(),
        "--number",
        "(415) 555-0100",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("answered") && lines[1].contains("busy"),
        "{text}"
    );
}

#[test]
fn records_find_needs_a_number() {
    let h = three_records();
    let out = cli(&["records", "find", h.dir.join("audit").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--number is required"));
}

#[test]
fn records_export_csv_has_one_column_per_field_of_a_call_record() {
    let h = three_records();
    let dir = h.dir.join("audit");
    let out = cli(&["records", "export", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header, callgate::records::export::CSV_COLUMNS);
    let rec = record(&h, "find-1");
    let keys: Vec<&str> = rec
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "reasons")
        .collect();
    let columns: Vec<&str> = header.iter().copied().filter(|c| *c != "reasons").collect();
    let (mut k, mut c) = (keys.clone(), columns.clone());
    k.sort();
    c.sort();
    assert_eq!(k, c, "every field of a record has its column, and no more");
    assert_eq!(text.lines().count(), 4, "a header and three calls: {text}");
}

#[test]
fn records_export_keeps_one_disposition() {
    let h = three_records();
    let dir = h.dir.join("audit");
    let out = cli(&[
        "records",
        "export",
        dir.to_str().unwrap(),
        "--disposition",
        "no_answer",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let recs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "{text}");
    assert_eq!(recs[0]["call_id"], "find-3");
}

#[test]
fn records_export_names_a_bad_disposition() {
    let h = three_records();
    let out = cli(&[
        "records",
        "export",
        h.dir.join("audit").to_str().unwrap(),
        "--disposition",
        "hung",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--disposition `hung`"));
    assert!(out.stdout.is_empty());
}

const AUTHORIZED: &str = "[[campaign]]\nid = \"default\"\ncaller_ids = [{ number = \"+12025550100\", authorized_from = \"2026-01-01\", authorized_to = \"2099-12-31\", evidence = \"LOA 2026-014\" }]\n";

#[test]
fn record_carries_the_caller_id_authority() {
    let h = Harness::with(Some(2), AUTHORIZED);
    let a = answer(&h, "rec-loa");
    dialer_hangs_up(&h, &a, "");
    let r = record(&h, "rec-loa");
    assert_eq!(r["caller_id_evidence"], "LOA 2026-014");
    assert_eq!(r["caller_id_authorized_from"], "2026-01-01");
    assert_eq!(r["caller_id_authorized_to"], "2099-12-31");
}

#[test]
fn a_caller_id_presented_outside_its_authorized_period_is_blocked() {
    // The authority ended yesterday (the harness's clock is today).
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d");
    let expired = AUTHORIZED
        .replace("2026-01-01", "2000-01-01")
        .replace("2099-12-31", &yesterday.to_string());
    let h = Harness::with(Some(2), &expired);
    h.send_dialer(&h.invite("4155550100", "rec-loa-expired"));
    let r = h.recv_dialer().unwrap();
    assert!(
        r.starts_with("SIP/2.0 403") || r.starts_with("SIP/2.0 603"),
        "{r}"
    );
    assert!(
        header(&r, "reason").unwrap().contains("caller_id_unlisted"),
        "{r}"
    );
}

#[test]
fn a_bad_authorized_date_names_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        dir.path(),
        "127.0.0.1:5060".parse().unwrap(),
        &AUTHORIZED.replace("2026-01-01", "Jan 1"),
    );
    let e = callgate::config::Config::from_str_named("test.toml", &text)
        .and_then(|c| callgate::policy::Policy::new(&c).map(|_| ()));
    let msg = format!("{:#}", e.expect_err("a bad date is an error"));
    assert!(msg.contains("authorized_from `Jan 1`"), "{msg}");
}

#[test]
fn an_answered_call_the_dialer_ends_within_abandon_secs_is_abandoned() {
    let h = Harness::with(Some(2), "[calls]\nabandon_secs = 2\n");
    let a = answer(&h, "rec-quick");
    dialer_hangs_up(&h, &a, "");
    assert_eq!(record(&h, "rec-quick")["disposition"], "abandoned");
}

#[test]
fn the_abandonment_rate_of_a_campaign_is_a_metric() {
    let h = Harness::start();
    let a = answer(&h, "ab-1");
    dialer_hangs_up(&h, &a, "X-Callgate-Disposition: abandoned\r\n");
    let a = answer(&h, "ab-2");
    dialer_hangs_up(&h, &a, "");
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_campaign_abandonment_ratio{campaign=\"default\"} 0.5"),
        "{m}"
    );
}

#[test]
fn a_campaign_over_its_abandonment_limit_places_no_marketing_call() {
    let h = Harness::with(
        Some(2),
        "[[campaign]]\nid = \"default\"\nmax_abandonment_rate = 0.03\nabandonment_min_answered = 2\n",
    );
    for id in ["lim-1", "lim-2"] {
        let a = answer(&h, id);
        dialer_hangs_up(&h, &a, "X-Callgate-Disposition: abandoned\r\n");
    }
    h.send_dialer(
        &h.invite("4155550100", "lim-3")
            .replace("z9hG4bK-1", "z9hG4bK-lim-3"),
    );
    let r = h.recv_dialer().unwrap();
    assert!(!r.starts_with("SIP/2.0 100"), "{r}");
    assert!(
        header(&r, "reason").unwrap().contains("abandonment_rate"),
        "{r}"
    );
}

#[test]
fn abandonment_counts_survive_a_restart() {
    let mut h = Harness::start();
    let a = answer(&h, "keep-1");
    dialer_hangs_up(&h, &a, "X-Callgate-Disposition: abandoned\r\n");
    h.stop();
    let h2 = Harness::in_dir(h.dir.clone(), "");
    let (_, m) = h2.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_campaign_abandonment_ratio{campaign=\"default\"} 1"),
        "{m}"
    );
}
