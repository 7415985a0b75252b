//! The policy engine through SIP and the admin API: consent records, the state-of-emergency
//! switch, campaign headers, shadow mode, Retry-After and the explain endpoint. (The harness
//! clock reads today at 19:00 UTC, inside every mainland calling window.)

mod common;
use common::*;

fn with_header(invite: &str, header: &str) -> String {
    invite.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{header}\r\n"),
        1,
    )
}

#[test]
fn posted_consent_exempts_a_registry_number_and_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let mut h = Harness::in_dir(tmp.path().to_path_buf(), "");
    let (status, body) = h.http(
        "POST",
        "/v1/consent",
        r#"[{"number":"+12125550143","type":"ebr_purchase","captured":"2020-01-01","expires":"2099-01-01","evidence":"order 42"}]"#,
    );
    assert_eq!(status, 201, "{body}");
    h.send_dialer(&h.invite("2125550143", "consent-1"));
    assert!(h.recv_carrier().unwrap().starts_with("INVITE "));
    h.stop();
    let h2 = Harness::in_dir(tmp.path().to_path_buf(), "");
    h2.send_dialer(&h2.invite("2125550143", "consent-2"));
    assert!(
        h2.recv_carrier().unwrap().starts_with("INVITE "),
        "consent kept across restart"
    );
}

#[test]
fn an_rnd_answer_voids_the_consent_before_the_disconnection_and_says_so() {
    let h = Harness::start();
    let csv = "number,type,captured,expires,evidence,answer,queried\n\
        +12125550143,pewc,2026-01-01,,form 7,,\n\
        +12125550143,rnd,2026-01-01,,rnd query 99,yes,2026-02-01\n";
    let (status, body) = h.http("POST", "/v1/consent", csv);
    assert_eq!(status, 201, "{body}");
    let (_, body) = h.http("GET", "/v1/check?number=2125550143", "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "blocked", "{body}");
    let codes: Vec<&str> = v["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["code"].as_str())
        .collect();
    assert_eq!(codes, ["national_dnc", "number_reassigned"], "{body}");
    assert_eq!(v["context"]["rnd_used"]["answer"], "yes", "{body}");
    assert_eq!(
        v["context"]["rnd_used"]["evidence"], "rnd query 99",
        "{body}"
    );
}

#[test]
fn an_rnd_answer_without_its_answer_is_refused_and_changes_nothing() {
    let h = Harness::start();
    let body = r#"[{"number":"+12125550143","type":"rnd","captured":"2026-01-01","queried":"2026-02-01"}]"#;
    let (status, text) = h.http("POST", "/v1/consent", body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("answer"), "{text}");
    let (_, held) = h.http("GET", "/v1/consent?number=2125550143", "");
    assert!(!held.contains("rnd"), "{held}");
}

#[test]
fn a_csv_import_with_one_bad_line_is_refused_whole() {
    let h = Harness::start();
    let (status, body) = h.http(
        "POST",
        "/v1/consent",
        "number,type,captured\n+12125550143,pewc,2026-01-01\n+12125550144,pewc,last week\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("body:3"), "names the line: {body}");
    h.send_dialer(&h.invite("2125550143", "csv-refused"));
    assert!(
        h.recv_dialer().unwrap().contains("national_dnc"),
        "first row not applied either"
    );
}

#[test]
fn the_emergency_switch_closes_a_state_at_once_and_persists() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let mut h = Harness::in_dir(tmp.path().to_path_buf(), "");
    let (status, body) = h.http("PUT", "/v1/emergency", r#"{"states":["CA"]}"#);
    assert_eq!(status, 200, "{body}");
    h.send_dialer(&h.invite("4155550100", "soe-1"));
    assert!(h.recv_dialer().unwrap().contains("state_of_emergency"));
    h.stop();
    let h2 = Harness::in_dir(tmp.path().to_path_buf(), "");
    h2.send_dialer(&h2.invite("4155550100", "soe-2"));
    assert!(
        h2.recv_dialer().unwrap().contains("state_of_emergency"),
        "closure kept across restart"
    );
    assert_eq!(h2.http("PUT", "/v1/emergency", "{}").0, 200);
    // A new transaction (its own branch), not a retransmission of soe-2.
    h2.send_dialer(
        &h2.invite("4155550100", "soe-3")
            .replace("z9hG4bK-1", "z9hG4bK-soe3"),
    );
    assert!(h2.recv_carrier().unwrap().starts_with("INVITE "));
}

#[test]
fn an_unknown_emergency_state_is_refused_with_400() {
    let h = Harness::start();
    assert_eq!(
        h.http("PUT", "/v1/emergency", r#"{"states":["ZZ"]}"#).0,
        400
    );
}

#[test]
fn a_call_outside_hours_is_rejected_with_retry_after() {
    let h = Harness::start();
    // Guam at 19:00 UTC is 05:00 the next morning: the window opens at 08:00, in 3 hours.
    h.send_dialer(&h.invite("6715550100", "guam-1"));
    let r = h.recv_dialer_final().unwrap();
    assert!(r.contains("outside_hours"), "{r}");
    let retry: u32 = headers(&r, "retry-after")[0].trim().parse().unwrap();
    assert!((3 * 3600 - 120..=3 * 3600).contains(&retry), "{retry}");
}

#[test]
fn an_unknown_campaign_header_is_rejected() {
    let h = Harness::start();
    h.send_dialer(&with_header(
        &h.invite("4155550100", "camp-1"),
        "X-Callgate-Campaign: nope",
    ));
    assert!(h.recv_dialer_final().unwrap().contains("unknown_campaign"));
}

#[test]
fn a_call_type_header_outside_the_campaign_is_rejected() {
    let h = Harness::start();
    h.send_dialer(&with_header(
        &h.invite("4155550100", "type-1"),
        "X-Callgate-Call-Type: prerecorded",
    ));
    assert!(h
        .recv_dialer_final()
        .unwrap()
        .contains("call_type_not_allowed"));
}

#[test]
fn a_withheld_caller_id_is_rejected_for_marketing() {
    let h = Harness::start();
    h.send_dialer(&with_header(
        &h.invite("4155550100", "cid-1"),
        "Privacy: id",
    ));
    assert!(h.recv_dialer_final().unwrap().contains("caller_id_missing"));
}

#[test]
fn shadow_mode_forwards_and_records_would_block() {
    let h = Harness::with(Some(2), "\n[[campaign]]\nid = \"default\"\nshadow = true\n");
    h.send_dialer(&h.invite("2125550143", "shadow-1"));
    assert!(
        h.recv_carrier().unwrap().starts_with("INVITE "),
        "forwarded anyway"
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "shadow-1")
        .expect("record");
    assert_eq!(rec["verdict"], "would_block");
    assert_eq!(rec["reasons"][0], "national_dnc");
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(m.contains("verdict=\"would_block\""), "counted");
}

#[test]
fn check_explains_the_binding_zone_local_time_and_rules() {
    let h = Harness::start();
    let (status, body) = h.http(
        "GET",
        "/v1/check?number=850-555-0100&at=2026-11-24T13:30:00Z",
        "",
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "blocked");
    assert_eq!(v["context"]["binding_zone"], "America/Chicago");
    assert_eq!(v["context"]["local_time"], "2026-11-24T07:30:00");
    assert_eq!(v["context"]["retry_after_secs"], 1800);
    let checks = v["checks"].as_array().unwrap();
    let fed = checks
        .iter()
        .find(|c| c["check"] == "federal.hours")
        .unwrap();
    assert_eq!(fed["outcome"], "block");
    assert!(fed["source"].as_str().unwrap().contains("64.1200"));
    assert!(v["context"]["versions"]["rules"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}

#[test]
fn the_audit_record_carries_campaign_place_and_checks() {
    let h = Harness::start();
    h.send_dialer(&h.invite("4155550100", "ctx-1"));
    assert!(h.recv_carrier().is_some());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "ctx-1")
        .expect("record");
    assert_eq!(rec["policy"]["campaign"], "default");
    assert_eq!(rec["policy"]["npa_state"], "CA");
    assert_eq!(rec["policy"]["binding_zone"], "America/Los_Angeles");
    assert!(rec["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "federal.hours=pass"));
}

#[test]
fn frequency_cap_counts_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let mut h = Harness::in_dir(tmp.path().to_path_buf(), "");
    // Florida: 3 calls per rolling 24 hours per subject.
    for i in 0..3 {
        let tag = format!("cap-{i}");
        h.send_dialer(
            &h.invite("3055550100", &tag)
                .replace("z9hG4bK-1", &format!("z9hG4bK-{tag}")),
        );
        assert!(
            h.recv_carrier().unwrap().starts_with("INVITE "),
            "call {i} allowed"
        );
    }
    h.stop();
    let h2 = Harness::in_dir(tmp.path().to_path_buf(), "");
    h2.send_dialer(
        &h2.invite("3055550100", "cap-3")
            .replace("z9hG4bK-1", "z9hG4bK-cap-3"),
    );
    let r = h2.recv_dialer_final().unwrap();
    assert!(r.contains("frequency_cap"), "{r}");
}
