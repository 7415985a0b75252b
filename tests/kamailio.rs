//! The Kamailio recipe (`contrib/kamailio/kamailio.cfg`) with Debian's real Kamailio, sipp as
//! the dialer and as the carrier, and the callgate binary, all on loopback: Kamailio in front
//! of callgate and behind it. FAILS (never skips) when kamailio is not installed:
//! `scripts/test.sh` installs it.

mod common;

use common::peers::{dialer, Callgate, Carrier};
use common::{free_port, KillGroup};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/kamailio/kamailio.cfg");

struct Kamailio {
    _child: KillGroup,
    sip: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    /// Kamailio on a loopback port with the recipe, sending new calls from 127.0.0.1 to
    /// `next_hop`; returns once its SIP port is bound.
    fn start(next_hop: SocketAddr) -> Kamailio {
        Self::trusting(next_hop, "127.0.0.1/32")
    }

    /// The same, new calls accepted from `trusted` (TRUSTED) only.
    fn trusting(next_hop: SocketAddr, trusted: &str) -> Kamailio {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .args(["-f", CONFIG, "-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-l")
            .arg(format!("udp:127.0.0.1:{port}"))
            .arg("-A")
            .arg(format!("NEXT_HOP=\"sip:{next_hop}\""))
            .arg("-A")
            .arg(format!("TRUSTED=\"{trusted}\""))
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            // Its own group: dropped, the main process goes with every worker it forked.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "kamailio is not installed ({e}): scripts/test.sh installs Debian's `kamailio`"
                )
            });
        let mut child = KillGroup(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Some(status) = child.0.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.path().join("kamailio.log")).unwrap();
                panic!("kamailio exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "kamailio did not bind its port");
            std::thread::sleep(Duration::from_millis(20));
        }
        Kamailio {
            _child: child,
            sip: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        }
    }
}

/// sipp as a carrier that echoes Record-Route in its answers (RFC 3261 12.1.1), as real UAs
/// do: Kamailio routes in-dialog requests by the route set alone.
fn carrier() -> Carrier {
    Carrier::start_with(&["-sf", "@SCENARIOS/uas_echo_rr.xml"])
}

fn local(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Call records by disposition, once `n` are written.
fn dispositions(cg: &Callgate, n: usize) -> Vec<String> {
    cg.wait_call_records(n)
        .iter()
        .map(|c| c["disposition"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn kamailio_in_front_carries_allowed_calls_invite_to_bye_through_callgate() {
    let carrier = carrier();
    let cg = Callgate::start(carrier.port);
    let kam = Kamailio::start(cg.sip);
    let work = tempfile::tempdir().unwrap();
    let numbers = ["4155550100", "+14155550101", "9175551234"];
    assert_eq!(dialer("uac_allow.xml", &numbers, kam.sip, work.path()), 0);
    assert_eq!(carrier.invites(), 3);
    assert_eq!(dispositions(&cg, 3), ["answered"; 3]);
}

#[test]
fn a_blocked_call_s_603_and_reason_reach_the_dialer_through_kamailio() {
    let carrier = carrier();
    let cg = Callgate::start(carrier.port);
    let kam = Kamailio::start(cg.sip);
    let work = tempfile::tempdir().unwrap();
    // uac_expect_reject fails unless the final response is 603 (or 403/608) with a Reason.
    let blocked = ["2125550143", "1-646-555-0111"];
    assert_eq!(
        dialer("uac_expect_reject.xml", &blocked, kam.sip, work.path()),
        0
    );
    assert_eq!(carrier.invites(), 0);
}

#[test]
fn kamailio_behind_callgate_carries_calls_invite_to_bye_to_the_carrier() {
    let carrier = carrier();
    let kam = Kamailio::start(local(carrier.port));
    let cg = Callgate::start(kam.sip.port());
    let work = tempfile::tempdir().unwrap();
    let numbers = ["4155550100", "9175551234"];
    assert_eq!(dialer("uac_allow.xml", &numbers, cg.sip, work.path()), 0);
    assert_eq!(carrier.invites(), 2);
    assert_eq!(dispositions(&cg, 2), ["answered"; 2]);
}

#[test]
fn behind_callgate_a_blocked_call_never_reaches_kamailio_or_the_carrier() {
    let carrier = carrier();
    let kam = Kamailio::start(local(carrier.port));
    let cg = Callgate::start(kam.sip.port());
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
    assert_eq!(carrier.invites(), 0);
}

/// A relay that took anyone's INVITE would be a way around callgate (behind it) and a
/// toll-fraud target (in front): the recipe answers strangers 403 and forwards nothing.
#[test]
fn kamailio_refuses_a_new_call_from_an_untrusted_source() {
    let carrier = carrier();
    let kam = Kamailio::trusting(local(carrier.port), "127.0.0.2/32");
    let dialer = UdpSocket::bind("127.0.0.1:0").unwrap();
    dialer
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let invite = common::invite_msg(
        &format!("sip:4155550100@{}", kam.sip),
        "kamailio-stranger-1",
        dialer.local_addr().unwrap(),
        "z9hG4bK-stranger-1",
    );
    dialer.send_to(invite.as_bytes(), kam.sip).unwrap();
    let reply = common::recv_final(&dialer).expect("no final response");
    assert!(reply.starts_with("SIP/2.0 403"), "{reply}");
    assert_eq!(carrier.invites(), 0);
}
