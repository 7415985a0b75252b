//! Calls as the tests place them: a dialer's INVITE through callgate to the carrier socket,
//! answered, hung up from either side, and the call records they leave.

use super::*;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The call records in the log, by Call-ID.
pub fn call_records(h: &Harness, call_id: &str) -> Vec<Value> {
    h.audit_lines()
        .into_iter()
        .filter_map(|l| l.get("call").cloned())
        .filter(|c| c["call_id"] == call_id)
        .collect()
}

/// The one call record of `call_id`.
pub fn record(h: &Harness, call_id: &str) -> Value {
    let recs = call_records(h, call_id);
    assert_eq!(recs.len(), 1, "one call record for {call_id}: {recs:#?}");
    recs.into_iter().next().unwrap()
}

/// Wait (bounded) for a record the sweeper writes.
pub fn record_within(h: &Harness, call_id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let recs = call_records(h, call_id);
        if let Some(r) = recs.into_iter().next() {
            return r;
        }
        assert!(start.elapsed() < limit, "no call record for {call_id}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn decision_of(h: &Harness, call_id: &str) -> Vec<Value> {
    h.audit_lines()
        .into_iter()
        .filter(|l| l.get("verdict").is_some() && l["call_id"] == call_id)
        .collect()
}

/// A call placed and answered: the carrier's INVITE and the dialer's 200.
pub struct Answered {
    pub inv: String,
    pub ok: String,
    pub call_id: String,
}

pub fn place(h: &Harness, call_id: &str) -> String {
    let branch = format!("z9hG4bK-{call_id}");
    h.send_dialer(
        &h.invite("4155550100", call_id)
            .replace("z9hG4bK-1", &branch),
    );
    let inv = h.recv_carrier().expect("INVITE at the carrier");
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 100"));
    inv
}

pub fn answer(h: &Harness, call_id: &str) -> Answered {
    let inv = place(h, call_id);
    h.send_carrier(&reply(&inv, 180, "Ringing", ""));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 180"));
    let carrier = h.carrier.local_addr().unwrap();
    let contact = format!("Contact: <sip:uas@{carrier}>\r\n");
    h.send_carrier(&reply(&inv, 200, "OK", &contact));
    let ok = h.recv_dialer().unwrap();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    Answered {
        inv,
        ok,
        call_id: call_id.into(),
    }
}

/// A request the dialer sends in the answered dialog (BYE, REFER, re-INVITE).
pub fn from_dialer(h: &Harness, a: &Answered, method: &str, cseq: u32, extra: &str) -> String {
    let carrier = h.carrier.local_addr().unwrap();
    let d = h.dialer.local_addr().unwrap();
    let rr = header(&a.ok, "record-route").unwrap();
    let (from, to) = (header(&a.ok, "from").unwrap(), header(&a.ok, "to").unwrap());
    format!("{method} sip:uas@{carrier} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK-{method}{cseq}\r\nRoute: {rr}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n", a.call_id)
}

pub fn from_carrier(h: &Harness, a: &Answered, method: &str, cseq: u32, extra: &str) -> String {
    let d = h.dialer.local_addr().unwrap();
    let c = h.carrier.local_addr().unwrap();
    let rr = header(&a.inv, "record-route").unwrap();
    let (caller, callee) = (header(&a.ok, "from").unwrap(), header(&a.ok, "to").unwrap());
    format!("{method} sip:dialer@{d} SIP/2.0\r\nVia: SIP/2.0/UDP {c};branch=z9hG4bK-c{method}{cseq}\r\nRoute: {rr}\r\nFrom: {callee}\r\nTo: {caller}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n", a.call_id)
}

pub fn dialer_hangs_up(h: &Harness, a: &Answered, extra: &str) {
    h.send_dialer(&from_dialer(h, a, "BYE", 2, extra));
    let bye = h.recv_carrier().unwrap();
    assert!(bye.starts_with("BYE "), "{bye}");
    h.send_carrier(&reply(&bye, 200, "OK", ""));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 200"));
}
