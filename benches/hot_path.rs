//! The hot path, measured: list lookup (hit/miss), number extraction + decision on a realistic
//! ~900-byte INVITE, and the whole message path (`Proxy::handle`: parse, decide, audit hand-off,
//! forwarded message built).
//!
//!     cargo bench --bench hot_path
//!
//! Lists: a national list of 1,000,000 synthetic numbers (deterministic, spread uniformly, so
//! nearly every number has a block of its own: the slow case for the block containers), an
//! internal list; lookups go through `ListSet::lookup` (prefilter, then the lists).
//! `benches/lists.rs` measures the list structures at registry scale.

#[path = "../tests/support/gate_proxy.rs"]
mod gate_proxy;
#[path = "../tests/support/proxy_settings.rs"]
mod proxy_settings;
use bytes::Bytes;
use callgate::config::Config;
use callgate::number::{dial_string, E164};
use callgate::policy::context::CallerId;
use callgate::policy::{Policy, PolicyState};
use callgate::sip::parse::Message;
use callgate::sip::peer::Peer;
use callgate::sip::uri::Uri;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gate_proxy::{gate_proxy, GateProxy, List};
use std::time::Duration;

#[path = "../tests/support/all_rules.rs"]
mod all_rules;

fn numbers(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let npa = 200 + (x >> 33) % 800;
            let nxx = 200 + (x >> 17) % 800;
            let line = (x >> 3) % 10_000;
            10_000_000_000 + npa * 10_000_000 + nxx * 10_000 + line
        })
        .collect()
}

const INVITE: &str = "INVITE sip:4155550100@192.0.2.10:5060;user=phone SIP/2.0\r
Via: SIP/2.0/UDP 192.0.2.20:5061;branch=z9hG4bK-524287-1---77ba8a2c7f2e4c1d;rport\r
Max-Forwards: 70\r
Contact: <sip:dialer@192.0.2.20:5061;transport=udp>\r
To: <sip:4155550100@192.0.2.10:5060;user=phone>\r
From: \"Acme Outbound\" <sip:+12025550100@192.0.2.20:5061>;tag=1c2b3a4d\r
Call-ID: 8d3f1b2c-4e5a-6b7c-8d9e-0f1a2b3c4d5e@192.0.2.20\r
CSeq: 1 INVITE\r
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r
Supported: replaces, norefersub, timer\r
User-Agent: VICIdial Asterisk PBX 16.30.0\r
P-Asserted-Identity: <sip:+12025550100@192.0.2.20>\r
Session-Expires: 1800;refresher=uac\r
Content-Type: application/sdp\r
Content-Length: 290\r
\r
v=0\r
o=root 1809185720 1809185720 IN IP4 192.0.2.20\r
s=Asterisk PBX 16.30.0\r
c=IN IP4 192.0.2.20\r
t=0 0\r
m=audio 14526 RTP/AVP 0 8 3 18 101\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:3 GSM/8000\r
a=rtpmap:18 G729/8000\r
a=fmtp:18 annexb=no\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:20\r
a=maxptime:150\r
a=sendrecv\r
";

struct Fixture {
    state: PolicyState,
    gate: GateProxy,
    policy: Policy,
}

fn fixture() -> Fixture {
    let national: String = numbers(1_000_000, 7)
        .iter()
        .map(|n| format!("{}\n", n - 10_000_000_000))
        .collect();
    let lists = [
        List {
            id: "national",
            kind: "national",
            numbers: national,
            dated: true,
        },
        List {
            id: "internal",
            kind: "internal",
            numbers: "2025550177\n".into(),
            dated: false,
        },
    ];
    Fixture {
        gate: gate_proxy(&lists, "127.0.0.1:9".parse().unwrap(), "127.0.0.1"),
        policy: Policy::new(&Config::default()).unwrap(),
        state: PolicyState::in_memory(),
    }
}

fn bench(c: &mut Criterion) {
    let f = fixture();
    let lists = f.gate.lists.snapshot();
    let nums = numbers(1_000_000, 7);
    let hits: Vec<E164> = nums
        .iter()
        .step_by(97)
        .map(|n| E164::from_digits_unchecked(*n))
        .collect();
    let misses: Vec<E164> = numbers(10_000, 99)
        .into_iter()
        .map(E164::from_digits_unchecked)
        .filter(|n| lists.lookup(*n) == 0)
        .collect();
    let mut i = 0usize;
    c.bench_function("lookup_hit_1M", |b| {
        b.iter(|| {
            i = (i + 1) % hits.len();
            black_box(lists.lookup(hits[i]))
        })
    });
    let mut j = 0usize;
    c.bench_function("lookup_miss_1M", |b| {
        b.iter(|| {
            j = (j + 1) % misses.len();
            black_box(lists.lookup(misses[j]))
        })
    });

    let invite = Bytes::from_static(INVITE.as_bytes());
    c.bench_function("parse_invite_900B", |b| {
        b.iter(|| black_box(Message::parse(invite.clone()).unwrap()))
    });
    c.bench_function("extract_and_decide_900B_invite", |b| {
        b.iter(|| {
            let m = Message::parse(invite.clone()).unwrap();
            m.validate_request().unwrap();
            let uri = Uri::parse(m.bytes(m.request_uri().unwrap())).unwrap();
            let called = f
                .gate
                .normalizer
                .normalize(&dial_string(uri.user).unwrap())
                .map_err(callgate::number::NumberProblem::Normalize);
            let ctx = f.policy.campaigns.classify(
                None,
                None,
                None,
                CallerId::Number(E164::from_digits_unchecked(12025550100)),
            );
            black_box(
                f.policy
                    .decide(
                        ctx,
                        called,
                        callgate::policy::Against {
                            lists: f.gate.lists.snapshot(),
                            optouts: &f.gate.lists.optouts,
                            state: &f.state,
                            now: chrono::Utc::now(),
                        },
                        false,
                    )
                    .verdict,
            )
        })
    });
    // The whole policy evaluation with every rule kind on: an 850 (Florida, two zones) wireless
    // number called by an autodialed campaign: federal and FL hours in both zones, PEWC found
    // in the consent records, the FL cap counted, state-list scope, caller ID.
    {
        let (policy, ls, state) = all_rules::fixture();
        let n: E164 = all_rules::WIRELESS_WITH_PEWC.parse().unwrap();
        let caller = CallerId::Number(all_rules::CALLER_ID.parse().unwrap());
        for (name, at) in [
            ("policy_decide_all_rules", "2026-11-24T16:00:00Z"),
            // Outside the window: the rejection also computes Retry-After.
            (
                "policy_decide_outside_hours_with_retry_after",
                "2026-11-24T11:00:00Z",
            ),
        ] {
            let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
            c.bench_function(name, |b| {
                b.iter(|| {
                    let ctx = policy.campaigns.classify(None, None, None, caller);
                    let d = policy.decide(
                        ctx,
                        Ok(callgate::number::Called::Number(n)),
                        callgate::policy::Against {
                            lists: ls.clone(),
                            optouts: &f.gate.lists.optouts,
                            state: &state,
                            now: at,
                        },
                        false,
                    );
                    black_box((d.verdict, d.retry_after))
                })
            });
        }
    }

    // The whole message path: each iteration is a new call (new branch and Call-ID), so it is
    // decided, audited and forwarded, not answered as a retransmission.
    let src = Peer::Udp("192.0.2.20:5061".parse().unwrap());
    let mut n = 0u64;
    let mut out = Vec::with_capacity(4);
    c.bench_function("proxy_handle_new_invite_900B", |b| {
        b.iter(|| {
            n += 1;
            let text = INVITE
                .replace("77ba8a2c7f2e4c1d", &format!("{n:016x}"))
                .replace("8d3f1b2c", &format!("{:08x}", n as u32));
            f.gate.proxy.handle(Bytes::from(text), src, &mut out);
            black_box(out.len());
            out.clear();
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1)).sample_size(50);
    targets = bench
}
criterion_main!(benches);
