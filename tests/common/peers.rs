//! Real peers as separate processes: the `callgate` binary, sipp as the carrier (UAS) and as
//! the dialer (UAC). Every sipp run is bounded in calls and time; a missing sipp FAILS the
//! test (never skips).

use super::{free_port, sipp, write_data};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

pub struct Callgate {
    pub child: Child,
    pub sip: SocketAddr,
    pub admin: SocketAddr,
    pub config: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Callgate {
    pub fn start(upstream_port: u16) -> Callgate {
        Callgate::start_with(upstream_port, "")
    }

    /// `start` with more configuration (TOML sections the default file does not have).
    pub fn start_with(upstream_port: u16, extra: &str) -> Callgate {
        Callgate::start_with_keys(upstream_port, "", "", extra)
    }

    /// `start_with`, with more `[sip]` keys (`workers = 2`) and `[audit]` keys.
    pub fn start_with_keys(
        upstream_port: u16,
        sip_keys: &str,
        audit_keys: &str,
        extra: &str,
    ) -> Callgate {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path(), Some(2));
        let (sip, admin) = (free_port(), free_port());
        let d = dir.path().display();
        let cfg = format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\n{sip_keys}\n[upstream]\naddress = \"127.0.0.1:{upstream_port}\"\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\n{audit_keys}\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n{extra}"
        );
        let path = dir.path().join("callgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
        let child = super::spawn_binary(&path, &dir.path().join("callgate.log"), admin);
        Callgate {
            child,
            sip: format!("127.0.0.1:{sip}").parse().unwrap(),
            admin,
            config: path,
            _dir: dir,
        }
    }

    /// A crash (SIGKILL: nothing is flushed or closed), then a start on the same files.
    pub fn kill_9_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let log = self._dir.path().join("callgate.log");
        self.child = super::spawn_binary(&self.config, &log, self.admin);
    }

    /// The call records (`call` lines) in its log.
    pub fn call_records(&self) -> Vec<serde_json::Value> {
        self.audit()
            .into_iter()
            .filter_map(|l| l.get("call").cloned())
            .collect()
    }

    /// Wait (bounded) until the log holds `n` call records.
    pub fn wait_call_records(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let recs = self.call_records();
            if recs.len() >= n || Instant::now() > deadline {
                return recs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        super::audit_lines(&self._dir.path().join("audit"))
    }
}

impl Drop for Callgate {
    fn drop(&mut self) {
        unsafe_sigterm(self.child.id());
        let _ = self.child.wait();
    }
}

pub fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Five calls through `cg` from sipp dialers: three answered (two to 415 555 0100), two
/// blocked (on the national list); returns once their five call records are written.
pub fn five_calls(cg: &Callgate) {
    let work = tempfile::tempdir().unwrap();
    let allowed = ["4155550100", "+14155550101", "415.555.0100"];
    assert_eq!(dialer("uac_allow.xml", &allowed, cg.sip, work.path()), 0);
    let blocked = ["2125550143", "1-646-555-0111"];
    assert_eq!(
        dialer("uac_expect_reject.xml", &blocked, cg.sip, work.path()),
        0
    );
    assert_eq!(cg.wait_call_records(5).len(), 5);
}

/// sipp's built-in UAS as the carrier, logging every message it receives.
pub struct Carrier {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub _dir: tempfile::TempDir,
}

impl Carrier {
    pub fn start() -> Carrier {
        Self::start_with(&["-sn", "uas"])
    }

    /// sipp as the carrier with these scenario arguments (`-sn uas`, `-sf FILE -d MS`).
    pub fn start_with(scenario: &[&str]) -> Carrier {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("uas_messages.log");
        // sipp itself, bounded by its own -timeout: a `timeout` wrapper killed by Drop would
        // leave its sipp child running.
        let child = Command::new(sipp())
            .args(["-timeout", "120s"])
            .args(scenario.iter().map(|a| a.replace("@SCENARIOS", SCENARIOS)))
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-nostdin",
                "-trace_msg",
                "-message_file",
            ])
            .arg(&log)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Carrier {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    /// INVITEs the carrier received (requests, not responses that mention INVITE).
    pub fn invites(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("INVITE sip:"))
            .count()
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run sipp as the dialer; returns its exit code. `numbers` become the -inf CSV.
pub fn dialer(scenario: &str, numbers: &[&str], target: SocketAddr, work: &Path) -> i32 {
    dialer_cmd(scenario, numbers, target, work, &[])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

/// The dialer's command line, with `extra` arguments (`-d MS`).
pub fn dialer_cmd(
    scenario: &str,
    numbers: &[&str],
    target: SocketAddr,
    work: &Path,
    extra: &[&str],
) -> Command {
    let csv = work.join(format!("{scenario}.csv"));
    std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", numbers.join("\n"))).unwrap();
    let port = free_port();
    let mut cmd = Command::new("timeout");
    cmd.args(["90", sipp(), "-sf"])
        .arg(Path::new(SCENARIOS).join(scenario))
        .arg("-inf")
        .arg(&csv)
        .arg(target.to_string())
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-m",
            &numbers.len().to_string(),
            "-r",
            "20",
            "-timeout",
            "60s",
            "-recv_timeout",
            "5000",
            "-nostdin",
        ])
        .args(extra)
        .current_dir(work)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}
