//! The proxy's behaviour on the wire, in-process: UDP/TCP sockets on loopback play the dialer
//! and the carrier. One behaviour per test.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn allowed_invite_reaches_the_carrier_with_our_via_and_record_route() {
    let h = Harness::start();
    h.send_dialer(&h.invite("4155550100", "allow-1"));
    let fwd = h.recv_carrier().expect("INVITE at carrier");
    assert!(
        fwd.starts_with(&format!(
            "INVITE sip:4155550100@{} SIP/2.0\r\n",
            h.proxy_addr()
        )),
        "{fwd}"
    );
    let vias = headers(&fwd, "via");
    assert_eq!(vias.len(), 2);
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {};branch=z9hG4bK", h.proxy_addr())),
        "{}",
        vias[0]
    );
    assert!(vias[1].contains("branch=z9hG4bK-1"));
    assert_eq!(header(&fwd, "max-forwards"), Some("69"));
    assert_eq!(
        header(&fwd, "record-route"),
        Some(format!("<sip:{};lr>", h.proxy_addr()).as_str())
    );
    assert!(
        fwd.ends_with("m=audio 6000 RTP/AVP 0\r\n"),
        "SDP must be untouched"
    );
}

#[test]
fn forwarded_invite_is_answered_100_trying_at_once() {
    let h = Harness::start();
    h.send_dialer(&h.invite("4155550100", "trying-1"));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 100 Trying"));
}

#[test]
fn blocked_invite_gets_603_with_reason_and_warning_and_never_reaches_the_carrier() {
    let h = Harness::start();
    h.send_dialer(&h.invite("2125550143", "block-1"));
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 603 Decline\r\n"), "{r}");
    assert_eq!(
        header(&r, "reason"),
        Some("Q.850;cause=21;text=\"national_dnc\"")
    );
    assert!(header(&r, "warning").unwrap().starts_with("399 "));
    assert!(header(&r, "warning").unwrap().contains("national_dnc"));
    assert!(header(&r, "to").unwrap().contains("tag="));
    assert!(h.nothing_at(&h.carrier));
}

#[test]
fn reject_status_is_configurable() {
    let h = Harness::with(
        Some(2),
        "[reject]\nstatus = 608\nreason_phrase = \"Rejected\"\n",
    );
    h.send_dialer(&h.invite("2125550143", "block-608"));
    assert!(h
        .recv_dialer()
        .unwrap()
        .starts_with("SIP/2.0 608 Rejected\r\n"));
}

#[test]
fn internal_list_blocks_with_its_own_reason() {
    let h = Harness::start();
    h.send_dialer(&h.invite("2025550177", "internal-1"));
    assert_eq!(
        header(&h.recv_dialer().unwrap(), "reason"),
        Some("Q.850;cause=21;text=\"internal_dnc\"")
    );
}

#[test]
fn retransmitted_blocked_invite_gets_the_same_answer_and_one_record() {
    let h = Harness::start();
    let inv = h.invite("2125550143", "retx-1");
    h.send_dialer(&inv);
    let first = h.recv_dialer().unwrap();
    h.send_dialer(&inv);
    let second = h.recv_dialer().unwrap();
    assert_eq!(first, second);
    let recs: Vec<_> = h
        .audit_lines()
        .into_iter()
        .filter(|r| r["call_id"] == "retx-1")
        .collect();
    assert_eq!(recs.len(), 1);
}

#[test]
fn retransmitted_allowed_invite_is_relayed_once_with_the_same_branch() {
    let h = Harness::start();
    let inv = h.invite("4155550100", "retx-2");
    h.send_dialer(&inv);
    let a = h.recv_carrier().unwrap();
    h.send_dialer(&inv);
    let b = h.recv_carrier().unwrap();
    assert_eq!(headers(&a, "via")[0], headers(&b, "via")[0]);
    assert!(
        h.nothing_at(&h.carrier),
        "one copy per retransmission, not more"
    );
}

#[test]
fn ack_for_our_rejection_is_absorbed() {
    let h = Harness::start();
    let inv = h.invite("2125550143", "ack-1");
    h.send_dialer(&inv);
    let r = h.recv_dialer().unwrap();
    let to = header(&r, "to").unwrap();
    let d = h.dialer.local_addr().unwrap();
    let ack = format!("ACK sip:2125550143@{p} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK-1\r\nFrom: \"Dialer\" <sip:+12025550100@{d}>;tag=d1\r\nTo: {to}\r\nCall-ID: ack-1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p = h.proxy_addr());
    h.send_dialer(&ack);
    assert!(h.nothing_at(&h.carrier));
    assert!(h.nothing_at(&h.dialer));
}

/// Full call: INVITE, 180, 200, ACK, BYE from the dialer, 200 — through callgate both ways.
fn establish(h: &Harness, call_id: &str) -> (String, String) {
    h.send_dialer(&h.invite("4155550100", call_id));
    let inv = h.recv_carrier().unwrap();
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 100"));
    h.send_carrier(&reply(&inv, 180, "Ringing", ""));
    let ringing = h.recv_dialer().unwrap();
    assert!(ringing.starts_with("SIP/2.0 180"), "{ringing}");
    assert_eq!(
        headers(&ringing, "via").len(),
        1,
        "our Via is removed from responses"
    );
    let carrier = h.carrier.local_addr().unwrap();
    h.send_carrier(&reply(
        &inv,
        200,
        "OK",
        &format!("Contact: <sip:uas@{carrier}>\r\n"),
    ));
    let ok = h.recv_dialer().unwrap();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    (inv, ok)
}

#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    cseq: u32,
    ruri: &str,
    via: std::net::SocketAddr,
    route: Option<String>,
    from: &str,
    to: &str,
    call_id: &str,
) -> String {
    let route = route.map(|r| format!("Route: {r}\r\n")).unwrap_or_default();
    format!("{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK-{method}{cseq}\r\n{route}From: {from}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn bye_from_the_dialer_follows_the_record_route_to_the_carrier() {
    let h = Harness::start();
    let (_inv, ok) = establish(&h, "bye-dialer");
    let carrier = h.carrier.local_addr().unwrap();
    let rr = header(&ok, "record-route").unwrap().to_string();
    let (from, to) = (header(&ok, "from").unwrap(), header(&ok, "to").unwrap());
    let bye = in_dialog(
        "BYE",
        2,
        &format!("sip:uas@{carrier}"),
        h.dialer.local_addr().unwrap(),
        Some(rr),
        from,
        to,
        "bye-dialer",
    );
    h.send_dialer(&bye);
    let got = h.recv_carrier().unwrap();
    assert!(got.starts_with("BYE sip:uas@"), "{got}");
    assert!(
        header(&got, "route").is_none(),
        "our Route entry is consumed"
    );
    h.send_carrier(&reply(&got, 200, "OK", ""));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 200"));
}

#[test]
fn bye_from_the_carrier_reaches_the_dialer() {
    let h = Harness::start();
    let (inv, ok) = establish(&h, "bye-carrier");
    let dialer = h.dialer.local_addr().unwrap();
    let rr = header(&inv, "record-route").unwrap().to_string();
    // The callee's From/To are swapped relative to the caller's.
    let (caller, callee) = (header(&ok, "from").unwrap(), header(&ok, "to").unwrap());
    let bye = in_dialog(
        "BYE",
        1,
        &format!("sip:dialer@{dialer}"),
        h.carrier.local_addr().unwrap(),
        Some(rr),
        callee,
        caller,
        "bye-carrier",
    );
    h.send_carrier(&bye);
    let got = h.recv_dialer().unwrap();
    assert!(
        got.starts_with(&format!("BYE sip:dialer@{dialer}")),
        "{got}"
    );
    h.send_dialer(&reply(&got, 200, "OK", ""));
    assert!(h.recv_carrier().unwrap().starts_with("SIP/2.0 200"));
}

#[test]
fn cancel_follows_its_invite_and_the_487_comes_back() {
    let h = Harness::start();
    let inv_text = h.invite("4155550100", "cancel-1");
    h.send_dialer(&inv_text);
    let inv = h.recv_carrier().unwrap();
    let _trying = h.recv_dialer().unwrap();
    h.send_dialer(&cancel_for(&inv_text));
    let got = h.recv_carrier().unwrap();
    assert!(got.starts_with("CANCEL "), "{got}");
    assert_eq!(
        headers(&got, "via")[0],
        headers(&inv, "via")[0],
        "CANCEL carries the INVITE's branch"
    );
    h.send_carrier(&reply(&got, 200, "OK", ""));
    assert!(h.recv_dialer().unwrap().contains("CSeq: 1 CANCEL"));
    h.send_carrier(&reply(&inv, 487, "Request Terminated", ""));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 487"));
}

#[test]
fn cancel_without_a_transaction_gets_481() {
    let h = Harness::start();
    let d = h.dialer.local_addr().unwrap();
    let cancel = format!("CANCEL sip:4155550100@{p} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bKnope\r\nFrom: <sip:a@{d}>;tag=1\r\nTo: <sip:4155550100@{p}>\r\nCall-ID: nope\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p = h.proxy_addr());
    h.send_dialer(&cancel);
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 481"));
}

#[test]
fn max_forwards_zero_gets_483() {
    let h = Harness::start();
    h.send_dialer(
        &h.invite("4155550100", "mf-0")
            .replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 483"));
    assert!(h.nothing_at(&h.carrier));
}

#[test]
fn missing_max_forwards_is_added() {
    let h = Harness::start();
    h.send_dialer(
        &h.invite("4155550100", "mf-none")
            .replace("Max-Forwards: 70\r\n", ""),
    );
    assert_eq!(
        header(&h.recv_carrier().unwrap(), "max-forwards"),
        Some("70")
    );
}

#[test]
fn options_to_callgate_itself_is_answered_200() {
    let h = Harness::start();
    let d = h.dialer.local_addr().unwrap();
    let opt = format!("OPTIONS sip:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bKping\r\nFrom: <sip:ping@{d}>;tag=1\r\nTo: <sip:{p}>\r\nCall-ID: ping-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", p = h.proxy_addr());
    h.send_dialer(&opt);
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 200 OK"), "{r}");
    assert!(header(&r, "allow").unwrap().contains("INVITE"));
    h.send_carrier(&opt);
    assert!(
        h.recv_carrier().unwrap().starts_with("SIP/2.0 200 OK"),
        "the carrier may ping too"
    );
}

#[test]
fn unknown_source_is_refused_403_and_nothing_reaches_the_carrier() {
    let h = Harness::with(Some(2), "[dialers]\nallow = [\"10.9.9.0/24\"]\n");
    h.send_dialer(&h.invite("4155550100", "stranger"));
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 403"));
    assert!(h.nothing_at(&h.carrier));
}

#[test]
fn compact_headers_and_dotted_user_are_forwarded_and_decided() {
    let h = Harness::start();
    let d = h.dialer.local_addr().unwrap();
    let p = h.proxy_addr();
    let msg = format!("INVITE sip:212.555.0143@{p} SIP/2.0\r\nv: SIP/2.0/UDP {d};branch=z9hG4bKc1\r\nf: <sip:a@{d}>;tag=1\r\nt: <sip:212.555.0143@{p}>\r\ni: compact-1\r\nCSeq: 1 INVITE\r\nm: <sip:a@{d}>\r\nl: 0\r\n\r\n");
    h.send_dialer(&msg);
    let r = h.recv_dialer().unwrap();
    assert!(
        r.starts_with("SIP/2.0 603"),
        "212.555.0143 is on the national list: {r}"
    );
    assert!(r.contains("i: compact-1\r\n"));
}

#[test]
fn tel_request_uri_is_decided_on_its_number() {
    let h = Harness::start();
    let d = h.dialer.local_addr().unwrap();
    let msg = invite_msg("tel:+1-310-555-0188", "tel-1", d, "z9hG4bKtel");
    h.send_dialer(&msg);
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 603"));
}

#[test]
fn to_is_used_when_the_request_uri_has_no_user_part() {
    let h = Harness::start();
    let d = h.dialer.local_addr().unwrap();
    let msg = invite_msg(&format!("sip:{}", h.proxy_addr()), "to-1", d, "z9hG4bKto").replace(
        &format!("To: <sip:{}>", h.proxy_addr()),
        "To: <sip:+13105550188@carrier.example;user=phone>",
    );
    h.send_dialer(&msg);
    let r = h.recv_dialer().unwrap();
    assert!(r.contains("national_dnc"), "{r}");
}

#[test]
fn unparseable_number_is_rejected_with_its_reason() {
    let h = Harness::start();
    h.send_dialer(&h.invite("alice", "unparseable-1"));
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 603"), "{r}");
    assert_eq!(
        header(&r, "reason"),
        Some("Q.850;cause=28;text=\"unparseable_number\"")
    );
}

#[test]
fn emergency_number_is_forwarded_even_when_the_list_is_stale() {
    let h = Harness::with(Some(40), "");
    h.send_dialer(&h.invite("911", "sos-1"));
    assert!(h.recv_carrier().unwrap().starts_with("INVITE sip:911@"));
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "sos-1")
        .unwrap();
    assert_eq!(rec["verdict"], "emergency");
}

#[test]
fn stale_national_list_fails_closed() {
    let h = Harness::with(Some(32), "");
    h.send_dialer(&h.invite("4155550100", "stale-1"));
    let r = h.recv_dialer().unwrap();
    assert!(r.contains("text=\"stale_list\""), "{r}");
    assert!(h.nothing_at(&h.carrier));
}

#[test]
fn national_list_becomes_stale_when_the_clock_passes_31_days() {
    let h = Harness::with(Some(30), "");
    h.send_dialer(&h.invite("4155550100", "age-1"));
    assert!(h.recv_carrier().is_some());
    h.clock.advance(chrono::Duration::days(2));
    h.send_dialer(
        &h.invite("4155550100", "age-2")
            .replace("z9hG4bK-1", "z9hG4bK-2"),
    );
    assert!(h.recv_dialer_final().unwrap().contains("stale_list"));
}

#[test]
fn missing_national_list_fails_closed() {
    let h = Harness::with(None, "");
    h.send_dialer(&h.invite("4155550100", "missing-1"));
    assert!(h.recv_dialer().unwrap().contains("stale_list"));
}

#[test]
fn fail_open_is_an_explicit_choice_and_is_recorded() {
    let h = Harness::with(Some(40), "[policy]\non_stale_national_list = \"allow\"\n");
    h.send_dialer(&h.invite("4155550100", "open-1"));
    assert!(h.recv_carrier().is_some());
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "open-1")
        .unwrap();
    assert_eq!(rec["verdict"], "allowed");
    assert_eq!(rec["fail_open"], true);
    assert_eq!(rec["reasons"][0], "stale_list");
}

#[test]
fn every_decision_reaches_the_audit_log_with_its_fields() {
    let h = Harness::start();
    h.send_dialer(&h.invite("2125550143", "audit-1"));
    h.recv_dialer();
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "audit-1")
        .unwrap();
    for k in [
        "id",
        "ts",
        "source",
        "from",
        "called_raw",
        "called_e164",
        "verdict",
        "reasons",
        "sip_status",
        "lists",
        "latency_us",
    ] {
        assert!(!rec[k].is_null(), "field {k} missing in {rec}");
    }
    assert_eq!(rec["called_e164"], "+12125550143");
    assert_eq!(rec["sip_status"], 603);
    assert_eq!(rec["lists"][0]["id"], "national");
    assert_eq!(rec["lists"][0]["hit"], true);
}

#[test]
fn inbound_invite_from_the_carrier_skips_the_policy_and_says_so() {
    let h = Harness::start();
    let dialer = h.dialer.local_addr().unwrap();
    // Addressed to a number that is on the national list: inbound calls are not checked.
    let inv = invite_msg(
        &format!("sip:2125550143@{dialer}"),
        "inbound-1",
        h.carrier.local_addr().unwrap(),
        "z9hG4bKin",
    );
    h.send_carrier(&inv);
    assert!(h.recv_carrier().unwrap().starts_with("SIP/2.0 100"));
    assert!(h
        .recv_dialer()
        .unwrap()
        .starts_with("INVITE sip:2125550143@"));
    let rec = h
        .audit_lines()
        .into_iter()
        .find(|r| r["call_id"] == "inbound-1")
        .unwrap();
    assert_eq!(rec["verdict"], "inbound");
}

#[test]
fn garbage_datagrams_are_dropped_counted_and_harmless() {
    let h = Harness::start();
    for g in [
        &b"\x00\x01\x02garbage"[..],
        b"INVITE",
        b"SIP/2.0 200\r\n\r\n",
        &[0xffu8; 3000][..],
        b"INVITE sip:x SIP/2.0\r\nVia: bogus\r\n\r\n",
    ] {
        h.dialer.send_to(g, h.proxy_addr()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let (_, metrics) = h.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_parse_errors_total"),
        "parse errors are counted"
    );
    // Still alive and correct afterwards.
    h.send_dialer(&h.invite("4155550100", "after-garbage"));
    assert!(h.recv_carrier().is_some());
}

#[test]
fn bad_content_length_gets_400() {
    let h = Harness::start();
    let inv = h.invite("4155550100", "cl-1");
    let bad = inv.replacen("Content-Length: ", "Content-Length: 9", 1);
    h.send_dialer(&bad);
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
}

#[test]
fn truncated_message_is_dropped_and_counted() {
    let h = Harness::start();
    let inv = h.invite("4155550100", "trunc-1");
    h.dialer
        .send_to(&inv.as_bytes()[..60], h.proxy_addr())
        .unwrap();
    assert!(h.nothing_at(&h.carrier));
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_dropped_messages_total{reason=\"unparseable\"}"),
        "{m}"
    );
}

#[test]
fn tcp_dialer_pipelined_and_split_messages_are_framed() {
    let h = Harness::start();
    let mut s = std::net::TcpStream::connect(h.run().tcp_addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let local = s.local_addr().unwrap();
    let a = invite_msg(
        &format!("sip:2125550143@{}", h.proxy_addr()),
        "tcp-1",
        local,
        "z9hG4bKt1",
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let b = invite_msg(
        &format!("sip:3105550188@{}", h.proxy_addr()),
        "tcp-2",
        local,
        "z9hG4bKt2",
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    // Two messages in one write, the second split across writes.
    let both = format!("{a}{b}");
    let cut = a.len() + 40;
    s.write_all(&both.as_bytes()[..cut]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&both.as_bytes()[cut..]).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 8192];
    while got.matches("SIP/2.0 603").count() < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(got.contains("tcp-1") && got.contains("tcp-2"));
}

#[test]
fn tcp_upstream_receives_forwarded_invites() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let mut cfg = config_for(tmp.path(), up, "");
    cfg.upstream.transport = callgate::sip::peer::Transport::Tcp;
    let running = callgate::server::start(
        cfg,
        std::sync::Arc::new(callgate::clock::OffsetClock::today_at_utc_hour(19)),
    )
    .unwrap();
    let dialer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    dialer
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let inv = invite_msg(
        &format!("sip:4155550100@{}", running.sip_addr),
        "tcp-up",
        dialer.local_addr().unwrap(),
        "z9hG4bKu",
    );
    dialer.send_to(inv.as_bytes(), running.sip_addr).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = vec![0u8; 8192];
    let n = conn.read(&mut buf).unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(got.starts_with("INVITE "), "{got}");
    assert!(headers(&got, "via")[0].starts_with("SIP/2.0/TCP"));
    // Different transports on each side: double Record-Route.
    assert_eq!(headers(&got, "record-route").len(), 2, "{got}");
    // The 180 comes back over the same connection and is relayed to the UDP dialer.
    conn.write_all(reply(&got, 180, "Ringing", "").as_bytes())
        .unwrap();
    let mut b = [0u8; 4096];
    let _trying = dialer.recv_from(&mut b).unwrap();
    let (n, _) = dialer.recv_from(&mut b).unwrap();
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("SIP/2.0 180"));
    running.shutdown();
}

#[test]
fn large_message_over_tcp_is_forwarded_whole() {
    let h = Harness::start();
    let mut s = std::net::TcpStream::connect(h.run().tcp_addr.unwrap()).unwrap();
    let local = s.local_addr().unwrap();
    let inv = invite_msg(
        &format!("sip:4155550100@{}", h.proxy_addr()),
        "big-1",
        local,
        "z9hG4bKbig",
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    let filler = format!("X-Filler: {}\r\n", "a".repeat(20_000));
    let inv = inv.replacen(
        "Max-Forwards: 70\r\n",
        &format!("Max-Forwards: 70\r\n{filler}"),
        1,
    );
    s.write_all(inv.as_bytes()).unwrap();
    let got = h.recv_carrier().expect("forwarded over UDP to the carrier");
    assert!(got.len() > 20_000 && got.ends_with("m=audio 6000 RTP/AVP 0\r\n"));
}

#[test]
fn forwarded_invite_parses_in_an_independent_sip_stack() {
    // rsip is an outside opinion on our splicing: the message we emit must be well formed.
    let h = Harness::start();
    h.send_dialer(&h.invite("4155550100", "rsip-1"));
    let fwd = h.recv_carrier().unwrap();
    let parsed =
        rsip::SipMessage::try_from(fwd.as_str()).expect("rsip parses what callgate forwards");
    let rsip::SipMessage::Request(req) = parsed else {
        panic!("not a request")
    };
    assert_eq!(req.method, rsip::Method::Invite);
    use rsip::prelude::{HeadersExt, UntypedHeader};
    assert_eq!(req.call_id_header().unwrap().value(), "rsip-1");
    assert_eq!(req.max_forwards_header().unwrap().value(), "69");
}

/// Run `Running::shutdown` (SIGTERM's path) on another thread; returns how long it took.
fn shutdown_in_background(h: &mut Harness) -> std::thread::JoinHandle<Duration> {
    let running = h.take_running();
    std::thread::spawn(move || {
        let t = std::time::Instant::now();
        running.shutdown();
        t.elapsed()
    })
}

#[test]
fn draining_answers_new_invites_503_with_retry_after_and_finishes_calls_in_flight() {
    let mut h = Harness::start();
    let first = h.invite("4155550100", "drain-inflight");
    h.send_dialer(&first);
    let at_carrier = h.recv_carrier().unwrap();
    let stopping = shutdown_in_background(&mut h);
    std::thread::sleep(Duration::from_millis(200));
    h.send_dialer(
        &h.invite("4155550101", "drain-new")
            .replace("z9hG4bK-1", "z9hG4bK-new"),
    );
    let r = h.recv_dialer_final().unwrap();
    assert!(r.starts_with("SIP/2.0 503"), "{r}");
    assert_eq!(header(&r, "Retry-After"), Some("30"));
    // The call in flight still gets its answer through, and then the drain ends at once.
    h.send_carrier(&reply(&at_carrier, 200, "OK", ""));
    let answer = h.recv_dialer_final().unwrap();
    assert!(answer.starts_with("SIP/2.0 200"), "{answer}");
    let took = stopping.join().unwrap();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[test]
fn draining_gives_up_on_unanswered_invites_after_the_timeout() {
    let mut h = Harness::start();
    h.send_dialer(&h.invite("4155550100", "drain-silent"));
    h.recv_carrier().unwrap();
    let took = shutdown_in_background(&mut h).join().unwrap();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[test]
fn a_source_over_its_call_rate_gets_503_with_retry_after() {
    let h = Harness::with(
        Some(2),
        "[dialers]\nallow = [\"127.0.0.0/8\"]\nmax_calls_per_second = 2\nburst = 0\n",
    );
    for i in 0..5 {
        h.send_dialer(
            &h.invite("4155550100", &format!("rate-{i}"))
                .replace("z9hG4bK-1", &format!("z9hG4bK-rate-{i}")),
        );
    }
    let mut limited = 0;
    while let Some(r) = h.recv_dialer() {
        if r.starts_with("SIP/2.0 503") {
            assert_eq!(header(&r, "Retry-After"), Some("1"));
            limited += 1;
        }
    }
    assert_eq!(limited, 3, "two calls pass, three are over the rate");
    let (_, metrics) = h.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_rate_limited_total 3"),
        "{metrics}"
    );
    // The bucket refills at the configured rate.
    std::thread::sleep(Duration::from_millis(600));
    h.send_dialer(
        &h.invite("4155550100", "rate-later")
            .replace("z9hG4bK-1", "z9hG4bK-rate-later"),
    );
    while let Some(m) = h.recv_carrier() {
        if m.contains("rate-later") {
            return;
        }
    }
    panic!("the call after the refill did not reach the carrier");
}

#[test]
fn an_in_dialog_request_from_a_dialer_never_goes_anywhere_but_the_upstream() {
    let h = Harness::start();
    // A To tag and a Route to some other host: a relay attempt, or a broken dialer.
    let bye = in_dialog(
        "BYE",
        2,
        "sip:victim@192.0.2.99:5060",
        h.dialer.local_addr().unwrap(),
        Some("<sip:198.51.100.7;lr>".into()),
        "<sip:a@example.com>;tag=1",
        "<sip:b@example.com>;tag=2",
        "relay-attempt",
    );
    h.send_dialer(&bye);
    let got = h
        .recv_carrier()
        .expect("forwarded to the configured upstream");
    assert!(got.starts_with("BYE "), "{got}");
}

#[test]
fn a_tcp_peer_dribbling_a_message_is_cut_off_and_counted() {
    let h = Harness::with(Some(2), "tcp_message_timeout_secs = 1\n");
    let mut s = std::net::TcpStream::connect(h.run().tcp_addr.unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let inv = h.invite("4155550100", "slow-loris");
    s.write_all(&inv.as_bytes()[..40]).unwrap();
    let t = std::time::Instant::now();
    let mut b = [0u8; 64];
    let n = s.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (_, metrics) = h.http("GET", "/metrics", "");
    assert!(
        metrics.contains("callgate_dropped_messages_total{reason=\"tcp_slow_message\"} 1"),
        "{metrics}"
    );
}
