//! The systemd service protocol, spoken by the real binary to a socket standing in for the
//! service manager (`NOTIFY_SOCKET`): READY only once the SIP sockets are bound, RELOADING and
//! READY around a SIGHUP, STOPPING at SIGTERM, and WATCHDOG pings while the SIP loop turns.

mod common;

use common::{free_port, write_data, Kill};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Service {
    child: Kill,
    notify: UnixDatagram,
    sip_port: u16,
    _dir: tempfile::TempDir,
}

/// callgate run as systemd would run a `Type=notify` unit, with `WATCHDOG_USEC` when given.
fn start(watchdog_usec: Option<u64>) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(d, Some(1));
    let (sip_port, admin_port, carrier_port) = (free_port(), free_port(), free_port());
    let mut cfg = common::config_text(d, format!("127.0.0.1:{carrier_port}").parse().unwrap(), "");
    cfg = cfg.replace(
        "127.0.0.1:0\"\ndrain",
        &format!("127.0.0.1:{sip_port}\"\ndrain"),
    );
    cfg = cfg.replace(
        "listen = \"127.0.0.1:0\"\n",
        &format!("listen = \"127.0.0.1:{admin_port}\"\n"),
    );
    std::fs::write(d.join("callgate.toml"), cfg).unwrap();
    let socket_path = d.join("notify.sock");
    let notify = UnixDatagram::bind(&socket_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callgate"));
    cmd.env(
        "CALLGATE_FAKE_NOW",
        callgate::clock::today_at_utc_hour_rfc3339(19),
    )
    .env("NOTIFY_SOCKET", &socket_path)
    .args(["run", "--config"])
    .arg(d.join("callgate.toml"))
    .stdout(Stdio::null())
    .stderr(log(d));
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    let child = Kill(cmd.spawn().unwrap());
    Service {
        child,
        notify,
        sip_port,
        _dir: dir,
    }
}

fn log(dir: &Path) -> std::fs::File {
    std::fs::File::create(dir.join("callgate.log")).unwrap()
}

impl Service {
    /// The next notification, as its `KEY=value` lines.
    fn next(&self) -> Vec<String> {
        let mut buf = [0u8; 4096];
        let n = self
            .notify
            .recv(&mut buf)
            .expect("no notification within 20 s");
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Notifications until one has `line`; the ones before it are returned too.
    fn until(&self, line: &str) -> Vec<Vec<String>> {
        let mut seen = vec![];
        loop {
            let n = self.next();
            let done = n.iter().any(|l| l == line);
            seen.push(n);
            if done {
                return seen;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.0.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }
}

#[test]
fn ready_is_sent_once_the_sip_socket_is_bound_and_names_the_main_pid() {
    let s = start(None);
    let first = s.next();
    assert!(first.contains(&"READY=1".to_string()), "{first:?}");
    // Bound at READY: a second bind of the SIP port fails.
    assert!(UdpSocket::bind(("127.0.0.1", s.sip_port)).is_err());
    let pid = format!("MAINPID={}", s.child.0.id());
    assert!(first.contains(&pid), "{first:?}");
}

#[test]
fn a_sighup_reload_is_announced_as_reloading_then_ready() {
    let s = start(None);
    s.until("READY=1");
    s.signal("-HUP");
    let reload = s.next();
    assert!(reload.contains(&"RELOADING=1".to_string()), "{reload:?}");
    let after = s.next();
    assert!(after.contains(&"READY=1".to_string()), "{after:?}");
}

#[test]
fn sigterm_is_announced_as_stopping() {
    let mut s = start(None);
    s.until("READY=1");
    s.signal("-TERM");
    let stopping = s.next();
    assert!(stopping.contains(&"STOPPING=1".to_string()), "{stopping:?}");
    let status = s.child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_watchdog_is_pinged_at_half_its_interval_while_the_sip_loop_turns() {
    // 400 ms: pings every 200 ms.
    let s = start(Some(400_000));
    s.until("READY=1");
    let t = Instant::now();
    s.until("WATCHDOG=1");
    s.until("WATCHDOG=1");
    s.until("WATCHDOG=1");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn without_a_watchdog_no_pings_are_sent() {
    let s = start(None);
    s.until("READY=1");
    s.notify
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(
        s.notify.recv(&mut buf).is_err(),
        "a notification arrived unasked"
    );
}
