//! Test harness: callgate started in-process on loopback ports, with plain sockets as the
//! dialer and the carrier. Dates in list manifests are written relative to now.
#![allow(dead_code)]

pub mod calls;
pub mod peers;
pub mod postgres;

use callgate::clock::OffsetClock;
use callgate::config::Config;
use callgate::server::{start, Running};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Harness {
    pub running: Option<Running>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub dialer: UdpSocket,
    pub carrier: UdpSocket,
    pub clock: Arc<OffsetClock>,
    pub cfg: Config,
    /// Kept so messages can still be sent while `running` is being shut down elsewhere.
    sip_addr: SocketAddr,
}

pub fn days_ago(d: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(d)).to_rfc3339()
}

/// Write a data directory: national list downloaded `national_age_days` ago (None = no
/// national list), an internal list, and an empty opt-out journal path.
pub fn write_data(dir: &Path, national_age_days: Option<i64>) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut manifest = String::new();
    if let Some(age) = national_age_days {
        manifest += &format!("[[list]]\nid = \"national\"\nkind = \"national\"\nfile = \"national.txt\"\ndownloaded = \"{}\"\n\n", days_ago(age));
        std::fs::write(
            dir.join("data/national.txt"),
            "2125550143\n3105550188\n646,5550111\n",
        )
        .unwrap();
    }
    manifest += "[[list]]\nid = \"internal\"\nkind = \"internal\"\nfile = \"internal.txt\"\n\n";
    // Line type for the wireless rules (PEWC, wireless no-call states).
    manifest += "[[list]]\nid = \"wireless\"\nkind = \"wireless\"\nfile = \"wireless.txt\"\n";
    std::fs::write(dir.join("data/wireless.txt"), "5125550199\n").unwrap();
    std::fs::write(dir.join("data/internal.txt"), "+1 202 555 0177\n").unwrap();
    std::fs::write(dir.join("data/lists.toml"), manifest).unwrap();
}

pub fn config_for(dir: &Path, carrier: SocketAddr, extra: &str) -> Config {
    let text = config_text(dir, carrier, extra);
    Config::from_str_named("test.toml", &text).unwrap()
}

/// The configuration text `config_for` parses (tests write it to a file to reload it).
pub fn config_text(dir: &Path, carrier: SocketAddr, extra: &str) -> String {
    format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ndrain_timeout_secs = 2\n{extra}\n[upstream]\naddress = \"{carrier}\"\n[lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\nconsent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\nemergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\nflush_interval_ms = 20\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        d = dir.display(),
    )
}

impl Harness {
    pub fn start() -> Harness {
        Self::with(Some(2), "")
    }

    /// `extra` goes right after `[sip] listen`: bare keys set [sip] options, then whole tables.
    pub fn with(national_age_days: Option<i64>, extra: &str) -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        write_data(&dir, national_age_days);
        let mut h = Self::in_dir(dir, extra);
        h._tmp = Some(tmp);
        h
    }

    pub fn in_dir(dir: PathBuf, extra: &str) -> Harness {
        Self::in_dir_with(dir, extra, |_| {})
    }

    /// `in_dir`, with a last change to the parsed configuration (settings of tables the
    /// harness text already has, such as `[audit]`).
    pub fn in_dir_with(dir: PathBuf, extra: &str, edit: impl FnOnce(&mut Config)) -> Harness {
        let dialer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let carrier = UdpSocket::bind("127.0.0.1:0").unwrap();
        dialer
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        carrier
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut cfg = config_for(&dir, carrier.local_addr().unwrap(), extra);
        edit(&mut cfg);
        // 19:00 UTC: inside every US calling window (and every test number's state) today.
        let clock = Arc::new(OffsetClock::today_at_utc_hour(19));
        let running = start(cfg.clone(), clock.clone()).unwrap();
        Harness {
            sip_addr: running.sip_addr,
            running: Some(running),
            dir,
            _tmp: None,
            dialer,
            carrier,
            clock,
            cfg,
        }
    }

    pub fn run(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn proxy_addr(&self) -> SocketAddr {
        self.sip_addr
    }

    /// Hand the running proxy to the caller (to shut it down on another thread).
    pub fn take_running(&mut self) -> Running {
        self.running.take().expect("running")
    }

    pub fn send_dialer(&self, msg: &str) {
        self.dialer
            .send_to(msg.as_bytes(), self.proxy_addr())
            .unwrap();
    }

    pub fn send_carrier(&self, msg: &str) {
        self.carrier
            .send_to(msg.as_bytes(), self.proxy_addr())
            .unwrap();
    }

    pub fn recv_dialer(&self) -> Option<String> {
        recv(&self.dialer)
    }

    pub fn recv_carrier(&self) -> Option<String> {
        recv(&self.carrier)
    }

    /// Receive with a short timeout: for asserting that nothing arrives.
    pub fn nothing_at(&self, sock: &UdpSocket) -> bool {
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let r = recv(sock).is_none();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        r
    }

    /// Next message at the dialer that is not a 100 Trying.
    pub fn recv_dialer_final(&self) -> Option<String> {
        recv_final(&self.dialer)
    }

    pub fn invite(&self, ruri_user: &str, call_id: &str) -> String {
        invite_msg(
            &format!("sip:{ruri_user}@{}", self.proxy_addr()),
            call_id,
            self.dialer.local_addr().unwrap(),
            "z9hG4bK-1",
        )
    }

    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http(self.run().admin_addr, method, path, body, None)
    }

    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        self.run().app.audit.flush();
        audit_lines(&self.dir.join("audit"))
    }

    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

pub fn audit_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    // Plain day files only (a sealed day may be compressed; tests that need those read them).
    let mut files: Vec<_> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for f in files {
        for l in std::fs::read_to_string(f).unwrap().lines() {
            out.push(serde_json::from_str(l).unwrap());
        }
    }
    out
}

pub fn recv(sock: &UdpSocket) -> Option<String> {
    let mut buf = [0u8; 65536];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Next message that is not a 100 Trying.
pub fn recv_final(sock: &UdpSocket) -> Option<String> {
    loop {
        let m = recv(sock)?;
        if !m.starts_with("SIP/2.0 100") {
            return Some(m);
        }
    }
}

/// The CANCEL for an INVITE as a UAC builds it (RFC 3261 section 9.1): same Request-URI, Via,
/// From, To, Call-ID and CSeq number, method CANCEL, no body.
pub fn cancel_for(invite: &str) -> String {
    let head = invite.split("\r\n\r\n").next().unwrap();
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        let name = header_name(line);
        match name.as_str() {
            _ if i == 0 => out += &line.replacen("INVITE ", "CANCEL ", 1),
            "cseq" => out += &line.replace("INVITE", "CANCEL"),
            "content-type" | "content-length" | "contact" => continue,
            _ => out += line,
        }
        out += "\r\n";
    }
    out + "Content-Length: 0\r\n\r\n"
}

pub fn invite_msg(ruri: &str, call_id: &str, from: SocketAddr, branch: &str) -> String {
    let body = "v=0\r\no=dialer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch={branch}\r\nFrom: \"Dialer\" <sip:+12025550100@{from}>;tag=d1\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:dialer@{from}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// All values of a header (by long name, case-insensitive), in order.
pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .take_while(|l| !l.is_empty())
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    headers(msg, name).into_iter().next()
}

/// The lower-case name of a header line (the whole line when it has no colon).
fn header_name(line: &str) -> String {
    line.split(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A UAS reply to `req`: Vias, From, Call-ID, CSeq copied, To with a tag, optional extras.
pub fn reply(req: &str, status: u16, phrase: &str, extra: &str) -> String {
    let mut out = format!("SIP/2.0 {status} {phrase}\r\n");
    for l in req.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
        let name = header_name(l);
        match name.as_str() {
            "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "record-route" => {
                out += l;
                out += "\r\n";
            }
            "to" | "t" => {
                out += l;
                if !l.contains("tag=") {
                    out += ";tag=uas1";
                }
                out += "\r\n";
            }
            _ => {}
        }
    }
    out += extra;
    out += "Content-Length: 0\r\n\r\n";
    out
}

pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    try_http(addr, method, path, body, token).unwrap()
}

/// `http` that reports a refused or cut connection instead of panicking (crash tests).
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let headers = format!("{auth}Content-Type: application/json\r\n");
    http_with_headers(addr, method, path, &headers, body)
}

/// A request with these header lines (each ending in CRLF) besides Host and Content-Length.
pub fn http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A child process (sipp, stunnel, callgate) killed and reaped when dropped.
pub struct Kill(pub std::process::Child);

/// A child started as the leader of its own process group (`process_group(0)`), killed with
/// the whole group when dropped: a server that forks workers (Kamailio) leaves none behind.
pub struct KillGroup(pub std::process::Child);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is
            // involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sipp binary; FAILS (never skips) when it is not installed.
pub fn sipp() -> &'static str {
    let ok = std::process::Command::new("sipp")
        .arg("-v")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "sipp is not installed: these end-to-end tests need it. Run scripts/test.sh (it runs `apt-get install -y sip-tester`).");
    "sipp"
}

/// The stunnel binary (TLS for sipp, which Debian builds without TLS); FAILS (never skips)
/// when it is not installed.
pub fn stunnel() -> &'static str {
    let ok = std::process::Command::new("stunnel4")
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "stunnel is not installed: the SIP-over-TLS end-to-end test needs it. Run scripts/test.sh (it runs `apt-get install -y stunnel4`).");
    "stunnel4"
}

/// A port free for both UDP and TCP on 127.0.0.1.
///
/// Handed out in turn from 20000-31999, below the kernel's ephemeral range (32768 and up): a
/// port chosen here and bound a moment later by a child process cannot meanwhile become the
/// local port of some outgoing connection or `:0` socket, and two calls in one test binary
/// never hand out the same port. (The kernel's `:0` was used before, and a parallel test's
/// connection once took a port between its choice and callgate's bind.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test binary starts at its own place, so a port a previous binary's straggler still
    // holds is unlikely to be the first one tried.
    let start = std::process::id() % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = (FIRST + (start + n) % SPAN) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", p));
        if udp.is_ok() && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// The callgate binary on `config`, its stderr appended to `log`, with its clock at today
/// 19:00 UTC (inside every US calling window whenever the test runs); returns once its admin
/// API at `admin` answers.
/// What `callgate ARGS` printed, and whether it succeeded.
pub struct CliRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// How much a bench with `harness = false` does: `full` under `cargo bench` (which passes
/// `--bench`), `smoke` under `cargo test` (to show it still works); a number argument wins.
pub fn bench_size(full: usize, smoke: usize) -> usize {
    let bench = std::env::args().any(|a| a == "--bench");
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if bench { full } else { smoke })
}

/// `callgate ARGS`, run to its end.
pub fn run_cli(args: &[&str]) -> CliRun {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .args(args)
        .output()
        .unwrap();
    CliRun {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn spawn_binary(config: &Path, log: &Path, admin: SocketAddr) -> std::process::Child {
    spawn_binary_env(config, log, admin, &[])
}

/// `spawn_binary` with more environment variables.
pub fn spawn_binary_env(
    config: &Path,
    log: &Path,
    admin: SocketAddr,
    env: &[(&str, &str)],
) -> std::process::Child {
    let log_path = log;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_callgate"))
        .env(
            "CALLGATE_FAKE_NOW",
            callgate::clock::today_at_utc_hour_rfc3339(19),
        )
        .envs(env.iter().copied())
        .args(["run", "--config"])
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = child;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while try_http(admin, "GET", "/healthz", "", None).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            panic!("callgate exited at start ({status}): {}", tail.join(" | "));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "callgate did not start (see {})",
            config.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Wait (bounded, 30 s) until `admin`'s `/readyz` answers `want`; how long that took.
pub fn wait_ready(admin: SocketAddr, want: u16) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let (status, body) = http(admin, "GET", "/readyz", "", None);
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "/readyz still {status}: {body}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
