//! The SIP core in memory: `Proxy::handle` with a stub gate, no sockets, no clock waits. Each
//! test feeds messages and asserts on exactly what the proxy emits (and what the gate was
//! asked and told). The socket and sipp tests (`tests/proxy.rs`, `tests/sipp_e2e.rs`) keep
//! the end-to-end view.

#[path = "support/proxy_settings.rs"]
mod proxy_settings;
use bytes::Bytes;
use callgate::sip::gate::{
    Admission, CallEvent, CallGate, CallKey, CallNews, EndedBy, NewCall, Rejection,
};
use callgate::sip::metrics::SipMetrics;
use callgate::sip::peer::{Dest, Outgoing, Peer, Side};
use callgate::sip::proxy::{Access, Proxy, ProxySettings};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const DIALER: &str = "192.0.2.20:5062";
const CARRIER: &str = "198.51.100.7:5060";
const STRANGER: &str = "203.0.113.9:5060";
const US: &str = "192.0.2.10:5060";

/// What the stub answers, and everything it was asked and told.
#[derive(Default)]
struct StubGate {
    reject_with: Option<u16>,
    hold_until: Option<u64>,
    /// Calls whose Call-ID starts with this are answered `Later`.
    later_for: Option<&'static str>,
    asked: Mutex<Vec<(Side, String)>>,
    events: Mutex<Vec<(CallKey, CallEvent)>>,
}

impl CallGate for StubGate {
    fn admit(&self, call: &NewCall<'_>) -> Admission {
        let call_id = String::from_utf8_lossy(call.req.msg.call_id()).into_owned();
        let later = self.later_for.is_some_and(|p| call_id.starts_with(p));
        self.asked.lock().unwrap().push((call.side, call_id));
        if later {
            return Admission::Later;
        }
        match self.reject_with {
            Some(status) => Admission::Reject(Rejection {
                status,
                phrase: "Decline".into(),
                headers: vec![("Reason", b"Q.850;cause=21;text=\"stub\"".to_vec())],
            }),
            None => Admission::Forward {
                hold_until: self.hold_until,
            },
        }
    }

    fn on_event(&self, news: &CallNews<'_>) {
        self.events.lock().unwrap().push((news.key, news.event));
    }
}

struct Core {
    proxy: Proxy,
    gate: Arc<StubGate>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn core_with(gate: StubGate, access: Access) -> Core {
    core_on(
        gate,
        access,
        proxy_settings::settings(addr(CARRIER), "198.51.100.7"),
    )
}

fn core_on(gate: StubGate, access: Access, settings: ProxySettings) -> Core {
    let gate = Arc::new(gate);
    let proxy = Proxy::new(
        settings,
        access,
        gate.clone(),
        Arc::new(SipMetrics::detached()),
    );
    Core { proxy, gate }
}

fn dialers() -> Access {
    Access {
        dialers: vec!["192.0.2.0/24".parse().unwrap()],
        drain_retry_after_secs: 30,
        ..Access::default()
    }
}

fn core(gate: StubGate) -> Core {
    core_with(gate, dialers())
}

impl Core {
    fn feed(&self, from: &str, msg: &str) -> Vec<Outgoing> {
        let mut out = Vec::new();
        let src = Peer::Udp(addr(from));
        self.proxy
            .handle(Bytes::copy_from_slice(msg.as_bytes()), src, &mut out);
        out
    }

    fn asked(&self) -> Vec<(Side, String)> {
        self.gate.asked.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<CallEvent> {
        self.gate
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.1)
            .collect()
    }
}

fn text(o: &Outgoing) -> &str {
    std::str::from_utf8(&o.data).unwrap()
}

fn to(o: &Outgoing) -> SocketAddr {
    match &o.dest {
        Dest::Peer(p) => p.addr(),
        other => panic!("unresolved destination {other:?}"),
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

fn invite(call_id: &str, branch: &str) -> String {
    request("INVITE", call_id, branch, "", 1, "")
}

/// A request from the dialer: `to_tag` empty for an initial request; `extra` header lines.
fn request(
    method: &str,
    call_id: &str,
    branch: &str,
    to_tag: &str,
    cseq: u32,
    extra: &str,
) -> String {
    let tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    format!(
        "{method} sip:+12125550100@{US} SIP/2.0\r\nVia: SIP/2.0/UDP {DIALER};branch={branch}\r\nFrom: <sip:+12025550100@192.0.2.20>;tag=d1\r\nTo: <sip:+12125550100@{US}>{tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// The carrier's response to a message the proxy forwarded.
fn response_to(forwarded: &str, status: u16, reason: &str) -> String {
    let mut r = format!("SIP/2.0 {status} {reason}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in header(forwarded, name) {
            let v = if name == "To" && status > 100 && !v.contains("tag=") {
                format!("{v};tag=c1")
            } else {
                v.to_string()
            };
            r += &format!("{name}: {v}\r\n");
        }
    }
    r + "Content-Length: 0\r\n\r\n"
}

#[test]
fn an_admitted_invite_is_answered_100_and_forwarded_to_the_upstream() {
    let c = core(StubGate::default());
    let out = c.feed(DIALER, &invite("a1", "z9hG4bK-a1"));
    assert_eq!(out.len(), 2);
    assert!(text(&out[0]).starts_with("SIP/2.0 100 Trying\r\n"));
    assert_eq!(to(&out[0]), addr(DIALER));
    assert_eq!(to(&out[1]), addr(CARRIER));
    assert!(out[1].to_upstream);
    let fwd = text(&out[1]);
    let vias = header(fwd, "Via");
    assert!(vias[0].starts_with("SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcg"));
    assert_eq!(vias[1], format!("SIP/2.0/UDP {DIALER};branch=z9hG4bK-a1"));
    assert_eq!(header(fwd, "Max-Forwards"), ["69"]);
    assert_eq!(header(fwd, "Record-Route"), ["<sip:192.0.2.10:5060;lr>"]);
    assert_eq!(c.asked(), [(Side::Dialer, "a1".to_string())]);
}

#[test]
fn a_rejected_invite_gets_the_gates_response_and_nothing_goes_upstream() {
    let c = core(StubGate {
        reject_with: Some(603),
        ..StubGate::default()
    });
    let out = c.feed(DIALER, &invite("r1", "z9hG4bK-r1"));
    assert_eq!(out.len(), 1);
    let r = text(&out[0]);
    assert!(r.starts_with("SIP/2.0 603 Decline\r\n"), "{r}");
    assert_eq!(header(r, "Reason"), ["Q.850;cause=21;text=\"stub\""]);
    assert!(header(r, "To")[0].contains(";tag=cg"));
    assert_eq!(to(&out[0]), addr(DIALER));
}

#[test]
fn a_retransmitted_rejected_invite_is_answered_from_the_transaction_and_not_decided_again() {
    let c = core(StubGate {
        reject_with: Some(603),
        ..StubGate::default()
    });
    let first = c.feed(DIALER, &invite("r2", "z9hG4bK-r2"));
    let again = c.feed(DIALER, &invite("r2", "z9hG4bK-r2"));
    assert_eq!(again.len(), 1);
    assert_eq!(first[0].data, again[0].data);
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn a_retransmitted_forwarded_invite_is_relayed_once_with_the_same_branch() {
    let c = core(StubGate::default());
    let first = c.feed(DIALER, &invite("f2", "z9hG4bK-f2"));
    let again = c.feed(DIALER, &invite("f2", "z9hG4bK-f2"));
    assert_eq!(again.len(), 1, "one copy out per copy in, no 100 again");
    assert_eq!(to(&again[0]), addr(CARRIER));
    assert_eq!(
        header(text(&first[1]), "Via")[0],
        header(text(&again[0]), "Via")[0]
    );
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn the_ack_to_our_rejection_is_absorbed() {
    let c = core(StubGate {
        reject_with: Some(603),
        ..StubGate::default()
    });
    let out = c.feed(DIALER, &invite("r3", "z9hG4bK-r3"));
    let to_tag = header(text(&out[0]), "To")[0]
        .split("tag=")
        .nth(1)
        .unwrap()
        .to_string();
    let ack = request("ACK", "r3", "z9hG4bK-r3", &to_tag, 1, "");
    assert!(c.feed(DIALER, &ack).is_empty());
}

#[test]
fn a_cancel_follows_its_invite_with_the_invites_branch_and_the_gate_hears_of_it() {
    let c = core(StubGate::default());
    let out = c.feed(DIALER, &invite("c1", "z9hG4bK-c1"));
    let cancel = request("CANCEL", "c1", "z9hG4bK-c1", "", 1, "");
    let sent = c.feed(DIALER, &cancel);
    assert_eq!(sent.len(), 1);
    assert_eq!(to(&sent[0]), addr(CARRIER));
    assert!(text(&sent[0]).starts_with("CANCEL "));
    assert_eq!(
        header(text(&sent[0]), "Via")[0],
        header(text(&out[1]), "Via")[0]
    );
    assert_eq!(c.events(), [CallEvent::Cancelled(Side::Dialer)]);
}

#[test]
fn a_cancel_without_its_transaction_gets_481() {
    let c = core(StubGate::default());
    let out = c.feed(DIALER, &request("CANCEL", "c2", "z9hG4bK-c2", "", 1, ""));
    assert!(text(&out[0]).starts_with("SIP/2.0 481 "));
}

#[test]
fn responses_go_back_without_our_via_and_the_gate_hears_ringing_then_answer() {
    let c = core(StubGate::default());
    let fwd = c.feed(DIALER, &invite("p1", "z9hG4bK-p1"));
    let fwd = text(&fwd[1]).to_string();
    let ringing = c.feed(CARRIER, &response_to(&fwd, 180, "Ringing"));
    let ok = c.feed(CARRIER, &response_to(&fwd, 200, "OK"));
    for out in [&ringing, &ok] {
        assert_eq!(out.len(), 1);
        assert_eq!(to(&out[0]), addr(DIALER));
        assert_eq!(
            header(text(&out[0]), "Via"),
            [format!("SIP/2.0/UDP {DIALER};branch=z9hG4bK-p1")]
        );
    }
    assert_eq!(
        c.events(),
        [CallEvent::Ringing(180), CallEvent::Answered(200)]
    );
    assert_eq!(c.proxy.pending_invites(), 0);
}

#[test]
fn a_failed_call_is_told_to_the_gate_once() {
    let c = core(StubGate::default());
    let fwd = c.feed(DIALER, &invite("p2", "z9hG4bK-p2"));
    let busy = response_to(text(&fwd[1]), 486, "Busy Here");
    c.feed(CARRIER, &busy);
    c.feed(CARRIER, &busy);
    assert_eq!(
        c.events(),
        [CallEvent::Failed {
            status: 486,
            by: Side::Upstream
        }]
    );
}

#[test]
fn the_upstreams_100_is_absorbed_once_we_sent_our_own() {
    let c = core(StubGate::default());
    let fwd = c.feed(DIALER, &invite("t1", "z9hG4bK-t1"));
    assert!(c
        .feed(CARRIER, &response_to(text(&fwd[1]), 100, "Trying"))
        .is_empty());
}

#[test]
fn a_response_whose_top_via_is_not_ours_is_dropped() {
    let c = core(StubGate::default());
    let stray = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {DIALER};branch=z9hG4bK-x\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    assert!(c.feed(CARRIER, &stray).is_empty());
}

#[test]
fn a_stranger_is_refused_403_and_the_gate_never_hears_of_it() {
    let c = core(StubGate::default());
    let out = c.feed(STRANGER, &invite("s1", "z9hG4bK-s1"));
    assert_eq!(out.len(), 1);
    assert!(text(&out[0]).starts_with("SIP/2.0 403 "));
    assert_eq!(to(&out[0]), addr(STRANGER));
    assert!(c.asked().is_empty());
}

#[test]
fn a_dialer_over_its_call_rate_gets_503_with_retry_after() {
    let access = Access {
        max_calls_per_second: 1,
        ..dialers()
    };
    let c = core_with(StubGate::default(), access);
    c.feed(DIALER, &invite("q1", "z9hG4bK-q1"));
    let out = c.feed(DIALER, &invite("q2", "z9hG4bK-q2"));
    assert_eq!(out.len(), 1);
    assert!(text(&out[0]).starts_with("SIP/2.0 503 "));
    assert_eq!(header(text(&out[0]), "Retry-After"), ["1"]);
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn while_draining_a_new_invite_gets_503_with_the_configured_retry_after() {
    let c = core(StubGate::default());
    c.proxy.start_draining();
    let out = c.feed(DIALER, &invite("d1", "z9hG4bK-d1"));
    assert!(text(&out[0]).starts_with("SIP/2.0 503 "));
    assert_eq!(header(text(&out[0]), "Retry-After"), ["30"]);
    assert!(c.asked().is_empty());
}

#[test]
fn a_held_forward_carries_the_record_it_waits_for() {
    let c = core(StubGate {
        hold_until: Some(7),
        ..StubGate::default()
    });
    let out = c.feed(DIALER, &invite("h1", "z9hG4bK-h1"));
    assert_eq!(out[0].after_record, None, "the 100 Trying does not wait");
    assert_eq!(out[1].after_record, Some(7));
}

#[test]
fn a_bye_from_the_dialer_goes_to_the_upstream_and_ends_the_call() {
    let c = core(StubGate::default());
    let fwd = c.feed(DIALER, &invite("b1", "z9hG4bK-b0"));
    c.feed(CARRIER, &response_to(text(&fwd[1]), 200, "OK"));
    let out = c.feed(DIALER, &request("BYE", "b1", "z9hG4bK-b1", "c1", 2, ""));
    assert_eq!(to(&out[0]), addr(CARRIER));
    assert_eq!(
        c.events(),
        [
            CallEvent::Answered(200),
            CallEvent::Ended(EndedBy::Bye(Side::Dialer))
        ]
    );
    let key = CallKey::of(b"b1", b"d1", Side::Dialer);
    assert_eq!(c.gate.events.lock().unwrap()[1].0, key);
    assert_eq!(c.asked().len(), 1, "an in-dialog request is not a new call");
}

#[test]
fn max_forwards_zero_gets_483() {
    let c = core(StubGate::default());
    let msg = invite("m1", "z9hG4bK-m1").replace("Max-Forwards: 70", "Max-Forwards: 0");
    let out = c.feed(DIALER, &msg);
    assert!(text(&out[0]).starts_with("SIP/2.0 483 "));
    assert!(c.asked().is_empty());
}

#[test]
fn proxy_require_gets_420_naming_the_extension() {
    let c = core(StubGate::default());
    let msg = request(
        "INVITE",
        "e1",
        "z9hG4bK-e1",
        "",
        1,
        "Proxy-Require: foo\r\n",
    );
    let out = c.feed(DIALER, &msg);
    assert!(text(&out[0]).starts_with("SIP/2.0 420 "));
    assert_eq!(header(text(&out[0]), "Unsupported"), ["foo"]);
}

#[test]
fn a_request_without_call_id_gets_400_saying_why() {
    let c = core(StubGate::default());
    let msg = invite("x", "z9hG4bK-n1").replace("Call-ID: x\r\n", "");
    let out = c.feed(DIALER, &msg);
    assert!(text(&out[0]).starts_with("SIP/2.0 400 "));
    assert!(header(text(&out[0]), "Warning")[0].contains("missing required header"));
}

#[test]
fn options_to_callgate_itself_is_answered_200_with_allow() {
    let c = core(StubGate::default());
    let msg = format!(
        "OPTIONS sip:{US} SIP/2.0\r\nVia: SIP/2.0/UDP {DIALER};branch=z9hG4bK-o1\r\nFrom: <sip:ping@192.0.2.20>;tag=1\r\nTo: <sip:{US}>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let out = c.feed(DIALER, &msg);
    assert!(text(&out[0]).starts_with("SIP/2.0 200 OK\r\n"));
    assert!(header(text(&out[0]), "Allow")[0].contains("INVITE"));
}

#[test]
fn an_in_dialog_request_from_a_dialer_goes_to_the_upstream_whatever_its_route_says() {
    let c = core(StubGate::default());
    let msg = request(
        "BYE",
        "i1",
        "z9hG4bK-i1",
        "c1",
        2,
        "Route: <sip:203.0.113.50;lr>\r\n",
    );
    let out = c.feed(DIALER, &msg);
    assert_eq!(to(&out[0]), addr(CARRIER));
}

#[test]
fn an_invite_from_the_upstream_is_put_to_the_gate_as_inbound() {
    let access = Access {
        upstream_sources: vec!["198.51.100.0/24".parse().unwrap()],
        ..dialers()
    };
    let c = core_with(StubGate::default(), access);
    let msg = format!(
        "INVITE sip:agent@{DIALER} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-in1\r\nFrom: <sip:+12125550100@198.51.100.7>;tag=c1\r\nTo: <sip:agent@{DIALER}>\r\nCall-ID: in1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let out = c.feed(CARRIER, &msg);
    assert_eq!(c.asked(), [(Side::Upstream, "in1".to_string())]);
    assert_eq!(to(out.last().unwrap()), addr(DIALER));
}

#[test]
fn garbage_earns_nothing_and_reaches_no_one() {
    let c = core(StubGate::default());
    assert!(c
        .feed(DIALER, "\u{1}\u{2} not SIP at all\r\n\r\n")
        .is_empty());
    assert!(c.asked().is_empty());
}

fn later_gate() -> StubGate {
    StubGate {
        later_for: Some("later"),
        ..StubGate::default()
    }
}

fn key_of(call_id: &str) -> CallKey {
    CallKey::of(call_id.as_bytes(), b"d1", Side::Dialer)
}

fn forward() -> Admission {
    Admission::Forward { hold_until: None }
}

impl Core {
    fn decided(&self, call_id: &str, admission: Admission) -> Vec<Outgoing> {
        let mut out = Vec::new();
        self.proxy.decided(key_of(call_id), admission, &mut out);
        out
    }
}

#[test]
fn a_call_decided_later_gets_100_at_once_and_goes_upstream_when_the_gate_answers() {
    let c = core(later_gate());
    let out = c.feed(DIALER, &invite("later1", "z9hG4bK-l1"));
    assert_eq!(out.len(), 1);
    assert!(text(&out[0]).starts_with("SIP/2.0 100 Trying\r\n"));
    let sent = c.decided("later1", forward());
    assert_eq!(sent.len(), 1, "the INVITE alone: its 100 was sent already");
    assert_eq!(to(&sent[0]), addr(CARRIER));
    assert!(text(&sent[0]).starts_with("INVITE "));
}

#[test]
fn other_calls_flow_while_one_is_being_decided() {
    let c = core(later_gate());
    c.feed(DIALER, &invite("later2", "z9hG4bK-l2"));
    let other = c.feed(DIALER, &invite("now2", "z9hG4bK-n2"));
    assert_eq!(other.len(), 2);
    assert_eq!(to(&other[1]), addr(CARRIER));
}

#[test]
fn a_retransmission_while_deciding_gets_100_again_and_is_not_decided_twice() {
    let c = core(later_gate());
    c.feed(DIALER, &invite("later3", "z9hG4bK-l3"));
    let again = c.feed(DIALER, &invite("later3", "z9hG4bK-l3"));
    assert_eq!(again.len(), 1);
    assert!(text(&again[0]).starts_with("SIP/2.0 100 Trying\r\n"));
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn a_cancel_while_deciding_gets_200_and_an_allowed_invite_then_ends_487_going_nowhere() {
    let c = core(later_gate());
    c.feed(DIALER, &invite("later4", "z9hG4bK-l4"));
    let cancel = request("CANCEL", "later4", "z9hG4bK-l4", "", 1, "");
    let answered = c.feed(DIALER, &cancel);
    assert_eq!(answered.len(), 1);
    assert!(text(&answered[0]).starts_with("SIP/2.0 200 OK\r\n"));
    assert!(text(&answered[0]).contains("CSeq: 1 CANCEL"));
    let sent = c.decided("later4", forward());
    assert_eq!(sent.len(), 1, "nothing goes upstream");
    assert_eq!(to(&sent[0]), addr(DIALER));
    assert!(text(&sent[0]).starts_with("SIP/2.0 487 "));
    assert_eq!(
        c.events(),
        [
            CallEvent::Cancelled(Side::Dialer),
            CallEvent::Failed {
                status: 487,
                by: Side::Dialer
            }
        ]
    );
}

#[test]
fn a_rejection_decided_later_is_sent_and_answers_retransmissions() {
    let c = core(later_gate());
    c.feed(DIALER, &invite("later5", "z9hG4bK-l5"));
    let rejection = Admission::Reject(Rejection {
        status: 603,
        phrase: "Decline".into(),
        headers: vec![],
    });
    let sent = c.decided("later5", rejection);
    assert_eq!(sent.len(), 1);
    assert!(text(&sent[0]).starts_with("SIP/2.0 603 Decline\r\n"));
    let again = c.feed(DIALER, &invite("later5", "z9hG4bK-l5"));
    assert_eq!(again[0].data, sent[0].data);
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn an_answer_that_comes_before_the_call_is_held_is_acted_on_when_it_is() {
    let c = core(later_gate());
    assert!(c.decided("later6", forward()).is_empty());
    let out = c.feed(DIALER, &invite("later6", "z9hG4bK-l6"));
    assert_eq!(out.len(), 2);
    assert!(text(&out[0]).starts_with("SIP/2.0 100 Trying\r\n"));
    assert_eq!(to(&out[1]), addr(CARRIER));
}

#[test]
fn another_invite_of_a_call_being_decided_is_refused_482() {
    let c = core(later_gate());
    c.feed(DIALER, &invite("later7", "z9hG4bK-l7a"));
    let merged = c.feed(DIALER, &invite("later7", "z9hG4bK-l7b"));
    assert!(text(&merged[0]).starts_with("SIP/2.0 482 "));
    assert_eq!(c.asked().len(), 1);
}

#[test]
fn a_call_the_gate_leaves_undecided_past_the_transaction_timeout_gets_500() {
    let mut settings = proxy_settings::settings(addr(CARRIER), "198.51.100.7");
    settings.tx_timeout = std::time::Duration::from_millis(20);
    let c = core_on(later_gate(), dialers(), settings);
    c.feed(DIALER, &invite("later8", "z9hG4bK-l8"));
    std::thread::sleep(std::time::Duration::from_millis(30));
    let mut out = Vec::new();
    c.proxy.sweep(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(text(&out[0]).starts_with("SIP/2.0 500 "));
    assert_eq!(to(&out[0]), addr(DIALER));
    assert!(
        c.decided("later8", forward()).is_empty(),
        "a late answer sends nothing"
    );
    assert_eq!(
        c.events(),
        [CallEvent::Failed {
            status: 500,
            by: Side::Dialer
        }]
    );
}
