//! The call state machine under arbitrary sequences of messages from both sides: new INVITEs
//! and their retransmissions, responses of any status (with forks), CANCEL, BYE, REFER,
//! re-INVITE with hostile Session-Expires values, ACK and raw bytes, from the dialer and the
//! carrier, in any order. A ledger gate checks the core's contract with the records: every
//! call it let through hears of its end exactly once (no news of a call that is not open, no
//! second end), maps stay within `calls.max_open`, and after the stop nothing is left open.

use crate::sip::gate::{Admission, CallEvent, CallGate, CallKey, CallNews, NewCall, Rejection};
use crate::sip::metrics::SipMetrics;
use crate::sip::peer::{Outgoing, Peer, Transport};
use crate::sip::proxy::{Access, Proxy, ProxySettings};
use bytes::Bytes;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DIALER: &str = "192.0.2.20:5061";
const CARRIER: &str = "192.0.2.99:5060";
const MAX_OPEN: usize = 6;

/// The calls the gate let through and has not heard the end of.
#[derive(Default)]
struct Ledger {
    open: Mutex<HashSet<CallKey>>,
    /// Every event heard, in order (what the seeds are checked against).
    heard: Mutex<Vec<CallEvent>>,
}

impl CallGate for Ledger {
    fn admit(&self, call: &NewCall<'_>) -> Admission {
        let mut open = self.open.lock().unwrap();
        assert!(!open.contains(&call.key), "a call decided twice while open");
        // Some calls are refused, as a policy would: a rejected call ends at once.
        if call.req.msg.call_id().ends_with(b"3") {
            return Admission::Reject(Rejection {
                status: 603,
                phrase: "Decline".into(),
                headers: vec![],
            });
        }
        open.insert(call.key);
        Admission::Forward { hold_until: None }
    }

    fn on_event(&self, news: &CallNews<'_>) {
        let mut open = self.open.lock().unwrap();
        assert!(
            open.contains(&news.key),
            "news of a call that is not open: {:?}",
            news.event
        );
        if matches!(news.event, CallEvent::Failed { .. } | CallEvent::Ended(_)) {
            open.remove(&news.key);
        }
        self.heard.lock().unwrap().push(news.event);
    }
}

/// What the fuzzer's peers remember of each call to build the next message.
#[derive(Default, Clone)]
struct Peers {
    /// The dialer's last INVITE of each call slot.
    invite: [Option<String>; 8],
    /// The last INVITE the carrier received for each Call-ID.
    at_carrier: [Option<String>; 8],
    /// The last in-dialog request forwarded, and whether it went to the carrier.
    in_dialog: Option<(String, bool)>,
    branch: u32,
}

const CODES: [u16; 14] = [
    100, 180, 183, 200, 202, 302, 401, 407, 408, 422, 486, 487, 500, 603,
];
const SESSION_EXPIRES: [&str; 6] = [
    "1800",
    "0",
    "9999999999999999999",
    "18446744073709551616",
    "-5",
    "90;refresher=uas",
];

pub fn call_flow(data: &[u8]) {
    run(data);
}

/// The flow of `data`, checked; the events the gate heard.
fn run(data: &[u8]) -> Vec<CallEvent> {
    let ledger = Arc::new(Ledger::default());
    let metrics = Arc::new(SipMetrics::detached());
    let proxy = proxy(ledger.clone(), metrics.clone());
    let mut peers = Peers::default();
    let mut out = Vec::new();
    for (i, op) in data.chunks(4).enumerate() {
        let [kind, slot, a, b] = [0, 1, 2, 3].map(|j| op.get(j).copied().unwrap_or(0));
        // The top bit asks for a sweep after the message; the rest picks the message.
        let k = (kind & 0x7f) % 13;
        if k == 12 {
            // The rest of the input as one raw message from either side.
            let src = if a & 1 == 0 { DIALER } else { CARRIER };
            feed(&proxy, src, data[i * 4..].to_vec(), &mut peers, &mut out);
            break;
        }
        if let Some((src, msg)) = message(k, slot, a, b, &mut peers) {
            feed(&proxy, src, msg.into_bytes(), &mut peers, &mut out);
        }
        if kind & 0x80 != 0 {
            proxy.sweep(&mut out);
            out.clear();
        }
        assert!(
            proxy.open_calls() <= MAX_OPEN,
            "open calls past calls.max_open"
        );
    }
    proxy.end_open_calls();
    assert!(
        ledger.open.lock().unwrap().is_empty(),
        "a call the gate let through never heard its end"
    );
    assert_eq!(metrics.calls_open.get(), 0, "the open-calls gauge drifted");
    let heard = ledger.heard.lock().unwrap().clone();
    heard
}

fn proxy(gate: Arc<Ledger>, metrics: Arc<SipMetrics>) -> Proxy {
    let carrier: SocketAddr = CARRIER.parse().unwrap();
    let settings = ProxySettings {
        advertise_host: "192.0.2.10".into(),
        advertise_port: 5060,
        advertise_tls_port: None,
        local_hosts: vec!["192.0.2.10".into()],
        upstream: carrier,
        upstream_host: carrier.ip().to_string(),
        upstream_transport: Transport::Udp,
        record_route: true,
        send_100: true,
        inbound_target: Some(DIALER.parse().unwrap()),
        tx_timeout: Duration::from_secs(64),
        longest_call: Duration::from_secs(4 * 3600),
        max_open_calls: MAX_OPEN,
        timer_c: Duration::from_secs(180),
    };
    let access = Access {
        dialers: vec!["192.0.2.20/32".parse().unwrap()],
        ..Access::default()
    };
    Proxy::new(settings, access, gate, metrics)
}

fn feed(proxy: &Proxy, src: &str, msg: Vec<u8>, peers: &mut Peers, out: &mut Vec<Outgoing>) {
    proxy.handle(Bytes::from(msg), Peer::Udp(src.parse().unwrap()), out);
    for o in out.drain(..) {
        let text = String::from_utf8_lossy(&o.data).into_owned();
        if text.starts_with("INVITE ") && o.to_upstream && !header(&text, "To").contains("tag=") {
            let slot = call_slot(&text);
            peers.at_carrier[slot] = Some(text);
        } else if !text.starts_with("SIP/2.0") && !text.starts_with("ACK") {
            peers.in_dialog = Some((text, o.to_upstream));
        }
    }
}

/// The call slot a message's Call-ID names (`cf-N`).
fn call_slot(text: &str) -> usize {
    let id = header(text, "Call-ID");
    id.strip_prefix("cf-")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0)
        % 8
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or("")
}

/// One message of a peer, from the op's bytes; `None` when the peer has nothing to say yet.
fn message(kind: u8, slot: u8, a: u8, b: u8, p: &mut Peers) -> Option<(&'static str, String)> {
    let slot = (slot % 8) as usize;
    p.branch += 1;
    let branch = p.branch;
    let tag = if b & 1 == 0 { "x" } else { "y" };
    Some(match kind {
        0 => {
            let target = if a & 1 == 0 {
                "+14155550100"
            } else {
                "+14155550199"
            };
            let from_tag = if b & 2 == 0 { "d1" } else { "d2" };
            let cseq = 1 + u32::from(a >> 1);
            let inv = format!(
                "INVITE sip:{target}@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {DIALER};branch=z9hG4bK-{branch}\r\nFrom: <sip:+12025550100@192.0.2.20>;tag={from_tag}\r\nTo: <sip:{target}@192.0.2.10>\r\nCall-ID: cf-{slot}\r\nCSeq: {cseq} INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            p.invite[slot] = Some(inv.clone());
            (DIALER, inv)
        }
        1 => (DIALER, p.invite[slot].clone()?),
        2 => {
            let inv = p.at_carrier[slot].as_deref()?;
            let code = CODES[a as usize % CODES.len()];
            let se = SESSION_EXPIRES[b as usize % SESSION_EXPIRES.len()];
            (CARRIER, response(inv, code, tag, se))
        }
        3 => {
            let inv = p.invite[slot].as_deref()?;
            (DIALER, cancel_of(inv))
        }
        4..=7 => {
            let method = ["BYE", "REFER", "INVITE", "UPDATE"][(kind - 4) as usize];
            let from_dialer = a & 1 == 0;
            let se = SESSION_EXPIRES[b as usize % SESSION_EXPIRES.len()];
            (
                if from_dialer { DIALER } else { CARRIER },
                in_dialog(method, slot, from_dialer, tag, branch, se),
            )
        }
        8 | 9 => {
            let (req, to_carrier) = p.in_dialog.clone()?;
            let code = CODES[a as usize % CODES.len()];
            let se = SESSION_EXPIRES[b as usize % SESSION_EXPIRES.len()];
            let from = if to_carrier { CARRIER } else { DIALER };
            (from, response(&req, code, tag, se))
        }
        10 => {
            let inv = p.invite[slot].as_deref()?;
            (
                DIALER,
                inv.replacen("INVITE ", "ACK ", 1)
                    .replace(" INVITE\r\n", " ACK\r\n"),
            )
        }
        _ => {
            // An inbound call from the carrier to the dialers.
            let inv = format!(
                "INVITE sip:+12025550100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bK-in{branch}\r\nFrom: <sip:+14155550100@192.0.2.99>;tag=c1\r\nTo: <sip:+12025550100@192.0.2.10>\r\nCall-ID: cf-{slot}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            );
            (CARRIER, inv)
        }
    })
}

/// A response to `req` as its recipient sends it: Vias, From, Call-ID and CSeq copied, To
/// tagged.
fn response(req: &str, code: u16, tag: &str, session_expires: &str) -> String {
    let mut r = format!("SIP/2.0 {code} Fuzz\r\n");
    for l in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match name.as_str() {
            "via" | "from" | "call-id" | "cseq" | "record-route" => r += &format!("{l}\r\n"),
            "to" if code > 100 && !l.contains("tag=") => r += &format!("{l};tag={tag}\r\n"),
            "to" => r += &format!("{l}\r\n"),
            _ => {}
        }
    }
    r + &format!("Session-Expires: {session_expires}\r\nContent-Length: 0\r\n\r\n")
}

fn cancel_of(invite: &str) -> String {
    let head = invite.split("\r\n\r\n").next().unwrap_or("");
    let mut out = String::new();
    for (i, l) in head.split("\r\n").enumerate() {
        if i == 0 {
            out += &l.replacen("INVITE ", "CANCEL ", 1);
        } else if l.starts_with("CSeq:") {
            out += &l.replace("INVITE", "CANCEL");
        } else if l.starts_with("Content-Length:") {
            continue;
        } else {
            out += l;
        }
        out += "\r\n";
    }
    out + "Content-Length: 0\r\n\r\n"
}

/// A request within call `slot`'s dialog (the answering fork's tag `tag`), from either side.
fn in_dialog(
    method: &str,
    slot: usize,
    from_dialer: bool,
    tag: &str,
    branch: u32,
    session_expires: &str,
) -> String {
    let (via, ruri, from, to) = if from_dialer {
        (
            DIALER,
            format!("sip:uas@{CARRIER}"),
            "<sip:+12025550100@192.0.2.20>;tag=d1".to_string(),
            format!("<sip:+14155550100@192.0.2.10>;tag={tag}"),
        )
    } else {
        (
            CARRIER,
            format!("sip:dialer@{DIALER}"),
            format!("<sip:+14155550100@192.0.2.10>;tag={tag}"),
            "<sip:+12025550100@192.0.2.20>;tag=d1".to_string(),
        )
    };
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-dlg{branch}\r\nRoute: <sip:192.0.2.10:5060;lr>\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: cf-{slot}\r\nCSeq: {} {method}\r\nMax-Forwards: 70\r\nRefer-To: <sip:+13125550123@pbx.example.com>\r\nSession-Expires: {session_expires}\r\nX-Callgate-Disposition: abandoned\r\nContent-Length: 0\r\n\r\n",
        branch + 10
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::gate::EndedBy;
    use crate::sip::peer::Side;

    fn seed(name: &str) -> Vec<CallEvent> {
        let path = format!(
            "{}/fuzz/corpus/call_flow/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        run(&std::fs::read(path).unwrap())
    }

    #[test]
    fn the_seeds_reach_the_states_they_are_named_for() {
        use CallEvent::*;
        let dialer_bye = Ended(EndedBy::Bye(Side::Dialer));
        let stopped = Ended(EndedBy::Stopped);
        assert_eq!(
            seed("answered_then_dialer_bye"),
            [Ringing(180), Answered(200), dialer_bye]
        );
        assert_eq!(
            seed("challenged_407_then_retry"),
            [Ringing(180), Answered(200), dialer_bye]
        );
        let cancelled = Failed {
            status: 487,
            by: Side::Upstream,
        };
        assert_eq!(
            seed("cancel_while_ringing"),
            [Ringing(180), Cancelled(Side::Dialer), cancelled]
        );
        assert_eq!(
            seed("early_bye_from_dialer"),
            [Ringing(180), Cancelled(Side::Dialer), cancelled]
        );
        assert_eq!(
            seed("carrier_refer_accepted"),
            [
                Answered(200),
                Refer(Side::Upstream),
                Transferred(Side::Upstream),
                dialer_bye
            ]
        );
        let busy_by_dialer = Failed {
            status: 486,
            by: Side::Dialer,
        };
        assert_eq!(seed("inbound_refused_by_dialer"), [busy_by_dialer]);
        assert_eq!(seed("merged_invite"), [stopped]);
    }
}
