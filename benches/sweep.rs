//! The once-a-second sweep of the SIP core with many calls open: what it costs the SIP thread
//! when nothing is due (the common case) and when calls are. Issue 25 asked for deadlines that
//! are not found by scanning every open call and transaction each second.
//!
//!     cargo bench --bench sweep
//!
//! A gate that lets every call through (no policy, no audit): only the core's state counts.

#[path = "../tests/support/proxy_settings.rs"]
mod proxy_settings;
use bytes::Bytes;
use callgate::sip::gate::{Admission, CallGate, NewCall};
use callgate::sip::metrics::SipMetrics;
use callgate::sip::peer::{Outgoing, Peer};
use callgate::sip::proxy::{Access, Proxy};
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Forward;

impl CallGate for Forward {
    fn admit(&self, _call: &NewCall<'_>) -> Admission {
        Admission::Forward { hold_until: None }
    }
}

const OPEN: usize = 100_000;

fn proxy() -> Proxy {
    let settings = proxy_settings::settings("127.0.0.1:9".parse().unwrap(), "127.0.0.1");
    let access = Access {
        dialers: vec!["192.0.2.0/24".parse().unwrap()],
        drain_retry_after_secs: 30,
        ..Access::default()
    };
    Proxy::new(
        settings,
        access,
        Arc::new(Forward),
        Arc::new(SipMetrics::detached()),
    )
}

/// `n` new calls forwarded and ringing-free: `n` open calls and `n` INVITE transactions.
fn open_calls(p: &Proxy, n: usize) {
    let src = Peer::Udp("192.0.2.20:5061".parse().unwrap());
    let mut out: Vec<Outgoing> = Vec::with_capacity(4);
    for i in 0..n {
        let invite = format!(
            "INVITE sip:+14155550100@192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.20:5061;branch=z9hG4bK-{i}\r\nFrom: <sip:+12025550100@192.0.2.20>;tag=t{i}\r\nTo: <sip:+14155550100@192.0.2.10>\r\nCall-ID: sweep-{i}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        p.handle(Bytes::from(invite), src, &mut out);
        out.clear();
    }
}

fn bench(c: &mut Criterion) {
    let p = proxy();
    let start = Instant::now();
    open_calls(&p, OPEN);
    eprintln!("{OPEN} calls opened in {:?}", start.elapsed());
    let mut out = Vec::new();
    c.bench_function("sweep_100k_open_calls_none_due", |b| {
        b.iter(|| p.sweep(&mut out))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1)).sample_size(20);
    targets = bench
}
criterion_main!(benches);
