//! End to end with real peers: the `callgate` binary between sipp as the dialer (UAC) and sipp
//! as the carrier (UAS), on loopback. Every sipp run is bounded in calls and time. These tests
//! FAIL (never skip) when sipp is not installed: `scripts/test.sh` installs it.

mod common;
use common::peers::{dialer, dialer_cmd, Callgate, Carrier};
use common::{free_port, http};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A sipp carrier, callgate in front of it, and a scratch directory for the dialer.
fn setup() -> (Carrier, Callgate, tempfile::TempDir) {
    let carrier = Carrier::start();
    let cg = Callgate::start(carrier.port);
    (carrier, cg, tempfile::tempdir().unwrap())
}

const ALLOWED: [&str; 5] = [
    "4155550100",
    "+14155550101",
    "1-415-555-0102",
    "415.555.0103",
    "9175551234",
];
const BLOCKED: [&str; 4] = [
    "2125550143",
    "+13105550188",
    "1-646-555-0111",
    "202.555.0177",
];

#[test]
fn allowed_calls_complete_invite_to_bye_through_callgate() {
    let (carrier, cg, work) = setup();
    assert_eq!(
        dialer("uac_allow.xml", &ALLOWED, cg.sip, work.path()),
        0,
        "every allowed call must connect and hang up"
    );
    assert_eq!(carrier.invites(), ALLOWED.len());
}

/// Datagrams each UDP worker received, from `/metrics`.
fn worker_datagrams(cg: &Callgate) -> Vec<u64> {
    let (_, body) = http(cg.admin, "GET", "/metrics", "", None);
    body.lines()
        .filter(|l| l.starts_with("callgate_sip_worker_datagrams_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect()
}

/// 60 calls started within 60 ms from a dialer that opens a socket per call (`-t un`), so the
/// kernel spreads them over both workers, to a carrier that answers 180 then 200 and requires ACK before BYE; the
/// dialer requires nothing after its 200 but the BYE's answer: a message relayed out of order
/// fails its call. The dialer's exit status, then the worker counts.
fn sixty_calls_over_two_workers(audit_keys: &str) -> (Carrier, Callgate, std::process::ExitStatus) {
    let carrier = Carrier::start_with(&["-sf", "@SCENARIOS/uas_echo_rr.xml"]);
    let cg = Callgate::start_with_keys(carrier.port, "workers = 2", audit_keys, "");
    let work = tempfile::tempdir().unwrap();
    let numbers: Vec<String> = (0..60).map(|i| format!("41555520{i:02}")).collect();
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let status = dialer_cmd(
        "uac_allow.xml",
        &numbers,
        cg.sip,
        work.path(),
        // All 60 at once (each holds 200 ms), so the workers decide and relay side by side.
        &["-t", "un", "-max_socket", "200", "-r", "1000"],
    )
    .status()
    .unwrap();
    assert_eq!(carrier.invites(), numbers.len());
    let per_worker = worker_datagrams(&cg);
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "both workers carried calls: {per_worker:?}"
    );
    (carrier, cg, status)
}

#[test]
fn with_two_udp_workers_every_call_keeps_its_order_180_before_200_and_ack_before_bye() {
    let (_carrier, _cg, status) = sixty_calls_over_two_workers("");
    assert_eq!(
        status.code(),
        Some(0),
        "every call must connect and hang up in order"
    );
}

// Before-forward durability releases a call once the log is durable up to its decision's
// number, which is only sound if the workers' decisions reach the log in number order.
#[test]
fn with_two_udp_workers_and_before_forward_decisions_reach_the_log_in_number_order() {
    let (_carrier, cg, status) = sixty_calls_over_two_workers("durability = \"before-forward\"");
    assert_eq!(status.code(), Some(0), "every call connects and hangs up");
    let numbers: Vec<u64> = common::audit_lines(&cg.config.parent().unwrap().join("audit"))
        .iter()
        .filter(|l| l.get("verdict").is_some())
        .map(|l| {
            let id = l["id"].as_str().unwrap();
            id.rsplit('-').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(numbers, (1..=60).collect::<Vec<u64>>());
}

#[test]
fn listed_numbers_get_the_rejection_and_the_carrier_receives_none() {
    let (carrier, cg, work) = setup();
    assert_eq!(
        dialer("uac_expect_reject.xml", &BLOCKED, cg.sip, work.path()),
        0,
        "every listed number must be rejected with Reason"
    );
    assert_eq!(
        carrier.invites(),
        0,
        "a blocked INVITE never reaches the upstream"
    );
    // Records are fsynced within flush_interval_ms (100 ms): give the writer a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    let blocked = || {
        cg.audit()
            .iter()
            .filter(|r| r["verdict"] == "blocked")
            .count()
    };
    while blocked() < BLOCKED.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(blocked(), BLOCKED.len());
}

#[test]
fn optout_posted_while_sipp_runs_takes_effect_on_the_next_call() {
    let (carrier, cg, work) = setup();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550142"], cg.sip, work.path()),
        0
    );
    let (status, body) = http(
        cg.admin,
        "POST",
        "/v1/optouts",
        r#"{"number":"4155550142","source":"sipp-test"}"#,
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
        0,
        "the next call is rejected"
    );
    assert_eq!(carrier.invites(), 1);
}

#[test]
fn negative_control_a_listed_number_fails_the_allow_scenario() {
    // Guards the test setup itself: if this passed, the scenarios would prove nothing.
    let (_carrier, cg, work) = setup();
    assert_ne!(
        dialer("uac_allow.xml", &["2125550143"], cg.sip, work.path()),
        0
    );
}

#[test]
fn listed_numbers_are_rejected_for_their_list() {
    let (_carrier, cg, work) = setup();
    assert_eq!(
        dialer("uac_expect_dnc.xml", &BLOCKED, cg.sip, work.path()),
        0,
        "every listed number is rejected with a *_dnc reason"
    );
}

#[test]
fn negative_control_a_rejection_for_another_reason_fails_the_dnc_scenario() {
    // `12345` is rejected as unparseable_number: a rejection, but not for a list.
    let (_carrier, cg, work) = setup();
    assert_ne!(
        dialer("uac_expect_dnc.xml", &["12345"], cg.sip, work.path()),
        0
    );
    assert_eq!(
        dialer("uac_expect_reject.xml", &["12345"], cg.sip, work.path()),
        0,
        "it is rejected with a Reason all the same"
    );
}

/// The record of a call the dialer held for `-d 1000`: its duration (answer to BYE, as
/// callgate saw them) is what the scenario paused.
#[test]
fn a_call_record_lasts_what_the_dialer_held_it_within_50_ms() {
    let (_carrier, cg, work) = setup();
    let status = dialer_cmd(
        "uac_hold.xml",
        &["4155550100"],
        cg.sip,
        work.path(),
        &["-d", "1000"],
    )
    .status()
    .unwrap();
    assert_eq!(status.code(), Some(0));
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["disposition"], "answered");
    assert_eq!(r["ended_by"], "dialer");
    let d = r["duration_ms"].as_i64().unwrap();
    assert!((1000 - 50..=1000 + 50).contains(&d), "duration {d} ms");
}

#[test]
fn a_carrier_hanging_up_is_recorded_as_ended_by_the_carrier() {
    let _carrier =
        Carrier::start_with(&["-sf", "@SCENARIOS/uas_hangup.xml", "-d", "300", "-m", "1"]);
    let cg = Callgate::start(_carrier.port);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_wait_bye.xml", &["4155550100"], cg.sip, work.path()),
        0,
        "the call connects and the carrier's BYE reaches the dialer"
    );
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "answered");
    assert_eq!(recs[0]["ended_by"], "carrier");
    assert_eq!(recs[0]["q850_cause"], 16);
}

#[test]
fn a_blocked_call_has_its_call_record() {
    let (_carrier, cg, work) = setup();
    assert_eq!(
        dialer("uac_expect_dnc.xml", &["2125550143"], cg.sip, work.path()),
        0
    );
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "rejected");
    assert_eq!(recs[0]["reasons"], serde_json::json!(["national_dnc"]));
}

/// kill -9 with a call up: at the next start the call gets its record, unknown and closed by
/// the restart, linked to its decision; a blocked call recorded before the crash gets none more.
#[test]
fn a_call_open_at_kill_9_is_recorded_at_restart() {
    let (_carrier, mut cg, work) = setup();
    assert_eq!(
        dialer("uac_expect_dnc.xml", &["2125550143"], cg.sip, work.path()),
        0
    );
    let mut held = common::Kill(
        dialer_cmd(
            "uac_hold.xml",
            &["4155550100"],
            cg.sip,
            work.path(),
            &["-d", "60000"],
        )
        .spawn()
        .unwrap(),
    );
    // Both decisions are in the log (written within the flush interval) once the call is up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let decision = loop {
        let d: Vec<_> = cg
            .audit()
            .into_iter()
            .filter(|l| l.get("verdict").is_some_and(|v| v == "allowed"))
            .collect();
        if let (Some(d), 1) = (d.into_iter().next(), cg.call_records().len()) {
            break d;
        }
        assert!(Instant::now() < deadline, "no decision record");
        std::thread::sleep(Duration::from_millis(50));
    };
    cg.kill_9_and_restart();
    let recs = cg.wait_call_records(2);
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(
        recs[0]["disposition"], "rejected",
        "written before the crash"
    );
    assert_eq!(recs[1]["decision"], decision["id"]);
    assert_eq!(recs[1]["disposition"], "unknown");
    assert_eq!(recs[1]["ended_by"], "restart");
    assert_eq!(recs[1]["called"], "+14155550100");
    // Nothing more comes later.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cg.call_records().len(), 2);
    let _ = held.0.kill();
}

/// The baresip binary; FAILS (never skips) when it is not installed.
fn baresip() -> &'static str {
    let ok = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "baresip is not installed: this test needs a real SIP phone. Run scripts/test.sh (it runs `apt-get install -y baresip-core`).");
    "baresip"
}

/// A WAV file of `secs` seconds of a 440 Hz tone, 8 kHz mono 16-bit: the phone's microphone.
fn tone_wav(path: &Path, secs: u32) {
    let samples: Vec<i16> = (0..8000 * secs)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 8000.0).sin()) as i16
        })
        .collect();
    let data_len = samples.len() as u32 * 2;
    let mut w = Vec::new();
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    for v in [16u32, 1 | (1 << 16), 8000, 16000, 2 | (16 << 16)] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        w.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, w).unwrap();
}

/// A real SIP phone as the dialer: baresip dials through callgate to a carrier that echoes
/// Record-Route (so the phone sends its ACK and BYE through callgate, as a real UA does),
/// plays a 3-second recording and hangs up at its end. The call record shows the answer, the
/// duration and the phone as the side that ended the call.
#[test]
fn a_real_phone_call_is_recorded_answered_and_ended_by_the_dialer() {
    let carrier = Carrier::start_with(&["-sf", "@SCENARIOS/uas_echo_rr.xml", "-m", "1"]);
    let cg = Callgate::start(carrier.port);
    let ua = tempfile::tempdir().unwrap();
    let wav = ua.path().join("tone.wav");
    tone_wav(&wav, 3);
    let (sip, rtp) = (free_port(), free_port());
    let config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{sip}\naudio_player aubridge,nil\naudio_source aufile,{}\naudio_alert aubridge,nil\naudio_srate 8000\naudio_channels 1\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule_app account.so\nmodule_app menu.so\nrtp_ports {rtp}-{}\n",
        wav.display(),
        rtp + 20
    );
    std::fs::write(ua.path().join("config"), config).unwrap();
    std::fs::write(
        ua.path().join("accounts"),
        format!("<sip:+12025550100@127.0.0.1:{sip}>;regint=0\n"),
    )
    .unwrap();
    let status = Command::new("timeout")
        .args(["60", baresip(), "-f"])
        .arg(ua.path())
        .args(["-e", &format!("/dial sip:4155550100@{}", cg.sip), "-t", "5"])
        .current_dir(ua.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "baresip ends by itself");
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["disposition"], "answered", "{r:#}");
    assert_eq!(r["ended_by"], "dialer", "{r:#}");
    let d = r["duration_ms"].as_i64().unwrap();
    assert!(
        (2500..=4500).contains(&d),
        "the 3-second recording's call lasted {d} ms"
    );
}

/// One call through callgate between sipp scenarios `uac` (dialer, `uac_args` added) and `uas`
/// (carrier, one call): the dialer's exit code and callgate, its records to read.
fn one_call(uac: &str, uas: &str, uac_args: &[&str]) -> (i32, Callgate, Carrier) {
    let carrier = Carrier::start_with(&["-sf", &format!("@SCENARIOS/{uas}"), "-m", "1"]);
    let cg = Callgate::start(carrier.port);
    let work = tempfile::tempdir().unwrap();
    let code = dialer_cmd(uac, &["4155550100"], cg.sip, work.path(), uac_args)
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1);
    (code, cg, carrier)
}

#[test]
fn a_challenged_invite_sent_again_is_one_call_with_one_decision() {
    let (code, cg, _carrier) = one_call("uac_auth_retry.xml", "uas_challenge.xml", &[]);
    assert_eq!(code, 0, "407, ACK, the INVITE again, answered, BYE");
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "answered");
    assert_eq!(recs[0]["ended_by"], "dialer");
    let decisions = cg
        .audit()
        .into_iter()
        .filter(|l| l.get("verdict").is_some())
        .count();
    assert_eq!(decisions, 1, "the retry is not a second decision");
}

#[test]
fn a_carrier_bye_claiming_abandonment_leaves_the_call_answered() {
    let (code, cg, _carrier) = one_call("uac_wait_bye.xml", "uas_hangup_disposition.xml", &[]);
    assert_eq!(code, 0);
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "answered");
    assert_eq!(recs[0]["ended_by"], "carrier");
}

#[test]
fn a_refused_refer_leaves_the_call_answered() {
    let (code, cg, _carrier) = one_call("uac_refer_refused.xml", "uas_refuse_refer.xml", &[]);
    assert_eq!(code, 0, "REFER answered 603, then BYE");
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "answered");
    assert!(recs[0]["transfer_to"].is_null(), "{recs:#?}");
}

#[test]
fn an_accepted_refer_from_the_carrier_is_recorded_as_the_carriers() {
    let (code, cg, _carrier) = one_call("uac_accept_refer.xml", "uas_refer.xml", &[]);
    assert_eq!(code, 0, "the carrier's REFER accepted, then BYE");
    let recs = cg.wait_call_records(1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["disposition"], "transferred");
    assert_eq!(recs[0]["transfer_by"], "carrier");
}
