//! Nothing acknowledged is lost: the `callgate` binary runs under sipp call load and opt-out API
//! traffic and is killed with SIGKILL at pseudo-random moments, then restarted. Every opt-out
//! that got a 201 must be in force after the restarts, and the audit hash chain must verify
//! (a torn final record is cut at restart).
//!
//! CI runs a few cycles; `CALLGATE_CRASH_CYCLES=1000 cargo test --release --test crash -- --nocapture`
//! is the long run. FAILS (never skips) when sipp is not installed.

mod common;

use callgate::audit::chain::audit_files;
use callgate::audit::verify::verify;
use common::{free_port, sipp, spawn_binary, try_http, write_data};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

struct Ports {
    sip: u16,
    admin: u16,
    carrier: u16,
}

fn spawn_callgate(dir: &Path, p: &Ports, durability: &str) -> Child {
    let d = dir.display();
    let cfg = format!(
        "[sip]\nlisten = \"127.0.0.1:{}\"\n[upstream]\naddress = \"127.0.0.1:{}\"\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\ndurability = \"{durability}\"\n[admin]\nlisten = \"127.0.0.1:{}\"\n",
        p.sip, p.carrier, p.admin
    );
    std::fs::write(dir.join("callgate.toml"), cfg).unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", p.admin).parse().unwrap();
    spawn_binary(&dir.join("callgate.toml"), &dir.join("callgate.log"), admin)
}

/// sipp itself (not under `timeout`, whose child would survive a SIGKILL of it), bounded by
/// its own global `-timeout`.
fn sipp_bg(args: &[&str], dir: &Path) -> Child {
    Command::new(sipp())
        .args(["-timeout", "600s"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn acknowledged_optouts_and_the_audit_chain_survive_sigkill() {
    crash_cycles("async");
}

/// Before-forward durability: besides the above, every INVITE the carrier received has its
/// decision record in the audit log, whatever moment the process was killed at.
#[test]
fn before_forward_every_invite_the_carrier_saw_has_its_record_after_sigkill() {
    crash_cycles("before-forward");
}

/// Call-IDs of the INVITEs in a sipp `-trace_msg` log.
fn invites_received(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("message received")
        .filter(|m| {
            m.lines()
                .find(|l| !l.trim().is_empty() && !l.contains("bytes"))
                .is_some_and(|l| l.starts_with("INVITE "))
        })
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Call-ID:").or_else(|| l.strip_prefix("i:")))
                .map(|v| v.trim().to_string())
        })
        .collect()
}

fn crash_cycles(durability: &str) {
    let cycles: u64 = std::env::var("CALLGATE_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(dir, Some(2));
    let p = Ports {
        sip: free_port(),
        admin: free_port(),
        carrier: free_port(),
    };
    let admin: SocketAddr = format!("127.0.0.1:{}", p.admin).parse().unwrap();
    let mut carrier = sipp_bg(
        &[
            "-sn",
            "uas",
            "-i",
            "127.0.0.1",
            "-p",
            &p.carrier.to_string(),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            "carrier_messages.log",
        ],
        dir,
    );
    std::fs::write(
        dir.join("numbers.csv"),
        (0..500).fold("SEQUENTIAL\n".to_string(), |s, i| {
            s + &format!("415{:07}\n", 2_000_000 + i)
        }),
    )
    .unwrap();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_consent: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut next_number = 0u64;
    let mut rng = 0x5eed_u64;
    for cycle in 0..cycles {
        let mut cg = spawn_callgate(dir, &p, durability);
        let target = format!("127.0.0.1:{}", p.sip);
        let uac_port = free_port().to_string();
        let mut uac = sipp_bg(
            &[
                "-sf",
                &format!("{SCENARIOS}/uac_allow.xml"),
                "-inf",
                "numbers.csv",
                &target,
                "-i",
                "127.0.0.1",
                "-p",
                &uac_port,
                "-r",
                "200",
                "-m",
                "1000000",
                "-nostdin",
            ],
            dir,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let poster = {
            let (stop, acked, acked_consent) = (stop.clone(), acked.clone(), acked_consent.clone());
            let first = next_number;
            std::thread::spawn(move || {
                let mut n = first;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if n.is_multiple_of(2) {
                        // Consent records are durable like opt-outs.
                        let number = format!("+1305555{:04}", n % 10_000);
                        let body = format!("{{\"number\":\"{number}\",\"type\":\"pewc\",\"captured\":\"2026-01-01\",\"evidence\":\"crash-test\"}}");
                        if let Ok((201, _)) = try_http(admin, "POST", "/v1/consent", &body, None) {
                            acked_consent.lock().unwrap().push(number);
                        }
                        continue;
                    }
                    let number = format!("+1202555{:04}", n % 10_000);
                    let body = format!("{{\"number\":\"{number}\",\"source\":\"crash-test\"}}");
                    // Only a 201 is a promise; refused or cut requests promise nothing.
                    if let Ok((201, _)) = try_http(admin, "POST", "/v1/optouts", &body, None) {
                        acked.lock().unwrap().push(number);
                    }
                }
                n
            })
        };
        // Kill at a pseudo-random moment 150-650 ms in, while calls and opt-outs are flowing.
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(150 + (rng >> 33) % 500));
        kill9(&mut cg);
        stop.store(true, Ordering::Relaxed);
        next_number = poster.join().unwrap();
        kill9(&mut uac);
        eprintln!(
            "cycle {cycle}: killed; {} opt-outs acknowledged so far",
            acked.lock().unwrap().len()
        );
    }
    // A last start: everything acknowledged before any of the kills must be in force.
    let mut cg = spawn_callgate(dir, &p, durability);
    let acked = acked.lock().unwrap().clone();
    assert!(
        !acked.is_empty(),
        "no opt-out was acknowledged: the test did nothing"
    );
    let mut distinct = acked.clone();
    distinct.sort();
    distinct.dedup();
    let mut lost = vec![];
    for number in &distinct {
        let (_, body) = try_http(
            admin,
            "GET",
            &format!("/v1/check?number={}", number.replace('+', "%2B")),
            "",
            None,
        )
        .unwrap();
        if !body.contains("internal_dnc") {
            lost.push(number.clone());
        }
    }
    let mut consents = acked_consent.lock().unwrap().clone();
    consents.sort();
    consents.dedup();
    assert!(!consents.is_empty(), "no consent record was acknowledged");
    let mut lost_consent = vec![];
    for number in &consents {
        let (_, body) = try_http(
            admin,
            "GET",
            &format!("/v1/consent?number={}", number.replace('+', "%2B")),
            "",
            None,
        )
        .unwrap();
        if !body.contains("\"pewc\"") {
            lost_consent.push(number.clone());
        }
    }
    assert!(
        lost_consent.is_empty(),
        "{} of {} acknowledged consent records lost: {:?}",
        lost_consent.len(),
        consents.len(),
        &lost_consent[..lost_consent.len().min(10)]
    );
    eprintln!("{} consent records acknowledged, none lost", consents.len());
    let files = audit_files(&dir.join("audit")).unwrap();
    let chain = verify(&files);
    kill9(&mut cg);
    kill9(&mut carrier);
    if durability == "before-forward" {
        let recorded: std::collections::HashSet<String> = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter_map(|r| r["call_id"].as_str().map(String::from))
            .collect();
        let seen = invites_received(&dir.join("carrier_messages.log"));
        assert!(
            !seen.is_empty(),
            "the carrier received no INVITE: the test did nothing"
        );
        let missing: Vec<&String> = seen.iter().filter(|c| !recorded.contains(*c)).collect();
        eprintln!(
            "before-forward: the carrier received {} INVITEs, {} without a record",
            seen.len(),
            missing.len()
        );
        assert!(
            missing.is_empty(),
            "INVITEs forwarded without a durable record: {:?}",
            &missing[..missing.len().min(10)]
        );
    }
    let chain = chain.unwrap_or_else(|e| panic!("audit chain broken after SIGKILLs: {e}"));
    let torn = std::fs::read_to_string(dir.join("callgate.log"))
        .unwrap_or_default()
        .matches("cut a torn final record")
        .count();
    eprintln!(
        "{cycles} SIGKILL cycles: {} opt-outs acknowledged ({} numbers), {} lost; audit chain verifies: {} records in {} files; {torn} torn final records cut at restart",
        acked.len(),
        distinct.len(),
        lost.len(),
        chain.records,
        chain.files
    );
    assert!(lost.is_empty(), "acknowledged opt-outs lost: {lost:?}");
    assert!(chain.records > 0, "no decision records at all");
}
