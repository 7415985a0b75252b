//! Two callgate binaries on a PostgreSQL primary with a synchronous streaming standby (real
//! servers started by the test, on loopback). Opt-outs are posted in a loop while the primary
//! is killed (SIGKILL) and the standby promoted: every acknowledged opt-out is in force on
//! both instances afterwards; during the outage a marketing call is not forwarded; calls and
//! writes flow again once the standby is promoted.

mod common;
use common::peers::{dialer, Callgate, Carrier};
use common::postgres::Postgres;
use common::{http, wait_ready};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn opted_out(admin: SocketAddr, number: &str) -> bool {
    let (_, body) = http(
        admin,
        "GET",
        &format!("/v1/check?number={number}"),
        "",
        None,
    );
    body.contains("\"internal_dnc\"")
}

/// A primary whose commits wait for the standby `standby1`, and that standby.
fn replicated_pair() -> (Postgres, Postgres) {
    let primary = Postgres::start();
    primary.configure("synchronous_standby_names = 'standby1'");
    primary.reload();
    let standby = Postgres::standby_of(&primary, "standby1");
    let start = Instant::now();
    let state = "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'";
    while primary.psql(state) != "sync" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the standby never became synchronous"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (primary, standby)
}

/// Opt-outs posted one after another to `a` and `b` in turn until `stop`: the numbers
/// acknowledged (201), and how many were.
struct Poster {
    acked: Arc<Mutex<Vec<String>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Poster {
    fn start(a: SocketAddr, b: SocketAddr) -> Poster {
        let acked: Arc<Mutex<Vec<String>>> = Arc::default();
        let count: Arc<AtomicUsize> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let (acked2, count2, stop2) = (acked.clone(), count.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut refused = 0;
            for i in 0.. {
                if stop2.load(Ordering::Acquire) {
                    return refused;
                }
                let number = format!("415551{:04}", i % 10_000);
                let admin = if i % 2 == 0 { a } else { b };
                let body = format!(r#"{{"number":"{number}","source":"failover test"}}"#);
                match http(admin, "POST", "/v1/optouts", &body, None).0 {
                    201 => {
                        acked2.lock().unwrap().push(number);
                        count2.fetch_add(1, Ordering::AcqRel);
                    }
                    503 => refused += 1,
                    other => panic!("POST /v1/optouts answered {other}"),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            refused
        });
        Poster {
            acked,
            count,
            stop,
            thread: Some(thread),
        }
    }

    fn wait_for(&self, n: usize) {
        let start = Instant::now();
        while self.count.load(Ordering::Acquire) < n {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "only {} acknowledged",
                self.count.load(Ordering::Acquire)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::Release);
        let refused = self.thread.take().unwrap().join().unwrap();
        (self.acked.lock().unwrap().clone(), refused)
    }
}

#[test]
fn every_acknowledged_opt_out_survives_a_failover_to_the_synchronous_standby() {
    let (mut primary, standby) = replicated_pair();
    let url = format!(
        "postgres://callgate@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let shared =
        format!("[shared]\nurl = \"{url}\"\nmax_lag_ms = 1000\npoll_ms = 200\ntimeout_ms = 500\n");
    let carrier = Carrier::start();
    let a = Callgate::start_with(carrier.port, &shared);
    let b = Callgate::start_with(carrier.port, &shared);
    wait_ready(a.admin, 200);
    wait_ready(b.admin, 200);
    let poster = Poster::start(a.admin, b.admin);
    poster.wait_for(20);

    primary.kill();
    let stale_after = wait_ready(a.admin, 503);
    // No database to confirm the opt-outs: a marketing call to a number on no list is not
    // forwarded.
    let invites_before = carrier.invites();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_expect_reject.xml", &["4155550100"], a.sip, work.path()),
        0
    );
    assert_eq!(
        carrier.invites(),
        invites_before,
        "a call was forwarded during the outage"
    );

    let acked_before_promotion = poster.count.load(Ordering::Acquire);
    standby.promote();
    // It inherited the primary's settings: with no standby left to confirm commits, they
    // would wait for ever (callgate answers 503 meanwhile). Failover tooling drops the
    // requirement, as here.
    standby.psql("ALTER SYSTEM SET synchronous_standby_names = ''");
    standby.reload();
    let promoted = Instant::now();
    wait_ready(a.admin, 200);
    wait_ready(b.admin, 200);
    let current_after = promoted.elapsed();
    poster.wait_for(acked_before_promotion + 10);
    let writing_after = promoted.elapsed();
    let (acked, refused) = poster.stop();

    for n in &acked {
        assert!(
            opted_out(a.admin, n),
            "acknowledged opt-out {n} not in force on A"
        );
        assert!(
            opted_out(b.admin, n),
            "acknowledged opt-out {n} not in force on B"
        );
    }
    assert_eq!(
        dialer("uac_allow.xml", &["4155550100"], a.sip, work.path()),
        0
    );
    eprintln!(
        "{} opt-outs acknowledged, {refused} refused during the outage; stale {stale_after:?} \
         after the primary died; both current {current_after:?} and writes acknowledged again \
         {writing_after:?} after the promotion",
        acked.len()
    );
}
