//! Lists, opt-outs and the admin API: reloads, durability, readiness, the check endpoint.

mod common;
use common::*;

#[test]
fn optout_is_honoured_by_the_next_invite() {
    let h = Harness::start();
    let (status, body) = h.http(
        "POST",
        "/v1/optouts",
        r#"{"number":"(415) 555-0100","source":"agent 7"}"#,
    );
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("+14155550100"));
    h.send_dialer(&h.invite("4155550100", "after-optout"));
    assert!(h.recv_dialer().unwrap().contains("text=\"internal_dnc\""));
}

#[test]
fn optout_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let mut h = Harness::in_dir(tmp.path().to_path_buf(), "");
    assert_eq!(
        h.http("POST", "/v1/optouts", r#"{"number":"4155550100"}"#)
            .0,
        201
    );
    h.stop();
    let h2 = Harness::in_dir(tmp.path().to_path_buf(), "");
    h2.send_dialer(&h2.invite("4155550100", "restart-1"));
    assert!(h2.recv_dialer().unwrap().contains("internal_dnc"));
}

#[test]
fn optout_with_a_bad_number_is_refused_with_400() {
    let h = Harness::start();
    let (status, body) = h.http("POST", "/v1/optouts", r#"{"number":"12345"}"#);
    assert_eq!(status, 400, "{body}");
}

#[test]
fn bad_list_file_is_rejected_whole_and_the_list_in_service_stays() {
    let h = Harness::start();
    std::fs::write(
        h.dir.join("data/national.txt"),
        "4155550100\nnot-a-number\n",
    )
    .unwrap();
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.contains("national.txt:2"),
        "error names file and line: {body}"
    );
    // The old list (with 2125550143, without 4155550100) is still in service.
    h.send_dialer(&h.invite("2125550143", "kept-1"));
    assert!(h.recv_dialer().unwrap().contains("national_dnc"));
    h.send_dialer(
        &h.invite("4155550100", "kept-2")
            .replace("z9hG4bK-1", "z9hG4bK-2"),
    );
    assert!(h.recv_carrier().is_some());
}

#[test]
fn reload_swaps_in_a_new_list() {
    let h = Harness::start();
    std::fs::write(h.dir.join("data/national.txt"), "4155550100\n").unwrap();
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    h.send_dialer(&h.invite("4155550100", "new-list"));
    assert!(h.recv_dialer().unwrap().contains("national_dnc"));
}

#[test]
fn check_explains_a_blocked_number() {
    let h = Harness::start();
    let (status, body) = h.http("GET", "/v1/check?number=%2B1-212-555-0143", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "blocked");
    assert_eq!(v["reasons"][0]["code"], "national_dnc");
    assert_eq!(v["sip_status"], 603);
    assert_eq!(v["matched_lists"][0]["id"], "national");
}

#[test]
fn check_explains_an_allowed_number() {
    let h = Harness::start();
    let v: serde_json::Value =
        serde_json::from_str(&h.http("GET", "/v1/check?number=4155550100", "").1).unwrap();
    assert_eq!(v["verdict"], "allowed");
    assert_eq!(v["reasons"].as_array().unwrap().len(), 0);
}

#[test]
fn check_explains_a_canadian_number_by_the_crtc_rules_not_the_us_ones() {
    let h = Harness::start();
    let (status, body) = h.http("GET", "/v1/check?number=7095550100", "");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["context"]["country"], "CA", "{body}");
    let policy = &v["context"]["country_policy"];
    assert!(
        policy["source"].as_str().unwrap().contains("CRTC"),
        "{body}"
    );
    assert!(
        body.contains("ca.hours") && !body.contains("federal.hours"),
        "{body}"
    );
    assert!(body.contains("America/St_Johns"), "{body}");
}

#[test]
fn check_explains_a_country_without_a_policy() {
    let h = Harness::start();
    let (_, body) = h.http("GET", "/v1/check?number=8765550100", "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["verdict"], "blocked", "{body}");
    assert_eq!(v["reasons"][0]["code"], "country_not_configured", "{body}");
    assert_eq!(v["context"]["country"], "JM", "{body}");
}

#[test]
fn readyz_is_503_when_the_national_list_is_stale() {
    let h = Harness::with(Some(40), "");
    let (status, body) = h.http("GET", "/readyz", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("older than"));
    assert_eq!(h.http("GET", "/healthz", "").0, 200);
}

#[test]
fn readyz_is_200_with_fresh_lists() {
    let h = Harness::start();
    assert_eq!(h.http("GET", "/readyz", "").0, 200);
}

#[test]
fn the_udp_receive_buffer_is_raised_and_shown() {
    // 1 MiB: below the usual net.core.rmem_max, so granted without privileges.
    let h = Harness::with(Some(2), "udp_receive_buffer_bytes = 1048576\n");
    let (_, m) = h.http("GET", "/metrics", "");
    let granted: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("callgate_udp_receive_buffer_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("the gauge");
    assert!(granted >= 1_048_576.0, "{granted}");
}

#[test]
fn metrics_use_prometheus_names() {
    let h = Harness::start();
    h.send_dialer(&h.invite("2125550143", "m-1"));
    h.recv_dialer();
    let (_, m) = h.http("GET", "/metrics", "");
    for name in [
        "callgate_decisions_total{reason=\"national_dnc\",verdict=\"blocked\"} 1",
        "callgate_decision_duration_seconds_bucket",
        "callgate_sip_messages_total{direction=\"in\",method=\"INVITE\",status=\"\"} 1",
        "callgate_list_entries{list=\"national\"} 3",
        "callgate_list_age_seconds{list=\"national\"}",
        "callgate_national_list_fresh 1",
        "callgate_audit_queue_depth",
        "callgate_audit_records_written_total",
        "callgate_optouts_added_total",
        "callgate_upstream_send_errors_total",
    ] {
        assert!(m.contains(name), "missing {name}");
    }
}

#[test]
fn admin_token_is_required_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let carrier = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cfg = config_for(tmp.path(), carrier.local_addr().unwrap(), "");
    cfg.admin.token = Some("s3cret".into());
    let running = callgate::server::start(
        cfg,
        std::sync::Arc::new(callgate::clock::OffsetClock::today_at_utc_hour(19)),
    )
    .unwrap();
    let check = |token| {
        http(
            running.admin_addr,
            "GET",
            "/v1/check?number=4155550100",
            "",
            token,
        )
        .0
    };
    assert_eq!(check(None), 401);
    assert_eq!(check(Some("wrong")), 401);
    assert_eq!(check(Some("s3cret")), 200);
    assert_eq!(http(running.admin_addr, "GET", "/healthz", "", None).0, 200);
    running.shutdown();
}

#[test]
fn config_error_names_file_line_and_key() {
    let e = callgate::config::Config::from_str_named(
        "callgate.toml",
        "[policy]\non_stale_national_list = \"maybe\"\n",
    )
    .unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("callgate.toml:2:"), "{s}");
    assert!(s.contains("policy.on_stale_national_list"), "{s}");
}

#[test]
fn manifest_error_names_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("lists.toml"),
        "[[list]]\nid = \"n\"\nkind = \"nationwide\"\nfile = \"x\"\n",
    )
    .unwrap();
    let e = callgate::lists::Manifest::load(&tmp.path().join("lists.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("lists.toml:3:") && e.contains("kind"), "{e}");
}

#[test]
fn audit_log_is_flushed_on_shutdown() {
    let mut h = Harness::start();
    h.send_dialer(&h.invite("2125550143", "shutdown-1"));
    h.recv_dialer();
    h.stop();
    let lines = audit_lines(&h.dir.join("audit"));
    assert!(lines.iter().any(|r| r["call_id"] == "shutdown-1"));
}

/// What `curl -d '{...}'` sends: a JSON body labelled as a form.
fn post_as_curl_does(h: &Harness, path: &str, body: &str) -> (u16, String) {
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    http_with_headers(h.run().admin_addr, "POST", path, form, body).unwrap()
}

#[test]
fn an_optout_posted_as_curl_posts_it_is_recorded() {
    let h = Harness::start();
    let (status, body) = post_as_curl_does(&h, "/v1/optouts", r#"{"number":"+1 212 555 0100"}"#);
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("+12125550100"), "{body}");
}

#[test]
fn an_optout_with_an_unknown_field_is_refused_saying_which_and_records_nothing() {
    let h = Harness::start();
    let (status, body) = h.http(
        "POST",
        "/v1/optouts",
        r#"{"number":"+12125550100","sorce":"x"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let e = v["error"].as_str().unwrap();
    assert!(e.contains("unknown field `sorce`"), "{e}");
    assert!(h.run().app.lists.optouts.is_empty());
}

#[test]
fn an_optout_body_of_the_wrong_shape_is_described_not_named_by_its_rust_type() {
    let h = Harness::start();
    let (status, body) = h.http("POST", "/v1/optouts", r#""+12125550100""#);
    assert_eq!(status, 400, "{body}");
    assert!(!body.contains("OptOutBody"), "{body}");
    assert!(body.contains("an object with `number`"), "{body}");
}

#[test]
fn a_check_without_a_number_is_answered_in_json() {
    let h = Harness::start();
    let (status, body) = h.http("GET", "/v1/check", "");
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
    assert!(v["error"].as_str().unwrap().contains("number"), "{body}");
}
