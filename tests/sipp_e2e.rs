//! End to end with real peers: the `callgate` binary between sipp as the dialer (UAC) and sipp
//! as the carrier (UAS), on loopback. Every sipp run is bounded in calls and time. These tests
//! FAIL (never skip) when sipp is not installed: `scripts/test.sh` installs it.

mod common;
use common::{free_port, http, sipp, write_data};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

struct Callgate {
    child: Child,
    sip: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Callgate {
    fn start(upstream_port: u16) -> Callgate {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), Some(2));
        let (sip, admin) = (free_port(), free_port());
        let d = dir.path().display();
        let cfg = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[upstream]\naddress = \"127.0.0.1:{upstream_port}\"\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
        );
        let path = dir.path().join("callgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
        let child = common::spawn_binary(&path, &dir.path().join("callgate.log"), admin);
        Callgate {
            child,
            sip: format!("127.0.0.1:{sip}").parse().unwrap(),
            admin,
            _dir: dir,
        }
    }

    fn audit(&self) -> Vec<serde_json::Value> {
        common::audit_lines(&self._dir.path().join("audit"))
    }
}

impl Drop for Callgate {
    fn drop(&mut self) {
        unsafe_sigterm(self.child.id());
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// sipp's built-in UAS as the carrier, logging every message it receives.
struct Carrier {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Carrier {
    fn start() -> Carrier {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("uas_messages.log");
        // sipp itself, bounded by its own -timeout: a `timeout` wrapper killed by Drop would
        // leave its sipp child running.
        let child = Command::new(sipp())
            .args([
                "-timeout",
                "120s",
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-nostdin",
                "-trace_msg",
                "-message_file",
            ])
            .arg(&log)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Carrier {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// INVITEs the carrier received (requests, not responses that mention INVITE).
    fn invites(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("INVITE sip:"))
            .count()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run sipp as the dialer; returns its exit code. `numbers` become the -inf CSV.
fn dialer(scenario: &str, numbers: &[&str], target: SocketAddr, work: &Path) -> i32 {
    let csv = work.join(format!("{scenario}.csv"));
    std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", numbers.join("\n"))).unwrap();
    let port = free_port();
    let status = Command::new("timeout")
        .args(["90", sipp(), "-sf"])
        .arg(Path::new(SCENARIOS).join(scenario))
        .arg("-inf")
        .arg(&csv)
        .arg(target.to_string())
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-m",
            &numbers.len().to_string(),
            "-r",
            "20",
            "-timeout",
            "60s",
            "-recv_timeout",
            "5000",
            "-nostdin",
        ])
        .current_dir(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.code().unwrap_or(-1)
}

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
