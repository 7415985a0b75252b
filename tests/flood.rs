//! Flood resilience: while a dialer (sipp) places legal calls through the `callgate` binary to
//! a carrier (sipp), another source floods callgate's SIP port with garbage datagrams and
//! INVITEs from an address that is not an allowed dialer. The legal calls must still succeed
//! (at least 99.9%), nothing from the flood may reach the carrier, callgate's memory must stay
//! bounded, and the flood must be counted. FAILS (never skips) when sipp is not installed.
//!
//! `CALLGATE_FLOOD_CALLS` (default 3000 at 150 calls/s) and `CALLGATE_FLOOD_PPS` (default 4000
//! flood datagrams/s; 0 = as fast as one local sender can go) scale it.

mod common;

use common::{free_port, sipp, spawn_binary, try_http, write_data, Kill};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Garbage of varied shapes, and INVITEs that parse but come from a source that may not call.
fn flood_packets(target: SocketAddr) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02 not sip at all".to_vec(),
        vec![b'A'; 1400],
        b"INVITE sip:2125550100@x SIP/2.0\r\nVia: SIP/2.0/UDP".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        b"INVITE  SIP/2.0\r\n\r\n".to_vec(),
    ];
    for i in 0..64 {
        v.push(format!(
            "INVITE sip:415555{i:04}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5999;branch=z9hG4bKflood{i}\r\nFrom: <sip:+12025550100@127.0.0.2>;tag=f{i}\r\nTo: <sip:415555{i:04}@{target}>\r\nCall-ID: flood-{i}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        ).into_bytes());
    }
    v
}

#[test]
fn legal_calls_succeed_through_a_garbage_and_unauthorized_invite_flood() {
    let calls = env_u64("CALLGATE_FLOOD_CALLS", 3000);
    let pps = env_u64("CALLGATE_FLOOD_PPS", 4000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(dir, Some(2));
    let (sip, admin, carrier) = (free_port(), free_port(), free_port());
    let d = dir.display();
    std::fs::write(
        dir.join("callgate.toml"),
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[upstream]\naddress = \"127.0.0.1:{carrier}\"\n[dialers]\nallow = [\"127.0.0.1/32\"]\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n[log]\nlevel = \"error\"\n"
        ),
    )
    .unwrap();
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    let cg = Kill(spawn_binary(
        &dir.join("callgate.toml"),
        &dir.join("callgate.log"),
        admin_addr,
    ));
    let _uas = Kill(
        Command::new(sipp())
            .args([
                "-timeout",
                "300s",
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &carrier.to_string(),
                "-nostdin",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::fs::write(
        dir.join("numbers.csv"),
        (0..500).fold("SEQUENTIAL\n".to_string(), |s, i| {
            s + &format!("415{:07}\n", 3_000_000 + i)
        }),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = rss_kib(cg.0.id());

    // The flood, from 127.0.0.2 (loopback, but not an allowed dialer).
    let target: SocketAddr = format!("127.0.0.1:{sip}").parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let s = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
            s.set_nonblocking(true).unwrap();
            let packets = flood_packets(target);
            let start = Instant::now();
            let mut n = 0u64;
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                // Pace to `pps` (0: unpaced); drain (and ignore) whatever callgate answers.
                let due = if pps == 0 {
                    n + 256
                } else {
                    (start.elapsed().as_secs_f64() * pps as f64) as u64
                };
                while n < due {
                    let _ = s.send_to(&packets[n as usize % packets.len()], target);
                    n += 1;
                }
                while s.recv_from(&mut buf).is_ok() {}
                if pps != 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            sent.store(n, Ordering::Relaxed);
        })
    };

    let uac_port = free_port();
    let stats = dir.join("uac_stats.csv");
    let status = Command::new(sipp())
        .arg("-sf")
        .arg(format!("{SCENARIOS}/uac_allow.xml"))
        .args(["-inf", "numbers.csv"])
        .arg(target.to_string())
        .args(["-i", "127.0.0.1", "-p", &uac_port.to_string()])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            "150",
            "-timeout",
            "240s",
            "-recv_timeout",
            "10000",
            "-nostdin",
        ])
        .args(["-trace_stat", "-stf"])
        .arg(&stats)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    flooder.join().unwrap();
    let rss_after = rss_kib(cg.0.id());
    let (_, m) = try_http(admin_addr, "GET", "/metrics", "", None).unwrap();

    let text = std::fs::read_to_string(&stats).expect("sipp statistics");
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    let col = |name: &str| {
        let i = rows[0]
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", rows[0]));
        rows.last().unwrap()[i].parse::<u64>().unwrap()
    };
    let (ok, failed) = (col("SuccessfulCall(C)"), col("FailedCall(C)"));
    let flood = sent.load(Ordering::Relaxed);
    let unauthorized = metric(&m, "callgate_unauthorized_requests_total");
    let dropped =
        metric(&m, "callgate_dropped_messages_total") + metric(&m, "callgate_parse_errors_total");
    eprintln!(
        "{calls} legal calls: {ok} ok, {failed} failed (sipp exit {:?}); flood {flood} datagrams at {pps}/s: \
         {unauthorized} requests from the stranger (403 at most 100/s, the rest dropped unparsed), {dropped} dropped or answered 400; \
         callgate RSS {rss_before} -> {rss_after} KiB",
        status.code()
    );
    assert!(flood > pps.max(1000), "the flood ran ({flood} datagrams)");
    assert!(unauthorized > 0.0 && dropped > 0.0, "the flood was counted");
    assert!(
        ok * 1000 >= calls * 999,
        "legal calls: {ok} of {calls} succeeded (< 99.9%), {failed} failed"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
    // Only the legal calls were decided (and so could be forwarded): the flood's INVITEs were
    // refused before the policy, from the source check.
    assert_eq!(
        metric(&m, "callgate_decisions_total{") as u64,
        calls,
        "decisions: only the legal calls"
    );
}
