//! What each message of a call allocates on the SIP thread, through the whole message path
//! (`Proxy::handle`: parse, admission, the compliance gate's decision and record hand-off, the
//! rewrite, the transaction and call state): a counting allocator, per thread, so the audit
//! writer's own work on its thread is not counted. The budgets are today's counts: a change
//! that allocates more on the hot path fails here and says where.

#[path = "support/gate_proxy.rs"]
mod gate_proxy;
#[path = "support/proxy_settings.rs"]
mod proxy_settings;

use bytes::Bytes;
use callgate::sip::peer::{Outgoing, Peer};
use gate_proxy::{gate_proxy, GateProxy, List};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct PerThread;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no counter left; it is not the SIP thread.
    let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
}

unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: PerThread = PerThread;

const DIALER: &str = "192.0.2.20:5062";
const CARRIER: &str = "198.51.100.7:5060";

/// The real gate: lists (a national list in date), the default policy, the audit writer.
fn fixture() -> GateProxy {
    let national = List {
        id: "national",
        kind: "national",
        numbers: "2025550177\n".into(),
        dated: true,
    };
    gate_proxy(&[national], CARRIER.parse().unwrap(), "198.51.100.7")
}

/// A request from the dialer (`to_tag` empty: the INVITE).
fn request(method: &str, call: &str, branch: &str, to_tag: &str, cseq: u32) -> String {
    let tag = match to_tag {
        "" => String::new(),
        t => format!(";tag={t}"),
    };
    format!(
        "{method} sip:+14155550100@192.0.2.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {DIALER};branch={branch};rport\r\nFrom: \"Acme\" <sip:+12025550100@192.0.2.20>;tag=d1\r\nTo: <sip:+14155550100@192.0.2.10:5060>{tag}\r\nCall-ID: {call}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContact: <sip:dialer@{DIALER}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The carrier's response to a message the proxy forwarded to it.
fn response_to(forwarded: &[u8], status: u16, reason: &str) -> String {
    let forwarded = std::str::from_utf8(forwarded).unwrap();
    let mut r = format!("SIP/2.0 {status} {reason}\r\n");
    for line in forwarded.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if ["Via", "From", "To", "Call-ID", "CSeq", "Record-Route"].contains(&name.trim()) {
            let value = value.trim();
            match name.trim() == "To" && status > 100 && !value.contains("tag=") {
                true => r += &format!("To: {value};tag=c1\r\n"),
                false => r += &format!("{}: {value}\r\n", name.trim()),
            }
        }
    }
    r + "Contact: <sip:carrier@198.51.100.7:5060>\r\nContent-Length: 0\r\n\r\n"
}

/// Allocations on this thread while the proxy handles `msg` from `from`, and what it sent.
fn handled(f: &GateProxy, from: &str, msg: String) -> (usize, Vec<Outgoing>) {
    // As the UDP loop makes it (a vector of exactly its size; `Bytes::from(String)` would
    // allocate the shared header here, outside the count, rather than in `handle`).
    let data = Bytes::copy_from_slice(msg.as_bytes());
    let src = Peer::Udp(from.parse().unwrap());
    let mut out = Vec::with_capacity(4);
    let before = ALLOCS.with(Cell::get);
    f.proxy.handle(data, src, &mut out);
    (ALLOCS.with(Cell::get) - before, out)
}

/// One call, INVITE to BYE: each message's allocations, by name.
fn a_call(f: &GateProxy, n: u32) -> Vec<(&'static str, usize)> {
    let call = format!("alloc-{n}@192.0.2.20");
    let (invite, out) = handled(
        f,
        DIALER,
        request("INVITE", &call, &format!("z9hG4bK-i{n}"), "", 1),
    );
    let forwarded = out.last().expect("the INVITE is forwarded").data.clone();
    assert!(forwarded.starts_with(b"INVITE "), "{out:?}");
    let (ringing, out) = handled(f, CARRIER, response_to(&forwarded, 180, "Ringing"));
    assert!(out[0].data.starts_with(b"SIP/2.0 180"), "{out:?}");
    let (ok, out) = handled(f, CARRIER, response_to(&forwarded, 200, "OK"));
    assert!(out[0].data.starts_with(b"SIP/2.0 200"), "{out:?}");
    let (ack, out) = handled(
        f,
        DIALER,
        request("ACK", &call, &format!("z9hG4bK-a{n}"), "c1", 1),
    );
    assert!(out[0].data.starts_with(b"ACK "), "{out:?}");
    let (bye, out) = handled(
        f,
        DIALER,
        request("BYE", &call, &format!("z9hG4bK-b{n}"), "c1", 2),
    );
    let bye_fwd = out[0].data.clone();
    assert!(bye_fwd.starts_with(b"BYE "), "{out:?}");
    let (bye_ok, out) = handled(f, CARRIER, response_to(&bye_fwd, 200, "OK"));
    assert!(out[0].data.starts_with(b"SIP/2.0 200"), "{out:?}");
    vec![
        ("INVITE", invite),
        ("180", ringing),
        ("200", ok),
        ("ACK", ack),
        ("BYE", bye),
        ("200 to BYE", bye_ok),
    ]
}

#[test]
fn each_message_of_a_call_allocates_within_its_budget() {
    let f = fixture();
    // The first calls fill what is made once (metric children, buffers, map shards).
    (0..20).for_each(|n| drop(a_call(&f, n)));
    // The least of five calls: a map shard that grows (they are picked by a random hasher)
    // is counted against no message.
    let runs: Vec<_> = (20..25).map(|n| a_call(&f, n)).collect();
    let counts: Vec<(&str, usize)> = (0..runs[0].len())
        .map(|i| (runs[0][i].0, runs.iter().map(|r| r[i].1).min().unwrap()))
        .collect();
    // Today's counts. A relayed message: its header index and the bytes written out (the
    // received bytes are not cloned; the splice buffers are the thread's, reused). The INVITE adds the 100 Trying, the decision
    // (record hand-off, the open call and its record's fields), the transaction and the call.
    // The BYE adds the call's end (its record).
    let budgets = [
        ("INVITE", 12),
        ("180", 2),
        ("200", 2),
        ("ACK", 2),
        ("BYE", 4),
        ("200 to BYE", 2),
    ];
    for ((name, n), (_, budget)) in counts.iter().zip(budgets) {
        eprintln!("{name}: {n} allocations (budget {budget})");
    }
    for ((name, n), (_, budget)) in counts.iter().zip(budgets) {
        assert!(*n <= budget, "{name}: {n} allocations, budget {budget}");
    }
}
