//! Several callgate binaries sharing one PostgreSQL (a real server started by the test, on
//! loopback), with sipp placing the calls: an opt-out posted to one instance is in force on
//! the others; an instance the database cannot confirm current fails closed for marketing
//! calls and says so; a write the database did not commit is refused and changes nothing.

mod common;
use common::peers::{dialer, Callgate, Carrier};
use common::postgres::Postgres;
use common::{http, wait_ready};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The `[shared]` section for `url`: stale after a second without confirmation.
fn shared(url: &str) -> String {
    format!("[shared]\nurl = \"{url}\"\nmax_lag_ms = 1000\npoll_ms = 200\ntimeout_ms = 500\n")
}

/// The verdict `admin` would give a call to `number` now.
fn verdict(admin: SocketAddr, number: &str) -> Value {
    let (status, body) = http(
        admin,
        "GET",
        &format!("/v1/check?number={number}"),
        "",
        None,
    );
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn reasons(v: &Value) -> Vec<String> {
    v["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Wait (bounded, 5 s) until `admin` blocks `number` for `reason`; how long that took.
fn wait_blocked(admin: SocketAddr, number: &str, reason: &str) -> Duration {
    let start = Instant::now();
    while !reasons(&verdict(admin, number)).contains(&reason.to_string()) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{number}: no {reason}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// One instance on the database (with `extra` configuration), confirmed current.
fn one_instance(pg: &Postgres, carrier: &Carrier, extra: &str) -> Callgate {
    let cg = Callgate::start_with(carrier.port, &format!("{}{extra}", shared(&pg.url())));
    wait_ready(cg.admin, 200);
    cg
}

/// Two instances on one database, both confirmed current.
fn two_instances(pg: &Postgres, carrier: &Carrier) -> (Callgate, Callgate) {
    (one_instance(pg, carrier, ""), one_instance(pg, carrier, ""))
}

#[test]
fn an_opt_out_posted_to_one_instance_blocks_the_next_call_through_another() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let optout = r#"{"number":"4155550177","source":"called in"}"#;
    let (status, body) = http(a.admin, "POST", "/v1/optouts", optout, None);
    assert_eq!(status, 201, "{body}");
    let took = wait_blocked(b.admin, "4155550177", "internal_dnc");
    eprintln!("opt-out in force on the other instance after {took:?}");
    let work = tempfile::tempdir().unwrap();
    let rejected = dialer("uac_expect_reject.xml", &["4155550177"], b.sip, work.path());
    assert_eq!(rejected, 0);
    let calls = b.wait_call_records(1);
    assert_eq!(calls[0]["reasons"][0], "internal_dnc", "{calls:?}");
}

#[test]
fn an_opt_out_is_committed_to_the_database_before_it_is_acknowledged() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let a = one_instance(&pg, &carrier, "");
    let optout = r#"{"number":"4155550178","source":"letter"}"#;
    let (status, body) = http(a.admin, "POST", "/v1/optouts", optout, None);
    assert_eq!(status, 201, "{body}");
    let row =
        pg.psql("SELECT seq, kind, body->0->>'number', body->0->>'source' FROM callgate_changes");
    assert_eq!(row, "1|optouts|+14155550178|letter");
}

#[test]
fn an_opt_out_is_in_force_on_the_instance_that_took_it_when_it_answers() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let a = one_instance(&pg, &carrier, "");
    let (status, body) = http(
        a.admin,
        "POST",
        "/v1/optouts",
        r#"{"number":"4155550180"}"#,
        None,
    );
    assert_eq!(status, 201, "{body}");
    let v = verdict(a.admin, "4155550180");
    assert!(reasons(&v).contains(&"internal_dnc".to_string()), "{v}");
}

#[test]
fn consent_posted_to_one_instance_exempts_a_call_through_another() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    // On the national list; its owner gave written consent.
    let consent = r#"[{"number":"2125550143","type":"pewc","captured":"2026-01-02","evidence":"signed form 12"}]"#;
    let (status, body) = http(b.admin, "POST", "/v1/consent", consent, None);
    assert_eq!(status, 201, "{body}");
    let posted = Instant::now();
    while verdict(a.admin, "2125550143")["verdict"] != "allowed" {
        assert!(
            posted.elapsed() < Duration::from_secs(5),
            "consent not in force on A"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["2125550143"], a.sip, work.path()),
        0
    );
}

#[test]
fn an_emergency_closure_set_on_one_instance_closes_the_state_on_another() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let (status, body) = http(
        a.admin,
        "PUT",
        "/v1/emergency",
        r#"{"states":["CA"]}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    wait_blocked(b.admin, "4155550100", "state_of_emergency");
}

#[test]
fn an_instance_restarted_after_a_crash_applies_each_change_once() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, mut b) = two_instances(&pg, &carrier);
    for n in ["4155550181", "4155550182"] {
        let optout = format!(r#"{{"number":"{n}"}}"#);
        let (status, body) = http(a.admin, "POST", "/v1/optouts", &optout, None);
        assert_eq!(status, 201, "{body}");
    }
    let consent = r#"[{"number":"2125550143","type":"pewc","captured":"2026-01-02"}]"#;
    assert_eq!(http(a.admin, "POST", "/v1/consent", consent, None).0, 201);
    let closed = r#"{"states":["CA"]}"#;
    assert_eq!(http(a.admin, "PUT", "/v1/emergency", closed, None).0, 200);
    wait_blocked(b.admin, "4155550100", "state_of_emergency");
    // The cursor is written after the stores: remove it, as a crash between the two would.
    std::fs::remove_file(b._dir.path().join("shared-cursor")).unwrap();
    b.kill_9_and_restart();
    wait_ready(b.admin, 200);
    let lines = |file: &str| {
        let text = std::fs::read_to_string(b._dir.path().join(file)).unwrap_or_default();
        text.lines().count()
    };
    assert_eq!(lines("optouts.jsonl"), 2);
    assert_eq!(lines("consent.jsonl"), 1);
    wait_blocked(b.admin, "4155550181", "internal_dnc");
    wait_blocked(b.admin, "4155550100", "state_of_emergency");
}

#[test]
fn an_instance_started_late_catches_up_past_one_read() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let a = one_instance(&pg, &carrier, "");
    // More changes than one read takes (64).
    for i in 0..100 {
        let optout = format!(r#"{{"number":"41555530{i:02}"}}"#);
        assert_eq!(http(a.admin, "POST", "/v1/optouts", &optout, None).0, 201);
    }
    let b = Callgate::start_with(carrier.port, &shared(&pg.url()));
    wait_ready(b.admin, 200);
    for n in ["4155553000", "4155553063", "4155553064", "4155553099"] {
        assert!(
            reasons(&verdict(b.admin, n)).contains(&"internal_dnc".to_string()),
            "{n}"
        );
    }
}

/// An instance that ran alone, with an opt-out taken, restarted into the cluster.
fn joined_with_an_earlier_opt_out(pg: &Postgres, carrier: &Carrier) -> Callgate {
    let mut a = Callgate::start(carrier.port);
    wait_ready(a.admin, 200);
    let optout = r#"{"number":"4155550191","source":"called in"}"#;
    assert_eq!(http(a.admin, "POST", "/v1/optouts", optout, None).0, 201);
    let mut config = std::fs::read_to_string(&a.config).unwrap();
    config.push_str(&shared(&pg.url()));
    std::fs::write(&a.config, config).unwrap();
    a.kill_9_and_restart();
    wait_ready(a.admin, 200);
    a
}

/// The `at` of each line of an instance's opt-out journal.
fn optout_times(cg: &Callgate) -> Vec<String> {
    let text = std::fs::read_to_string(cg._dir.path().join("optouts.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["at"].to_string())
        .collect()
}

#[test]
fn an_opt_out_taken_before_an_instance_joined_is_shared_when_it_does() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let a = joined_with_an_earlier_opt_out(&pg, &carrier);
    let b = one_instance(&pg, &carrier, "");
    wait_blocked(b.admin, "4155550191", "internal_dnc");
    let row = pg.psql("SELECT who, body->0->>'number', body->0->>'source' FROM callgate_changes");
    assert_eq!(
        row,
        "callgate: opt-outs taken before [shared]|+14155550191|called in"
    );
    // Every instance holds it as taken, not as shared.
    assert_eq!(optout_times(&b), optout_times(&a)[..1]);
    // Its own log says what it shared (written within the audit writer's flush interval).
    let deadline = Instant::now() + Duration::from_secs(5);
    let shared_in_log = || {
        let audit = a.audit();
        audit
            .iter()
            .any(|l| l["admin"]["action"] == "optouts_shared")
    };
    while !shared_in_log() {
        assert!(Instant::now() < deadline, "no optouts_shared record");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_instance_shares_its_earlier_opt_outs_once() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let mut a = joined_with_an_earlier_opt_out(&pg, &carrier);
    a.kill_9_and_restart();
    wait_ready(a.admin, 200);
    assert_eq!(pg.psql("SELECT count(*) FROM callgate_changes"), "1");
}

#[test]
fn an_instance_pointed_at_another_database_than_its_journals_followed_stays_stale_and_shares_nothing(
) {
    let (pg, other) = (Postgres::start(), Postgres::start());
    let carrier = Carrier::start();
    let mut a = one_instance(&pg, &carrier, "");
    let optout = r#"{"number":"4155550192"}"#;
    assert_eq!(http(a.admin, "POST", "/v1/optouts", optout, None).0, 201);
    // Then, as if it had left the cluster: an opt-out taken alone, and no cursor.
    let journal = a._dir.path().join("optouts.jsonl");
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"seq\":2,\"at\":\"2026-12-01T10:00:00Z\",\"number\":\"+14155550193\"}\n");
    std::fs::write(&journal, text).unwrap();
    std::fs::remove_file(a._dir.path().join("shared-cursor")).unwrap();
    let config = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, config.replace(&pg.url(), &other.url())).unwrap();
    a.kill_9_and_restart();
    wait_not_ready_saying(a.admin, "lost changes");
    assert_eq!(other.psql("SELECT count(*) FROM callgate_changes"), "0");
}

/// Wait (bounded, 5 s) until `admin`'s `/readyz` answers 503 with `why` in its body.
fn wait_not_ready_saying(admin: SocketAddr, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = http(admin, "GET", "/readyz", "", None);
        assert_eq!(status, 503, "{body}");
        if body.contains(why) {
            return;
        }
        assert!(Instant::now() < deadline, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_instance_pointed_at_a_database_numbering_other_changes_the_same_stays_stale() {
    let (pg, other) = (Postgres::start(), Postgres::start());
    let carrier = Carrier::start();
    let mut a = one_instance(&pg, &carrier, "");
    let b = one_instance(&other, &carrier, "");
    for (cg, numbers) in [(&a, 20..22), (&b, 30..33)] {
        for i in numbers {
            let optout = format!(r#"{{"number":"41555502{i}"}}"#);
            assert_eq!(http(cg.admin, "POST", "/v1/optouts", &optout, None).0, 201);
        }
    }
    // `other` holds more changes than `a` applied, so their numbers alone do not tell.
    let config = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, config.replace(&pg.url(), &other.url())).unwrap();
    a.kill_9_and_restart();
    wait_not_ready_saying(a.admin, "is not the change 2 this instance applied");
}

#[test]
fn an_instance_that_applied_more_than_the_database_holds_stays_stale_and_says_why() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let mut a = Callgate::start_with(carrier.port, &shared(&pg.url()));
    wait_ready(a.admin, 200);
    // As if the database were restored from an older backup.
    std::fs::write(a._dir.path().join("shared-cursor"), "1000\n").unwrap();
    a.kill_9_and_restart();
    let (status, body) = http(a.admin, "GET", "/readyz", "", None);
    assert_eq!(status, 503, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http(a.admin, "GET", "/readyz", "", None);
    assert!(body.contains("lost changes"), "{body}");
}

#[test]
fn a_database_migrated_by_a_newer_callgate_is_refused() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let _a = one_instance(&pg, &carrier, "");
    pg.psql("INSERT INTO callgate_schema (version) VALUES (99)");
    let b = Callgate::start_with(carrier.port, &shared(&pg.url()));
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http(b.admin, "GET", "/readyz", "", None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("schema is version 99"), "{body}");
}

#[test]
fn an_instance_told_to_allow_when_stale_forwards_and_records_why() {
    let carrier = Carrier::start();
    let url = format!(
        "postgres://callgate@127.0.0.1:{}/postgres",
        common::free_port()
    );
    let config = format!("{}on_stale = \"allow\"\n", shared(&url));
    let cg = Callgate::start_with(carrier.port, &config);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550100"], cg.sip, work.path()),
        0
    );
    let decision = cg
        .audit()
        .into_iter()
        .find(|l| l.get("verdict").is_some())
        .unwrap();
    assert_eq!(decision["fail_open"], true, "{decision}");
    assert_eq!(decision["reasons"][0], "shared_state_stale", "{decision}");
}

#[test]
fn an_instance_without_its_database_rejects_marketing_calls_and_is_not_ready() {
    let carrier = Carrier::start();
    // Nothing listens there.
    let url = format!(
        "postgres://callgate@127.0.0.1:{}/postgres",
        common::free_port()
    );
    let cg = Callgate::start_with(carrier.port, &shared(&url));
    let (status, body) = http(cg.admin, "GET", "/readyz", "", None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("shared_state_stale"), "{body}");
    let work = tempfile::tempdir().unwrap();
    // 415 555 0100 is on no list: only the database's silence stops it.
    let rejected = dialer(
        "uac_expect_reject.xml",
        &["4155550100"],
        cg.sip,
        work.path(),
    );
    assert_eq!(rejected, 0);
    let calls = cg.wait_call_records(1);
    assert_eq!(calls[0]["reasons"][0], "shared_state_stale", "{calls:?}");
    assert_eq!(carrier.invites(), 0);
}

#[test]
fn an_opt_out_the_database_did_not_commit_is_refused_and_not_in_force() {
    let carrier = Carrier::start();
    let url = format!(
        "postgres://callgate@127.0.0.1:{}/postgres",
        common::free_port()
    );
    let cg = Callgate::start_with(carrier.port, &shared(&url));
    let optout = r#"{"number":"4155550179"}"#;
    let (status, body) = http(cg.admin, "POST", "/v1/optouts", optout, None);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not recorded"), "{body}");
    assert!(!reasons(&verdict(cg.admin, "4155550179")).contains(&"internal_dnc".to_string()));
}

#[test]
fn an_instance_whose_database_dies_goes_stale_and_is_current_again_once_it_returns() {
    let mut pg = Postgres::start();
    let carrier = Carrier::start();
    let cg = Callgate::start_with(carrier.port, &shared(&pg.url()));
    wait_ready(cg.admin, 200);
    pg.kill();
    let stale_after = wait_ready(cg.admin, 503);
    pg.restart();
    let current_after = wait_ready(cg.admin, 200);
    eprintln!("stale {stale_after:?} after the database died; current {current_after:?} after it returned");
    let (_, metrics) = http(cg.admin, "GET", "/metrics", "", None);
    let errors = metrics
        .lines()
        .find(|l| l.starts_with("callgate_shared_fetch_errors_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(errors.is_some_and(|e| e >= 1.0), "{metrics}");
}

#[test]
fn the_console_lists_every_instance_sharing_the_database() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    // Named by host and admin port by default.
    let names = [
        format!(":{}</td>", a.admin.port()),
        format!(":{}</td>", b.admin.port()),
    ];
    let start = Instant::now();
    loop {
        let (status, page) = http(a.admin, "GET", "/console", "", None);
        assert_eq!(status, 200, "{page}");
        if names.iter().all(|n| page.contains(n.as_str())) {
            assert!(page.contains("Instances sharing this database"), "{page}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Florida allows three calls per subject in 24 hours (`FL_OK_MD.cap_24h`).
const FLORIDA: &str = "3055550123";

#[test]
fn calls_to_a_florida_number_through_two_instances_are_counted_together_and_the_fourth_is_blocked()
{
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let work = tempfile::tempdir().unwrap();
    for (i, via) in [&a, &b, &a].iter().enumerate() {
        let failed = dialer("uac_allow.xml", &[FLORIDA], via.sip, work.path());
        assert_eq!(failed, 0, "call {} was not let through", i + 1);
    }
    let fourth = dialer("uac_expect_reject.xml", &[FLORIDA], b.sip, work.path());
    assert_eq!(fourth, 0, "the fourth call was let through");
    let calls = b.wait_call_records(2);
    assert_eq!(calls[1]["reasons"][0], "frequency_cap", "{calls:?}");
    let counted = pg.psql("SELECT count(*), count(DISTINCT instance) FROM callgate_cap_calls");
    assert_eq!(counted, "3|2", "the blocked call is not counted");
}

#[test]
fn a_capped_call_fails_closed_when_the_count_is_slow_while_other_calls_flow() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let a = one_instance(&pg, &carrier, "");
    let work = tempfile::tempdir().unwrap();
    // The count waits on this lock for longer than timeout_ms (500 ms).
    let mut locker = pg.psql_background(
        "BEGIN; LOCK TABLE callgate_cap_calls IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;",
    );
    pg.wait_for_lock_on("callgate_cap_calls");
    let slow = std::thread::spawn({
        let (sip, dir) = (a.sip, work.path().join("capped"));
        std::fs::create_dir_all(&dir).unwrap();
        move || dialer("uac_expect_reject.xml", &[FLORIDA], sip, &dir)
    });
    // Calls that need no count go through meanwhile (the SIP thread never waits on it).
    let others = ["4155550191", "4155550192", "4155550193", "4155550194"];
    let started = Instant::now();
    assert_eq!(dialer("uac_allow.xml", &others, a.sip, work.path()), 0);
    let took = started.elapsed();
    assert_eq!(slow.join().unwrap(), 0, "the capped call was let through");
    let records = a.wait_call_records(5);
    let capped = records
        .iter()
        .find(|c| c["called"].as_str().is_some_and(|n| n.ends_with(FLORIDA)))
        .expect("the capped call's record");
    assert_eq!(capped["reasons"][0], "frequency_cap_unknown", "{capped}");
    eprintln!("four uncapped calls took {took:?} while the count waited");
    let _ = locker.kill();
    let _ = locker.wait();
}

#[test]
fn a_shadow_campaigns_call_past_a_cap_is_forwarded_and_counted_as_placed() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let shadow = "[[campaign]]\nid = \"default\"\nshadow = true\n";
    let a = one_instance(&pg, &carrier, shadow);
    let work = tempfile::tempdir().unwrap();
    for i in 0..4 {
        let failed = dialer("uac_allow.xml", &[FLORIDA], a.sip, work.path());
        assert_eq!(failed, 0, "shadow call {} was not forwarded", i + 1);
    }
    let calls = a.wait_call_records(4);
    assert_eq!(calls[3]["verdict"], "would_block", "{calls:?}");
    let counted = pg.psql("SELECT count(*) FROM callgate_cap_calls");
    assert_eq!(counted, "4", "every call placed is counted");
}

#[test]
fn the_call_records_of_every_instance_appear_in_one_export() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550195"], a.sip, work.path()),
        0
    );
    assert_eq!(
        dialer("uac_allow.xml", &["4155550196"], b.sip, work.path()),
        0
    );
    a.wait_call_records(1);
    b.wait_call_records(1);
    wait_shipped_calls(&pg, 2);
    let url = pg.url();
    let out = common::run_cli(&["records", "export", "--format", "json", "--shared", &url]);
    assert!(out.ok, "{}", out.stderr);
    let called: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["called"].to_string())
        .collect();
    assert_eq!(called, ["\"+14155550195\"", "\"+14155550196\""]);
}

#[test]
fn each_instance_console_shows_the_calls_placed_through_the_other() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550191"], a.sip, work.path()),
        0
    );
    assert_eq!(
        dialer("uac_allow.xml", &["4155550192"], b.sip, work.path()),
        0
    );
    let both = ["+14155550191", "+14155550192"];
    for cg in [&a, &b] {
        let start = Instant::now();
        loop {
            let (status, page) = http(cg.admin, "GET", "/console/calls", "", None);
            assert_eq!(status, 200, "{page}");
            if both.iter().all(|n| page.contains(n)) {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{page}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // A's call on B's page of the number, read from B's copy of A's log.
    let (status, page) = http(b.admin, "GET", "/console/number?n=4155550191", "", None);
    assert_eq!(status, 200, "{page}");
    let a_name = format!(":{}</td>", a.admin.port());
    assert!(
        page.contains("<th>Instance</th>") && page.contains(&a_name),
        "{page}"
    );
}

#[test]
fn an_instances_copy_of_another_instances_log_verifies_as_that_log() {
    let pg = Postgres::start();
    let carrier = Carrier::start();
    let (a, b) = two_instances(&pg, &carrier);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550193"], a.sip, work.path()),
        0
    );
    a.wait_call_records(1);
    wait_shipped_calls(&pg, 1);
    let copies = b._dir.path().join("audit").join("cluster");
    let start = Instant::now();
    let copy = loop {
        let dirs: Vec<_> = std::fs::read_dir(&copies)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        let has_call = |d: &std::path::PathBuf| {
            common::audit_lines(d)
                .iter()
                .any(|l| l.get("call").is_some())
        };
        if let Some(d) = dirs.iter().find(|d| has_call(d)) {
            break d.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no copy of A's log in {copies:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = common::run_cli(&["audit", "verify", copy.to_str().unwrap()]);
    assert!(out.ok, "{}\n{}", out.stdout, out.stderr);
    // Byte for byte: each day of the copy is a prefix of A's day.
    for f in std::fs::read_dir(&copy)
        .unwrap()
        .flatten()
        .map(|e| e.path())
    {
        if f.extension().is_some_and(|e| e == "jsonl") {
            let copied = std::fs::read(&f).unwrap();
            let own =
                std::fs::read(a._dir.path().join("audit").join(f.file_name().unwrap())).unwrap();
            assert!(own.starts_with(&copied), "{f:?}");
        }
    }
}

/// Wait (bounded, 10 s) until the database holds `n` call records.
fn wait_shipped_calls(pg: &Postgres, n: usize) {
    let since = Instant::now();
    let calls = "SELECT count(*) FROM callgate_records WHERE kind = 'call'";
    while pg.psql(calls) != n.to_string() {
        assert!(since.elapsed() < Duration::from_secs(10), "not shipped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn records_made_while_the_database_was_away_are_shipped_once_it_returns() {
    let mut pg = Postgres::start();
    let carrier = Carrier::start();
    let a = one_instance(&pg, &carrier, "");
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550197"], a.sip, work.path()),
        0
    );
    wait_shipped_calls(&pg, 1);
    pg.kill();
    wait_ready(a.admin, 503);
    // Rejected (the instance is stale), and recorded all the same.
    let rejected = dialer("uac_expect_reject.xml", &["4155550198"], a.sip, work.path());
    assert_eq!(rejected, 0);
    a.wait_call_records(2);
    pg.restart();
    wait_shipped_calls(&pg, 2);
}
