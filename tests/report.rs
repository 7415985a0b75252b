//! `callgate report` on records made by real sipp calls through the binary: the counts of
//! the period, and the list versions in service each day.

mod common;
use common::peers::{dialer, Callgate, Carrier};
use common::run_cli;
use serde_json::Value;

/// Today's report (JSON) after one blocked and one answered sipp call.
fn todays_report() -> Value {
    let carrier = Carrier::start();
    let cg = Callgate::start(carrier.port);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer(
            "uac_expect_reject.xml",
            &["2125550143"],
            cg.sip,
            work.path()
        ),
        0
    );
    assert_eq!(
        dialer("uac_allow.xml", &["4155550100"], cg.sip, work.path()),
        0
    );
    cg.wait_call_records(2);
    report_of_today(&cg, work.path())
}

/// `callgate report` of today on `cg`'s records, as JSON.
fn report_of_today(cg: &Callgate, work: &std::path::Path) -> Value {
    let today = &callgate::clock::today_at_utc_hour_rfc3339(19)[..10];
    let out = work.join("report.json");
    let config = cg.config.display().to_string();
    let run = run_cli(&[
        "report",
        "--config",
        &config,
        "--from",
        today,
        "--to",
        today,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(run.ok, "{}", run.stderr);
    serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

#[test]
fn the_report_counts_the_calls_placed() {
    let r = todays_report();
    assert_eq!(r["decisions"]["allowed"], 1, "{r:#}");
    assert_eq!(r["decisions"]["blocked"], 1, "{r:#}");
    assert_eq!(r["blocked_by_reason"]["national_dnc"], 1, "{r:#}");
    assert_eq!(r["calls"]["answered"], 1, "{r:#}");
    assert_eq!(r["calls"]["rejected"], 1, "{r:#}");
}

#[test]
fn the_report_shows_the_national_list_and_its_age_each_day() {
    let r = todays_report();
    let national = r["days"][0]["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == "national")
        .cloned()
        .unwrap();
    // Downloaded two days before the test ran; callgate's clock says 19:00 UTC today, so the
    // whole days between are 1 or 2 depending on the hour the test runs.
    let age = national["age_days"].as_i64().unwrap();
    assert!((1..=2).contains(&age), "{r:#}");
    assert_eq!(national["fresh"], true);
    assert_eq!(r["stale_days"].as_array().unwrap().len(), 0);
}

#[test]
fn a_report_of_a_period_backwards_is_refused_naming_it() {
    let run = run_cli(&[
        "report",
        "--from",
        "2026-02-01",
        "--to",
        "2026-01-01",
        "--out",
        "/dev/null",
    ]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("--from 2026-02-01 is not before --to 2026-01-01"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_report_names_the_state_of_each_blocked_call() {
    let r = todays_report();
    let states: u64 = r["blocked_by_state"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(states, 1, "{r:#}");
    assert_eq!(r["blocked_by_state"]["NY"], 1, "212 is New York's: {r:#}");
}

#[test]
fn the_report_shows_an_opt_out_and_the_first_call_blocked_after_it() {
    let carrier = Carrier::start();
    let cg = Callgate::start(carrier.port);
    let work = tempfile::tempdir().unwrap();
    let (status, body) = common::http(
        cg.admin,
        "POST",
        "/v1/optouts",
        r#"{"number":"4155550142","source":"letter"}"#,
        None,
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        dialer(
            "uac_expect_reject.xml",
            &["4155550142"],
            cg.sip,
            work.path()
        ),
        0
    );
    cg.wait_call_records(1);
    let r = report_of_today(&cg, work.path());
    let o = &r["optouts"][0];
    assert_eq!(o["number"], "+14155550142", "{r:#}");
    assert_eq!(o["source"], "letter");
    assert!(o["first_blocked"].is_string(), "{r:#}");
    assert!(o["hours"].as_f64().unwrap() >= 0.0);
}

/// A call to a number on the national list whose owner gave written consent: allowed.
fn consented_call() -> (Callgate, Carrier, tempfile::TempDir) {
    let carrier = Carrier::start();
    let cg = Callgate::start(carrier.port);
    let work = tempfile::tempdir().unwrap();
    let consent = r#"[{"number":"2125550143","type":"pewc","captured":"2026-01-02","evidence":"signed form 12"}]"#;
    let (status, body) = common::http(cg.admin, "POST", "/v1/consent", consent, None);
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        dialer("uac_allow.xml", &["2125550143"], cg.sip, work.path()),
        0
    );
    cg.wait_call_records(1);
    (cg, carrier, work)
}

#[test]
fn the_report_counts_the_calls_a_consent_record_let_through_by_its_type() {
    let (cg, _carrier, work) = consented_call();
    let r = report_of_today(&cg, work.path());
    assert_eq!(r["consent_used"]["pewc"], 1, "{r:#}");
    assert_eq!(r["decisions"]["allowed"], 1, "{r:#}");
}

#[test]
fn a_dossier_says_which_consent_record_a_call_went_ahead_under() {
    let (cg, _carrier, _work) = consented_call();
    let path = "/v1/records/dossier?number=2125550143&format=html";
    let (status, body) = common::http(cg.admin, "GET", path, "", None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Decision: allowed, under pewc record 1"),
        "{body}"
    );
}
