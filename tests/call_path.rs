//! The call path never stops: numbers read from either side's messages are bounded where they
//! are read, so hostile values in well-formed SIP leave every later call working and recorded
//! right; state has bounds with a stated behaviour; a stalled SIP loop is seen by `/healthz`.
//! In-process, with UDP sockets on loopback as the dialer and the carrier. One behaviour per
//! test.

mod common;
use common::calls::*;
use common::*;

/// Values at and past the integer widths a parser might use, negative and non-numeric.
const HOSTILE: [&str; 6] = [
    "2147483648",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "abc",
];

/// Add `name: value` to a message's headers (before the blank line).
fn with_header(msg: &str, name: &str, value: &str) -> String {
    let (head, body) = msg.split_once("\r\n\r\n").unwrap();
    let mut lines: Vec<String> = head.split("\r\n").map(str::to_string).collect();
    let lower = name.to_ascii_lowercase();
    match lines
        .iter()
        .position(|l| l.to_ascii_lowercase().starts_with(&format!("{lower}:")))
    {
        // A header the message has (CSeq, Max-Forwards, Content-Length) takes the value.
        Some(i) if matches!(lower.as_str(), "cseq" | "max-forwards" | "content-length") => {
            let keep = match lower.as_str() {
                "cseq" => format!(" {}", lines[i].split_whitespace().last().unwrap()),
                _ => String::new(),
            };
            lines[i] = format!("{name}: {value}{keep}");
        }
        _ => lines.insert(1, format!("{name}: {value}")),
    }
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// Wait until callgate has handled everything sent so far (an OPTIONS to callgate itself is
/// answered in order after it), then drop whatever reached the carrier meanwhile.
fn settle(h: &Harness, n: usize) {
    let (p, d) = (h.proxy_addr(), h.dialer.local_addr().unwrap());
    let id = format!("settle-{n}");
    h.send_dialer(&format!("OPTIONS sip:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {d};branch=z9hG4bK{id}\r\nFrom: <sip:ping@{d}>;tag=1\r\nTo: <sip:{p}>\r\nCall-ID: {id}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"));
    loop {
        let m = h.recv_dialer().expect("callgate answers while settling");
        if header(&m, "call-id") == Some(id.as_str()) {
            break;
        }
    }
    h.carrier.set_nonblocking(true).unwrap();
    while recv(&h.carrier).is_some() {}
    h.carrier.set_nonblocking(false).unwrap();
}

/// After the hostile messages: a plain call is placed, answered, hung up and recorded right.
fn plain_call_still_works(h: &Harness) {
    let a = answer(h, "plain-after");
    dialer_hangs_up(h, &a, "");
    let r = record(h, "plain-after");
    assert_eq!(r["disposition"], "answered");
    assert_eq!(r["ended_by"], "dialer");
}

/// The dialer's new INVITE, then its re-INVITE in an answered call, carry the value.
fn hostile_from_dialer(name: &str) {
    let h = Harness::start();
    for (i, v) in HOSTILE.iter().enumerate() {
        let id = format!("hostile-dialer-{i}");
        let inv = h
            .invite("4155550100", &id)
            .replace("z9hG4bK-1", &format!("z9hG4bK-{id}"));
        h.send_dialer(&with_header(&inv, name, v));
        settle(&h, 2 * i);
        let a = answer(&h, &format!("{id}-answered"));
        let reinvite = from_dialer(&h, &a, "INVITE", 2, "").replace("-INVITE2", &id);
        h.send_dialer(&with_header(&reinvite, name, v));
        settle(&h, 2 * i + 1);
    }
    plain_call_still_works(&h);
}

/// The carrier's 200 to an INVITE, then its re-INVITE in the answered call, carry the value.
fn hostile_from_carrier(name: &str) {
    let h = Harness::start();
    for (i, v) in HOSTILE.iter().enumerate() {
        let id = format!("hostile-carrier-{i}");
        let inv = place(&h, &id);
        h.send_carrier(&with_header(&reply(&inv, 200, "OK", ""), name, v));
        settle(&h, 2 * i);
        let a = answer(&h, &format!("{id}-answered"));
        let reinvite = from_carrier(&h, &a, "INVITE", 7, "").replace("-cINVITE7", &id);
        h.send_carrier(&with_header(&reinvite, name, v));
        settle(&h, 2 * i + 1);
    }
    plain_call_still_works(&h);
}

macro_rules! hostile {
    ($($dialer:ident, $carrier:ident: $header:literal;)*) => {$(
        #[test]
        fn $dialer() {
            hostile_from_dialer($header);
        }
        #[test]
        fn $carrier() {
            hostile_from_carrier($header);
        }
    )*};
}

hostile! {
    hostile_session_expires_from_the_dialer, hostile_session_expires_from_the_carrier: "Session-Expires";
    hostile_compact_session_expires_from_the_dialer, hostile_compact_session_expires_from_the_carrier: "x";
    hostile_min_se_from_the_dialer, hostile_min_se_from_the_carrier: "Min-SE";
    hostile_expires_from_the_dialer, hostile_expires_from_the_carrier: "Expires";
    hostile_retry_after_from_the_dialer, hostile_retry_after_from_the_carrier: "Retry-After";
    hostile_cseq_from_the_dialer, hostile_cseq_from_the_carrier: "CSeq";
    hostile_rseq_from_the_dialer, hostile_rseq_from_the_carrier: "RSeq";
    hostile_max_forwards_from_the_dialer, hostile_max_forwards_from_the_carrier: "Max-Forwards";
    hostile_content_length_from_the_dialer, hostile_content_length_from_the_carrier: "Content-Length";
    hostile_reason_cause_from_the_dialer, hostile_reason_cause_from_the_carrier: "Reason";
}

#[test]
fn a_huge_session_expires_never_outlives_the_longest_call() {
    let h = Harness::with(Some(2), "[calls]\nmax_duration_secs = 1\n");
    let inv = place(&h, "se-huge");
    h.send_carrier(&reply(
        &inv,
        200,
        "OK",
        "Session-Expires: 9999999999999999999;refresher=uas\r\n",
    ));
    let _ok = h.recv_dialer().unwrap();
    let r = record_within(&h, "se-huge", std::time::Duration::from_secs(5));
    assert_eq!(r["ended_by"], "timeout");
}

#[test]
fn healthz_is_ok_while_the_sip_loop_turns() {
    let h = Harness::start();
    let (status, body) = h.http("GET", "/healthz", "");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}

#[test]
fn new_calls_past_calls_max_open_get_503_before_any_decision() {
    let h = Harness::with(Some(2), "[calls]\nmax_open = 1\n");
    let _first = answer(&h, "max-open-1");
    let inv = h
        .invite("4155550100", "max-open-2")
        .replace("z9hG4bK-1", "z9hG4bK-max-open-2");
    h.send_dialer(&inv);
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 503 "), "{r}");
    assert!(header(&r, "retry-after").is_some(), "{r}");
    assert!(h.nothing_at(&h.carrier));
    assert!(decision_of(&h, "max-open-2").is_empty());
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(m.contains("callgate_calls_refused_max_open_total 1"), "{m}");
}

#[test]
fn a_call_is_taken_again_once_an_open_call_ends() {
    let h = Harness::with(Some(2), "[calls]\nmax_open = 1\n");
    let first = answer(&h, "max-open-a");
    dialer_hangs_up(&h, &first, "");
    let second = answer(&h, "max-open-b");
    dialer_hangs_up(&h, &second, "");
    assert_eq!(record(&h, "max-open-b")["disposition"], "answered");
}

#[test]
fn a_32_kb_caller_name_is_kept_to_256_bytes() {
    let h = Harness::start();
    let name = "N".repeat(32 * 1024);
    let inv = h
        .invite("4155550100", "long-name")
        .replace("z9hG4bK-1", "z9hG4bK-long-name")
        .replace("\"Dialer\"", &format!("\"{name}\""));
    h.send_dialer(&inv);
    let inv = h.recv_carrier().expect("forwarded");
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 100"));
    h.send_carrier(&reply(&inv, 486, "Busy Here", ""));
    let _busy = h.recv_dialer();
    let r = record(&h, "long-name");
    assert_eq!(r["caller_name"].as_str().unwrap().len(), 256);
}

#[test]
fn a_panic_on_the_sip_thread_ends_the_process() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let (sip, admin) = (free_port(), free_port());
    let carrier = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = config_text(tmp.path(), carrier.local_addr().unwrap(), "")
        .replace("127.0.0.1:0\"\ndrain", &format!("127.0.0.1:{sip}\"\ndrain"))
        .replace(
            "listen = \"127.0.0.1:0\"\n",
            &format!("listen = \"127.0.0.1:{admin}\"\n"),
        );
    let config = tmp.path().join("callgate.toml");
    std::fs::write(&config, text).unwrap();
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let log = tmp.path().join("callgate.log");
    let mut child = Kill(spawn_binary_env(
        &config,
        &log,
        admin_addr,
        &[("CALLGATE_TEST_PANIC_CALL_ID", "panic-now")],
    ));
    let dialer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{sip}").parse().unwrap();
    let inv = invite_msg(
        &format!("sip:4155550100@{proxy}"),
        "panic-now",
        dialer.local_addr().unwrap(),
        "z9hG4bK-panic",
    );
    dialer.send_to(inv.as_bytes(), proxy).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "callgate still runs after a panic on its SIP thread"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("callgate panicked"), "{log}");
}

#[test]
fn a_stalled_audit_writer_gets_new_marketing_calls_503_and_never_blocks_the_sip_thread() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| c.audit.queue_capacity = 2);
    let open = answer(&h, "stall-open");
    // Tomorrow's day file is a FIFO nobody reads: the writer blocks opening it.
    use callgate::clock::Clock;
    let tomorrow = (h.clock.now() + chrono::Duration::days(1)).date_naive();
    let fifo = h.dir.join(format!("audit/audit-{tomorrow}.jsonl"));
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo");
    h.clock.advance(chrono::Duration::days(1));
    let mut last = String::new();
    for i in 1..=6 {
        let id = format!("stall-{i}");
        let inv = h
            .invite("4155550100", &id)
            .replace("z9hG4bK-1", &format!("z9hG4bK-{id}"));
        h.send_dialer(&inv);
        last = h
            .recv_dialer()
            .expect("every new call is answered while the writer is stalled");
    }
    assert!(last.starts_with("SIP/2.0 503 "), "{last}");
    assert!(
        header(&last, "warning")
            .unwrap()
            .contains("records_backlog"),
        "{last}"
    );
    assert!(header(&last, "retry-after").is_some(), "{last}");
    // Within the open call, messages still flow.
    settle(&h, 0);
    h.send_dialer(&from_dialer(&h, &open, "BYE", 2, ""));
    let bye = h
        .recv_carrier()
        .expect("the BYE of an open call still passes");
    assert!(bye.starts_with("BYE "), "{bye}");
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(
        m.contains("callgate_calls_refused_backlog_total{level=\"behind\"}"),
        "{m}"
    );
    // Let the writer go on, so the harness stops cleanly.
    std::thread::spawn(move || {
        let mut f = std::fs::File::open(fifo).unwrap();
        let _ = std::io::copy(&mut f, &mut std::io::sink());
    });
}

/// The dialer's INVITE of `place` again, as its new attempt: same Call-ID and From tag, a new
/// branch, CSeq 2 (with the credentials a real dialer would add).
fn retry_of(h: &Harness, call_id: &str) -> String {
    h.invite("4155550100", call_id)
        .replace("z9hG4bK-1", &format!("z9hG4bK-{call_id}-retry"))
        .replace(
            "CSeq: 1 INVITE",
            "CSeq: 2 INVITE\r\nProxy-Authorization: Digest username=\"d\"",
        )
}

/// The carrier challenges the first INVITE; the dialer tries again and the retry is forwarded.
fn challenged_then_retried(h: &Harness, call_id: &str) -> (String, String) {
    let first = place(h, call_id);
    h.send_carrier(&reply(&first, 407, "Proxy Authentication Required", ""));
    let challenge = h.recv_dialer().unwrap();
    assert!(challenge.starts_with("SIP/2.0 407"), "{challenge}");
    h.send_dialer(&retry_of(h, call_id));
    let retry = h.recv_carrier().expect("the retry reaches the carrier");
    assert!(retry.contains("CSeq: 2 INVITE"), "{retry}");
    assert!(h.recv_dialer().unwrap().starts_with("SIP/2.0 100"));
    (first, retry)
}

/// Answer `inv` at the carrier and hang up from the dialer.
fn answer_and_hang_up(h: &Harness, inv: &str, call_id: &str) {
    let carrier = h.carrier.local_addr().unwrap();
    let contact = format!("Contact: <sip:uas@{carrier}>\r\n");
    h.send_carrier(&reply(inv, 200, "OK", &contact));
    let ok = recv_final(&h.dialer).unwrap();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let a = Answered {
        inv: inv.to_string(),
        ok,
        call_id: call_id.into(),
    };
    dialer_hangs_up(h, &a, "");
}

#[test]
fn an_invite_challenged_407_and_sent_again_is_one_call_with_one_decision() {
    let h = Harness::start();
    let (_, retry) = challenged_then_retried(&h, "auth-1");
    answer_and_hang_up(&h, &retry, "auth-1");
    assert_eq!(decision_of(&h, "auth-1").len(), 1, "one decision");
    let r = record(&h, "auth-1");
    assert_eq!(r["disposition"], "answered");
}

#[test]
fn a_retransmitted_407_after_the_retry_does_not_end_the_call() {
    let h = Harness::start();
    let (first, retry) = challenged_then_retried(&h, "auth-2");
    h.send_carrier(&reply(&first, 407, "Proxy Authentication Required", ""));
    let _again = h.recv_dialer();
    assert!(call_records(&h, "auth-2").is_empty(), "the call goes on");
    answer_and_hang_up(&h, &retry, "auth-2");
    assert_eq!(record(&h, "auth-2")["disposition"], "answered");
}

#[test]
fn a_call_id_reused_by_another_caller_is_another_call() {
    let h = Harness::start();
    let first = place(&h, "reused");
    let other = h
        .invite("4155550100", "reused")
        .replace("z9hG4bK-1", "z9hG4bK-reused-other")
        .replace(";tag=d1", ";tag=other-caller");
    h.send_dialer(&other);
    let second = h
        .recv_carrier()
        .expect("the other caller's call is forwarded");
    let _trying = h.recv_dialer();
    assert_eq!(decision_of(&h, "reused").len(), 2);
    let (_, m) = h.http("GET", "/metrics", "");
    assert!(m.contains("callgate_calls_open 2"), "{m}");
    h.send_carrier(&reply(&first, 486, "Busy Here", ""));
    let _ = h.recv_dialer();
    h.send_carrier(&reply(&second, 480, "Temporarily Unavailable", ""));
    let _ = h.recv_dialer();
    let mut dispositions: Vec<String> = call_records(&h, "reused")
        .iter()
        .map(|r| r["disposition"].as_str().unwrap().to_string())
        .collect();
    dispositions.sort();
    assert_eq!(dispositions, ["busy", "no_answer"]);
}

#[test]
fn the_same_invite_on_another_branch_while_in_progress_gets_482() {
    let h = Harness::start();
    let _inv = place(&h, "merged");
    let again = h
        .invite("4155550100", "merged")
        .replace("z9hG4bK-1", "z9hG4bK-merged-2");
    h.send_dialer(&again);
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 482"), "{r}");
    assert_eq!(decision_of(&h, "merged").len(), 1);
}

#[test]
fn a_bye_from_the_dialer_before_the_answer_ends_the_call_as_cancelled_by_the_dialer() {
    let h = Harness::start();
    let inv = place(&h, "early-bye");
    h.send_carrier(&reply(&inv, 180, "Ringing", ""));
    let ringing = h.recv_dialer().unwrap();
    let early = Answered {
        inv: inv.clone(),
        ok: ringing,
        call_id: "early-bye".into(),
    };
    h.send_dialer(&from_dialer(&h, &early, "BYE", 2, ""));
    let bye = h.recv_carrier().unwrap();
    assert!(bye.starts_with("BYE "), "{bye}");
    h.send_carrier(&reply(&inv, 487, "Request Terminated", ""));
    let _ = h.recv_dialer();
    let r = record(&h, "early-bye");
    assert_eq!(r["disposition"], "cancelled");
    assert_eq!(r["ended_by"], "dialer");
}

#[test]
fn a_refused_session_refresh_changes_nothing() {
    let h = Harness::start();
    let inv = place(&h, "refresh-refused");
    let carrier = h.carrier.local_addr().unwrap();
    let extra = format!("Contact: <sip:uas@{carrier}>\r\nSession-Expires: 1;refresher=uas\r\n");
    h.send_carrier(&reply(&inv, 200, "OK", &extra));
    let ok = h.recv_dialer().unwrap();
    let a = Answered {
        inv,
        ok,
        call_id: "refresh-refused".into(),
    };
    h.send_dialer(&from_dialer(
        &h,
        &a,
        "INVITE",
        2,
        "Session-Expires: 3600\r\n",
    ));
    let reinvite = h.recv_carrier().unwrap();
    h.send_carrier(&reply(&reinvite, 488, "Not Acceptable Here", ""));
    let _ = h.recv_dialer();
    let r = record_within(&h, "refresh-refused", std::time::Duration::from_secs(5));
    assert_eq!(
        r["ended_by"], "timeout",
        "the session interval of the answer holds"
    );
}

#[test]
fn a_disposition_header_from_the_carrier_is_ignored() {
    let h = Harness::start();
    let a = answer(&h, "carrier-says");
    let bye = from_carrier(&h, &a, "BYE", 5, "X-Callgate-Disposition: abandoned\r\n");
    h.send_carrier(&bye);
    let bye = h.recv_dialer().unwrap();
    h.send_dialer(&reply(&bye, 200, "OK", ""));
    let _ = h.recv_carrier();
    let r = record(&h, "carrier-says");
    assert_eq!(r["disposition"], "answered");
    assert_eq!(r["ended_by"], "carrier");
}

#[test]
fn a_refused_refer_changes_nothing() {
    let h = Harness::start();
    let a = answer(&h, "refer-refused");
    let target = "Refer-To: <sip:+13125550123@pbx.example.com>\r\n";
    h.send_dialer(&from_dialer(&h, &a, "REFER", 2, target));
    let refer = h.recv_carrier().unwrap();
    h.send_carrier(&reply(&refer, 603, "Decline", ""));
    let _ = h.recv_dialer();
    dialer_hangs_up(&h, &a, "");
    let r = record(&h, "refer-refused");
    assert_eq!(r["disposition"], "answered");
    assert!(r["transfer_to"].is_null(), "{r}");
}

#[test]
fn an_accepted_refer_from_the_carrier_is_recorded_as_the_carriers() {
    let h = Harness::start();
    let a = answer(&h, "carrier-refer");
    let target = "Refer-To: <sip:+13125550199@carrier.example.com>\r\n";
    h.send_carrier(&from_carrier(&h, &a, "REFER", 5, target));
    let refer = h.recv_dialer().unwrap();
    assert!(refer.starts_with("REFER "), "{refer}");
    h.send_dialer(&reply(&refer, 202, "Accepted", ""));
    let _ = h.recv_carrier();
    dialer_hangs_up(&h, &a, "");
    let r = record(&h, "carrier-refer");
    assert_eq!(r["disposition"], "transferred");
    assert_eq!(r["transfer_by"], "carrier");
    assert_eq!(r["transfer_to"], "sip:+13125550199@carrier.example.com");
}

#[test]
fn an_inbound_call_refused_by_the_dialers_side_is_ended_by_the_dialer() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let agent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    agent
        .set_read_timeout(Some(std::time::Duration::from_millis(1500)))
        .unwrap();
    let at = agent.local_addr().unwrap();
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| {
        c.sip.inbound_target = Some(at)
    });
    let p = h.proxy_addr();
    let carrier = h.carrier.local_addr().unwrap();
    let inv = invite_msg(
        &format!("sip:+12025550100@{p}"),
        "inbound-busy",
        carrier,
        "z9hG4bK-inb",
    );
    h.send_carrier(&inv);
    let got = recv(&agent).expect("the inbound INVITE reaches the dialers' side");
    assert!(got.starts_with("INVITE "), "{got}");
    agent
        .send_to(reply(&got, 486, "Busy Here", "").as_bytes(), p)
        .unwrap();
    let busy = recv_final(&h.carrier).unwrap();
    assert!(busy.starts_with("SIP/2.0 486"), "{busy}");
    let r = record(&h, "inbound-busy");
    assert_eq!(r["direction"], "inbound");
    assert_eq!(r["ended_by"], "dialer");
}

#[test]
fn a_cancel_after_the_transaction_timeout_still_reaches_the_carrier() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| {
        c.sip.transaction_timeout_secs = 1
    });
    let inv = h
        .invite("4155550100", "late-cancel")
        .replace("z9hG4bK-1", "z9hG4bK-late-cancel");
    h.send_dialer(&inv);
    let fwd = h.recv_carrier().unwrap();
    let _trying = h.recv_dialer();
    h.send_carrier(&reply(&fwd, 180, "Ringing", ""));
    let _ringing = h.recv_dialer();
    // Past the transaction timeout and two sweeps (once a second): no event to wait on.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    h.send_dialer(&cancel_for(&inv));
    let cancel = h
        .recv_carrier()
        .expect("the CANCEL goes where its INVITE went");
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
}

#[test]
fn an_answered_invites_transaction_is_forgotten_after_the_transaction_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| {
        c.sip.transaction_timeout_secs = 1
    });
    let inv = h
        .invite("4155550100", "tx-gone")
        .replace("z9hG4bK-1", "z9hG4bK-tx-gone");
    h.send_dialer(&inv);
    let fwd = h.recv_carrier().unwrap();
    let _trying = h.recv_dialer();
    h.send_carrier(&reply(&fwd, 486, "Busy Here", ""));
    let _busy = h.recv_dialer();
    // Past the transaction timeout and two sweeps (once a second): no event to wait on.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    h.send_dialer(&cancel_for(&inv));
    let r = h.recv_dialer().unwrap();
    assert!(r.starts_with("SIP/2.0 481"), "{r}");
}

#[test]
fn timer_c_cancels_toward_the_carrier_answers_408_and_records_no_answer() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    let h = Harness::in_dir_with(tmp.path().to_path_buf(), "", |c| c.sip.timer_c_secs = 1);
    let inv = place(&h, "timer-c");
    h.send_carrier(&reply(&inv, 180, "Ringing", ""));
    let _ringing = h.recv_dialer().unwrap();
    // Timer C (1 s here) and the next sweep: the CANCEL is the event waited for.
    h.carrier
        .set_read_timeout(Some(std::time::Duration::from_secs(4)))
        .unwrap();
    let cancel = h
        .recv_carrier()
        .expect("Timer C cancels toward the carrier");
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    assert_eq!(
        header(&cancel, "via"),
        header(&inv, "via"),
        "the INVITE's branch"
    );
    assert!(header(&cancel, "cseq").unwrap().ends_with("CANCEL"));
    let timeout = h.recv_dialer().unwrap();
    assert!(timeout.starts_with("SIP/2.0 408"), "{timeout}");
    let r = record(&h, "timer-c");
    assert_eq!(r["disposition"], "no_answer");
    assert_eq!(r["ended_by"], "timeout");
}
