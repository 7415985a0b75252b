//! SIP over TLS end to end with real peers. Debian's sipp has no TLS, so stunnel wraps it:
//!
//!   sipp UAC --TCP--> stunnel (client, presents the dialer's certificate)
//!       --TLS--> callgate --TLS--> stunnel (server, the carrier's certificate) --TCP--> sipp UAS
//!
//! callgate knows the dialer only by its client certificate (no dialer address is allowed),
//! verifies the carrier's certificate, and relays every call's responses and in-dialog
//! requests on the right connections. FAILS (never skips) when sipp or stunnel is missing.

mod common;
#[path = "support/pki.rs"]
mod pki;

use common::{free_port, sipp, stunnel, write_data, Kill};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

fn wait_for_port(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The carrier (sipp UAS behind stunnel), the dialer's stunnel, and callgate between them.
/// Fields drop in declaration order: callgate first, then stunnel, then the UAS.
struct Bed {
    callgate: Kill,
    _stunnel: Kill,
    _uas: Kill,
    pki: pki::Pki,
    sip_leaf: pki::Leaf,
    /// Where sipp as the dialer connects (stunnel's plain side).
    dialer_plain: u16,
    cg_tls: SocketAddr,
    uas_log: PathBuf,
    tmp: tempfile::TempDir,
}

impl Bed {
    fn start() -> Bed {
        let (sipp, stunnel) = (sipp(), stunnel());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        write_data(dir, Some(2));
        let pki = pki::Pki::new("Test CA");
        let ca = pki.write_ca(dir, "ca.crt");
        let sip_leaf = pki.leaf(dir, "callgate", &["callgate.test", "127.0.0.1"]);
        let carrier_leaf = pki.leaf(dir, "carrier", &["carrier.test"]);
        let dialer_leaf = pki.leaf(dir, "dialer", &["dialer-7.callcentre.test"]);
        let [uas, carrier_tls, dialer_plain, cg_udp, cg_tls, admin] = [(); 6].map(|_| free_port());

        // The carrier: sipp's built-in UAS over TCP, behind stunnel's TLS.
        let uas_log = dir.join("uas_messages.log");
        let uas_proc = Kill(
            Command::new(sipp)
                .args([
                    "-timeout",
                    "120s",
                    "-sn",
                    "uas",
                    "-t",
                    "t1",
                    "-i",
                    "127.0.0.1",
                ])
                .args([
                    "-p",
                    &uas.to_string(),
                    "-nostdin",
                    "-trace_msg",
                    "-message_file",
                ])
                .arg(&uas_log)
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let conf = dir.join("stunnel.conf");
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\ndebug = 5\noutput = {d}/stunnel.log\n\n\
                 [carrier]\naccept = 127.0.0.1:{carrier_tls}\nconnect = 127.0.0.1:{uas}\ncert = {cc}\nkey = {ck}\n\n\
                 [dialer]\nclient = yes\naccept = 127.0.0.1:{dialer_plain}\nconnect = 127.0.0.1:{cg_tls}\n\
                 CAfile = {ca}\nverifyChain = yes\ncheckHost = callgate.test\ncert = {dc}\nkey = {dk}\n",
                d = dir.display(),
                cc = carrier_leaf.cert.display(),
                ck = carrier_leaf.key.display(),
                ca = ca.display(),
                dc = dialer_leaf.cert.display(),
                dk = dialer_leaf.key.display(),
            ),
        )
        .unwrap();
        let stunnel_proc = Kill(
            Command::new(stunnel)
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );

        // callgate: no dialer address allowed; the certificate name is the only way in.
        let d = dir.display();
        let cfg = format!(
            "[sip]\nlisten = \"127.0.0.1:{cg_udp}\"\n\
             [tls]\nlisten = \"127.0.0.1:{cg_tls}\"\ncert = \"{sc}\"\nkey = \"{sk}\"\nclient_ca = \"{ca}\"\n\
             dialer_names = [\"dialer-7.callcentre.test\"]\n\
             [dialers]\nallow = [\"10.255.0.0/16\"]\n\
             [upstream]\naddress = \"127.0.0.1:{carrier_tls}\"\ntransport = \"tls\"\ntls_ca = \"{ca}\"\n\
             tls_server_name = \"carrier.test\"\n\
             [lists]\ndata_dir = \"{d}/data\"\noptout_journal = \"{d}/optouts.jsonl\"\n\
             consent_journal = \"{d}/consent.jsonl\"\ncaps_journal = \"{d}/caps.bin\"\n\
             emergency_file = \"{d}/emergency.json\"\n[audit]\ndir = \"{d}/audit\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n",
            sc = sip_leaf.cert.display(),
            sk = sip_leaf.key.display(),
            ca = ca.display(),
        );
        let path = dir.join("callgate.toml");
        std::fs::write(&path, cfg).unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
        let callgate = Kill(common::spawn_binary(
            &path,
            &dir.join("callgate.log"),
            admin,
        ));
        wait_for_port(
            format!("127.0.0.1:{carrier_tls}").parse().unwrap(),
            "stunnel",
        );
        wait_for_port(
            format!("127.0.0.1:{dialer_plain}").parse().unwrap(),
            "stunnel",
        );
        Bed {
            callgate,
            _stunnel: stunnel_proc,
            _uas: uas_proc,
            pki,
            sip_leaf,
            dialer_plain,
            cg_tls: format!("127.0.0.1:{cg_tls}").parse().unwrap(),
            uas_log,
            tmp,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// callgate's and stunnel's logs, for a failure message.
    fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir().join(f)).unwrap_or_default();
        format!(
            "callgate log:\n{}\nstunnel log:\n{}",
            read("callgate.log"),
            read("stunnel.log")
        )
    }

    /// Run sipp as the dialer over TCP into the dialer's stunnel; its exit code.
    fn dial(&self, numbers: &[&str]) -> Option<i32> {
        let csv = self.dir().join("numbers.csv");
        std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", numbers.join("\n"))).unwrap();
        let status = Command::new("timeout")
            .args(["90", sipp(), "-sf"])
            .arg(Path::new(SCENARIOS).join("uac_allow.xml"))
            .arg("-inf")
            .arg(&csv)
            .arg(format!("127.0.0.1:{}", self.dialer_plain))
            .args([
                "-t",
                "t1",
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
            ])
            .args(["-m", &numbers.len().to_string(), "-r", "10"])
            .args(["-timeout", "60s", "-recv_timeout", "5000", "-nostdin"])
            .current_dir(self.dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        status.code()
    }
}

#[test]
fn sipp_calls_cross_tls_on_both_sides_with_a_certificate_for_a_dialer() {
    let bed = Bed::start();
    let numbers = [
        "4155550100",
        "+14155550101",
        "9175551234",
        "4155550102",
        "4155550103",
    ];
    assert_eq!(
        bed.dial(&numbers),
        Some(0),
        "every call connects and hangs up\n{}",
        bed.logs()
    );
    let carrier_saw = std::fs::read_to_string(&bed.uas_log).unwrap_or_default();
    let count = |m: &str| carrier_saw.lines().filter(|l| l.starts_with(m)).count();
    assert_eq!(count("INVITE sip:"), numbers.len(), "{}", bed.logs());
    assert_eq!(count("BYE sip:"), numbers.len());
    assert!(
        carrier_saw.contains("Via: SIP/2.0/TLS 127.0.0.1:"),
        "callgate's hop to the carrier is TLS"
    );
}

#[test]
fn sighup_brings_in_a_renewed_certificate() {
    let bed = Bed::start();
    let renewed = bed.pki.leaf(
        bed.dir(),
        "renewed",
        &["renewed.callgate.test", "callgate.test"],
    );
    std::fs::copy(&renewed.cert, &bed.sip_leaf.cert).unwrap();
    std::fs::copy(&renewed.key, &bed.sip_leaf.key).unwrap();
    Command::new("kill")
        .args(["-HUP", &bed.callgate.0.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = pki::connect(bed.cg_tls, "callgate.test", bed.pki.client_config(None)).unwrap();
        if pki::server_cert_cn(&s) == "renewed.callgate.test" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not bring in the new certificate\n{}",
            bed.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And calls still go through.
    assert_eq!(bed.dial(&["4155550100"]), Some(0), "{}", bed.logs());
}
