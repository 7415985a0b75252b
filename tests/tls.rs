//! SIP over TLS on both sides, client certificates as the "who may call" check, certificate
//! reload, and the admin API over mutual TLS. Certificates come from a CA made per test.

mod common;
#[path = "support/pki.rs"]
mod pki;

use callgate::sip::peer::Transport;
use common::{header, headers, invite_msg, reply, Harness};
use pki::{connect, read_final, read_sip, send, server_cert_cn, Leaf, Pki, TlsClient};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

const SIP_NAME: &str = "callgate.test";

/// A harness whose SIP side also listens on TLS with a certificate for `SIP_NAME`; `tls_extra`
/// adds keys to `[tls]`.
fn tls_harness(
    dir: &Path,
    pki: &Pki,
    tls_extra: &str,
    edit: impl FnOnce(&mut callgate::config::Config),
) -> Harness {
    common::write_data(dir, Some(2));
    let leaf = pki.leaf(dir, "sip", &[SIP_NAME, "127.0.0.1"]);
    let ca = pki.write_ca(dir, "ca.crt");
    let extra = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\nclient_ca = \"{}\"\n{tls_extra}\n",
        leaf.cert.display(),
        leaf.key.display(),
        ca.display()
    );
    Harness::in_dir_with(dir.to_path_buf(), &extra, edit)
}

/// A harness whose upstream is a TLS carrier listening on the returned socket, whose
/// certificate must chain to `pki` and name `carrier.test`; `more` changes the configuration
/// further.
fn with_tls_carrier(
    dir: &Path,
    pki: &Pki,
    more: impl FnOnce(&mut callgate::config::Config),
) -> (Harness, TcpListener) {
    let carrier = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = carrier.local_addr().unwrap();
    let ca = pki.write_ca(dir, "carrier-ca.crt");
    let h = tls_harness(dir, pki, "", |c| {
        c.upstream.address = addr.to_string();
        c.upstream.transport = Transport::Tls;
        c.upstream.tls_ca = Some(ca);
        c.upstream.tls_server_name = Some("carrier.test".into());
        more(c);
    });
    (h, carrier)
}

fn tls_addr(h: &Harness) -> SocketAddr {
    h.run().tls_addr.expect("tls listener")
}

/// An INVITE as a TLS dialer sends it (its Via names TLS and the connection's address).
fn tls_invite(h: &Harness, from: SocketAddr, user: &str, call_id: &str) -> String {
    invite_msg(
        &format!("sip:{user}@{}", tls_addr(h)),
        call_id,
        from,
        &format!("z9hG4bK-{call_id}"),
    )
    .replace("SIP/2.0/UDP", "SIP/2.0/TLS")
    .replace(
        &format!("<sip:dialer@{from}>"),
        &format!("<sip:dialer@{from};transport=tls>"),
    )
}

/// Send an INVITE for an allowed number over the dialer's TLS connection.
fn dial(h: &Harness, dialer: &mut TlsClient, call_id: &str) {
    let from = dialer.sock.local_addr().unwrap();
    send(dialer, &tls_invite(h, from, "4155550100", call_id));
}

/// The UDP carrier receives the forwarded INVITE and answers 200, which reaches the dialer.
fn answer_over_udp(h: &Harness, dialer: &mut TlsClient) -> String {
    let inv = h.recv_carrier().expect("forwarded to the carrier");
    h.send_carrier(&reply(&inv, 200, "OK", ""));
    let ok = read_final(dialer).unwrap();
    assert!(
        ok.starts_with("SIP/2.0 200"),
        "the answer comes back on the TLS connection: {ok}"
    );
    inv
}

/// Write a renewed certificate for `names` over the SIP listener's files in service.
fn renew(dir: &Path, pki: &Pki, names: &[&str]) {
    let renewed = pki.leaf(dir, "renewed", names);
    std::fs::copy(&renewed.cert, dir.join("sip.crt")).unwrap();
    std::fs::copy(&renewed.key, dir.join("sip.key")).unwrap();
}

/// Wait (up to 3 s) for a counter to reach `want`: a peer may see a connection end a moment
/// before callgate has counted why.
fn wait_metric(h: &Harness, line_start: &str, want: f64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while metric(h, line_start) < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(metric(h, line_start), want, "{line_start}");
}

fn metric(h: &Harness, line_start: &str) -> f64 {
    let (_, body) = h.http("GET", "/metrics", "");
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn a_call_crosses_tls_on_both_sides() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let carrier_leaf = pki.leaf(tmp.path(), "carrier", &["carrier.test"]);
    let (h, carrier) = with_tls_carrier(tmp.path(), &pki, |_| {});
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    dial(&h, &mut dialer, "tls-both-1");

    let mut up = pki::accept(&carrier, pki.server_config(&carrier_leaf));
    let inv = read_sip(&mut up).unwrap();
    assert!(inv.starts_with("INVITE "), "{inv}");
    let port = tls_addr(&h).port();
    let vias = headers(&inv, "Via");
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{port};")),
        "our Via names TLS and the TLS port: {vias:?}"
    );
    assert!(
        vias[1].contains(&format!(
            "rport={}",
            dialer.sock.local_addr().unwrap().port()
        )),
        "{vias:?}"
    );
    assert_eq!(
        headers(&inv, "Record-Route"),
        vec![format!("<sip:127.0.0.1:{port};transport=tls;lr>")],
        "one Record-Route: both sides are TLS"
    );
    send(&mut up, &reply(&inv, 180, "Ringing", ""));
    send(&mut up, &reply(&inv, 200, "OK", ""));

    assert!(read_sip(&mut dialer).unwrap().starts_with("SIP/2.0 100"));
    assert!(read_sip(&mut dialer).unwrap().starts_with("SIP/2.0 180"));
    let ok = read_sip(&mut dialer).unwrap();
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(header(&ok, "Call-ID"), Some("tls-both-1"));
}

#[test]
fn callgate_presents_its_client_certificate_to_a_carrier_that_wants_one() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let carrier_leaf = pki.leaf(tmp.path(), "carrier", &["carrier.test"]);
    let ours = pki.leaf(tmp.path(), "trunk-client", &["trunk-17.callcentre.test"]);
    let (h, carrier) = with_tls_carrier(tmp.path(), &pki, |c| {
        c.upstream.tls_cert = Some(ours.cert.clone());
        c.upstream.tls_key = Some(ours.key.clone());
    });
    h.send_dialer(&h.invite("4155550100", "upstream-mtls-1"));
    let mut up = pki::accept(&carrier, pki.server_config_requiring_clients(&carrier_leaf));
    let inv = read_sip(&mut up).unwrap();
    assert!(inv.starts_with("INVITE "), "{inv}");
    assert_eq!(
        pki::client_cert_cn(&up).as_deref(),
        Some("trunk-17.callcentre.test")
    );
}

#[test]
fn a_carrier_certificate_with_the_wrong_name_gets_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let impostor = pki.leaf(tmp.path(), "impostor", &["not-the-carrier.test"]);
    let (h, carrier) = with_tls_carrier(tmp.path(), &pki, |_| {});
    h.send_dialer(&h.invite("4155550100", "wrong-carrier-1"));
    let mut up = pki::accept(&carrier, pki.server_config(&impostor));
    let r = read_sip(&mut up);
    assert!(
        r.is_err(),
        "the INVITE must not be sent to an unverified carrier: {r:?}"
    );
    wait_metric(&h, "callgate_upstream_send_errors_total", 1.0);
}

#[test]
fn a_handshake_that_never_comes_is_cut_at_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "handshake_timeout_secs = 1\n", |_| {});
    let mut idle = std::net::TcpStream::connect(tls_addr(&h)).unwrap();
    idle.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut idle, &mut buf);
    assert!(matches!(n, Ok(0) | Err(_)), "closed by callgate: {n:?}");
    wait_metric(
        &h,
        "callgate_dropped_messages_total{reason=\"tls_handshake_timeout\"}",
        1.0,
    );
}

#[test]
fn the_carrier_s_bye_reaches_the_tls_dialer_on_its_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    dial(&h, &mut dialer, "tls-bye-1");
    let inv = answer_over_udp(&h, &mut dialer);

    // The carrier hangs up: Route from the Record-Route it saw, Request-URI the dialer's
    // Contact (which names the dialer's end of its TLS connection).
    let from = dialer.sock.local_addr().unwrap();
    let carrier = h.carrier.local_addr().unwrap();
    let routes = headers(&inv, "Record-Route").join(", ");
    let bye = format!(
        "BYE sip:dialer@{from};transport=tls SIP/2.0\r\nVia: SIP/2.0/UDP {carrier};branch=z9hG4bK-bye1\r\nRoute: {routes}\r\nFrom: <sip:4155550100@carrier>;tag=uas1\r\nTo: \"Dialer\" <sip:+12025550100@{from}>;tag=d1\r\nCall-ID: tls-bye-1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    h.send_carrier(&bye);
    let got = read_sip(&mut dialer).unwrap();
    assert!(got.starts_with("BYE sip:dialer@"), "{got}");
    let port = tls_addr(&h).port();
    assert!(
        headers(&got, "Via")[0].starts_with(&format!("SIP/2.0/TLS 127.0.0.1:{port};")),
        "{got}"
    );
    send(&mut dialer, &reply(&got, 200, "OK", ""));
    let ok = h.recv_carrier().expect("the 200 for the BYE");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
}

#[test]
fn transport_change_records_the_route_twice() {
    // Dialer on TLS, carrier on UDP: each side must reach callgate on its own transport.
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    dial(&h, &mut dialer, "tls-udp-1");
    let inv = answer_over_udp(&h, &mut dialer);
    let (udp, tls) = (h.proxy_addr().port(), tls_addr(&h).port());
    assert_eq!(
        headers(&inv, "Record-Route"),
        vec![
            format!("<sip:127.0.0.1:{udp};lr>"),
            format!("<sip:127.0.0.1:{tls};transport=tls;lr>")
        ]
    );
}

fn dialer_by_cert(dir: &Path, pki: &Pki) -> Harness {
    // No source address is a dialer: only the certificate can make one.
    tls_harness(dir, pki, "dialer_names = [\"dialer-a.test\"]\n", |c| {
        c.dialers.allow = vec!["10.255.0.0/16".parse().unwrap()];
    })
}

#[test]
fn a_client_certificate_named_in_dialer_names_may_call() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let a = pki.leaf(tmp.path(), "dialer-a", &["dialer-a.test"]);
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(Some(&a))).unwrap();
    dial(&h, &mut dialer, "cert-ok-1");
    answer_over_udp(&h, &mut dialer);
}

#[test]
fn the_decision_record_names_the_dialer_s_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let a = pki.leaf(tmp.path(), "dialer-a", &["dialer-a.test"]);
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(Some(&a))).unwrap();
    dial(&h, &mut dialer, "cert-audit-1");
    assert!(h.recv_carrier().is_some());
    let lines = h.audit_lines();
    let rec = lines
        .iter()
        .find(|r| r["call_id"] == "cert-audit-1")
        .expect("a decision record");
    assert_eq!(rec["transport"], "tls");
    assert_eq!(rec["source_cert"], "dialer-a.test");
}

#[test]
fn the_csv_export_has_the_dialer_s_certificate() {
    use callgate::audit::verify::{export, Filter};
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let a = pki.leaf(tmp.path(), "dialer-a", &["dialer-a.test"]);
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(Some(&a))).unwrap();
    dial(&h, &mut dialer, "cert-csv-1");
    assert!(h.recv_carrier().is_some());
    h.run().app.audit.flush();
    let files = callgate::audit::chain::audit_files(&tmp.path().join("audit")).unwrap();
    let mut out = Vec::new();
    export(&files, &Filter::default(), true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = head
        .iter()
        .position(|c| *c == "source_cert")
        .expect("a source_cert column");
    let row = lines
        .find(|l| l.contains("cert-csv-1"))
        .expect("the call's row");
    assert_eq!(row.split(',').nth(col), Some("dialer-a.test"));
}

#[test]
fn a_certificate_with_another_name_is_refused_403() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let b = pki.leaf(tmp.path(), "dialer-b", &["dialer-b.test"]);
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(Some(&b))).unwrap();
    dial(&h, &mut dialer, "cert-other-1");
    assert!(read_final(&mut dialer).unwrap().starts_with("SIP/2.0 403"));
    assert!(h.nothing_at(&h.carrier), "nothing reaches the carrier");
}

#[test]
fn no_client_certificate_is_refused_403() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    dial(&h, &mut dialer, "cert-none-1");
    assert!(read_final(&mut dialer).unwrap().starts_with("SIP/2.0 403"));
    assert!(h.nothing_at(&h.carrier));
}

#[test]
fn a_certificate_from_another_ca_fails_the_handshake() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = dialer_by_cert(tmp.path(), &pki);
    let rogue = Pki::new("Rogue CA");
    let forged = rogue.leaf(tmp.path(), "forged", &["dialer-a.test"]);
    // Trusts callgate's CA, presents a certificate for the right name from the wrong CA.
    let r = connect(tls_addr(&h), SIP_NAME, pki.client_config(Some(&forged))).and_then(|mut s| {
        let from = s.sock.local_addr()?;
        send(&mut s, &tls_invite(&h, from, "4155550100", "rogue-1"));
        read_sip(&mut s)
    });
    assert!(r.is_err(), "no SIP answer over a refused handshake: {r:?}");
    assert!(h.nothing_at(&h.carrier));
    wait_metric(
        &h,
        "callgate_dropped_messages_total{reason=\"tls_handshake_failed\"}",
        1.0,
    );
}

#[test]
fn require_client_cert_refuses_a_connection_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "require_client_cert = true\n", |_| {});
    let r = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).and_then(|mut s| {
        send(&mut s, "OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n");
        read_sip(&mut s)
    });
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn reload_serves_the_new_certificate_to_new_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    let before = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    assert_eq!(server_cert_cn(&before), SIP_NAME);

    // The renewed certificate is written over the files in service, then a reload.
    renew(tmp.path(), &pki, &["renewed.callgate.test", SIP_NAME]);
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 200, "{body}");

    let after = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    assert_eq!(server_cert_cn(&after), "renewed.callgate.test");
    assert_eq!(
        metric(&h, "callgate_tls_reloads_total{result=\"ok\",role=\"sip\"}"),
        1.0
    );
    let lines = h.audit_lines();
    assert!(
        lines
            .iter()
            .filter_map(|l| l.get("admin"))
            .any(|a| a["action"] == "tls_reload"),
        "the reload is in the audit log"
    );
}

#[test]
fn open_connections_keep_working_across_a_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    let mut dialer = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    renew(tmp.path(), &pki, &[SIP_NAME]);
    assert!(h.run().app.reload_tls("test".into()).is_empty());
    dial(&h, &mut dialer, "reload-open-1");
    answer_over_udp(&h, &mut dialer);
}

#[test]
fn a_bad_certificate_file_is_refused_and_the_one_in_service_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    std::fs::write(
        tmp.path().join("sip.crt"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let (status, body) = h.http("POST", "/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("sip.crt"), "the error names the file: {body}");
    let s = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    assert_eq!(
        server_cert_cn(&s),
        SIP_NAME,
        "the certificate in service stays"
    );
    assert_eq!(
        metric(
            &h,
            "callgate_tls_reloads_total{result=\"error\",role=\"sip\"}"
        ),
        1.0
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    let other = pki.leaf(tmp.path(), "other", &[SIP_NAME]);
    std::fs::copy(&other.key, tmp.path().join("sip.key")).unwrap();
    let errors = h.run().app.reload_tls("test".into());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("sip.key"), "{errors:?}");
    let s = connect(tls_addr(&h), SIP_NAME, pki.client_config(None)).unwrap();
    assert_eq!(server_cert_cn(&s), SIP_NAME);
}

#[test]
fn a_missing_certificate_stops_the_start_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    common::write_data(tmp.path(), Some(2));
    let missing = tmp.path().join("nowhere.crt");
    let extra = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        missing.display(),
        missing.display()
    );
    let cfg = common::config_for(tmp.path(), "127.0.0.1:9".parse().unwrap(), &extra);
    let clock = std::sync::Arc::new(callgate::clock::OffsetClock::today_at_utc_hour(19));
    let err = match callgate::server::start(cfg, clock) {
        Ok(_) => panic!("started without its certificate"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("tls.cert"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn certificate_expiry_is_a_metric() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let h = tls_harness(tmp.path(), &pki, "", |_| {});
    // rcgen's default validity ends on 4096-01-01.
    let expiry = metric(
        &h,
        "callgate_tls_cert_expiry_timestamp_seconds{role=\"sip\"}",
    );
    assert_eq!(expiry, 67_090_118_400.0);
}

#[test]
fn an_upstream_client_without_a_certificate_reports_no_expiry() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Test CA");
    let ca = pki.write_ca(tmp.path(), "carrier-ca.crt");
    let h = tls_harness(tmp.path(), &pki, "", |c| {
        c.upstream.transport = Transport::Tls;
        c.upstream.tls_ca = Some(ca);
    });
    let (_, body) = h.http("GET", "/metrics", "");
    let expiry: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("callgate_tls_cert_expiry_timestamp_seconds{"))
        .collect();
    assert_eq!(
        expiry.len(),
        1,
        "only the SIP listener presents one: {expiry:?}"
    );
    assert!(expiry[0].contains("role=\"sip\""), "{expiry:?}");
}

/// A harness whose admin API is HTTPS and requires a client certificate.
fn admin_mtls(dir: &Path, pki: &Pki) -> (Harness, Leaf) {
    admin_mtls_with(dir, pki, vec![])
}

/// `admin_mtls` with console `users`.
fn admin_mtls_with(
    dir: &Path,
    pki: &Pki,
    users: Vec<callgate::config::AdminUser>,
) -> (Harness, Leaf) {
    common::write_data(dir, Some(2));
    let server = pki.leaf(dir, "admin", &["admin.callgate.test", "127.0.0.1"]);
    let ca = pki.write_ca(dir, "ops-ca.crt");
    let h = Harness::in_dir_with(dir.to_path_buf(), "", |c| {
        c.admin.tls_cert = Some(server.cert.clone());
        c.admin.tls_key = Some(server.key.clone());
        c.admin.client_ca = Some(ca);
        c.admin.user = users;
    });
    let ops = pki.leaf(dir, "ops", &["ops.example.test"]);
    (h, ops)
}

fn https(
    h: &Harness,
    pki: &Pki,
    cert: Option<&Leaf>,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let json = "Content-Type: application/json\r\n";
    https_with(h, pki, cert, method, path, json, body).map(|(status, _, body)| (status, body))
}

/// An HTTPS request with `headers` (each line ending in CRLF): status, head and body.
fn https_with(
    h: &Harness,
    pki: &Pki,
    cert: Option<&Leaf>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    use std::io::{Read, Write};
    let mut s = connect(
        h.run().admin_addr,
        "admin.callgate.test",
        pki.client_config(cert),
    )?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    s.flush()?;
    let mut out = String::new();
    match s.read_to_string(&mut out) {
        Ok(_) => {}
        // Servers that close without close_notify: what was read is the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {out:?}")))?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((status, head.to_string(), body.to_string()))
}

#[test]
fn admin_over_mutual_tls_serves_a_client_with_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, ops) = admin_mtls(tmp.path(), &pki);
    let (status, body) = https(&h, &pki, Some(&ops), "GET", "/metrics", "").unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("callgate_decisions_total"), "{body}");
}

#[test]
fn admin_over_mutual_tls_refuses_a_client_without_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, _) = admin_mtls(tmp.path(), &pki);
    let r = https(&h, &pki, None, "GET", "/metrics", "");
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn admin_changes_over_mutual_tls_name_the_certificate_in_the_audit_log() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, ops) = admin_mtls(tmp.path(), &pki);
    let (status, body) = https(
        &h,
        &pki,
        Some(&ops),
        "POST",
        "/v1/optouts",
        r#"{"number":"+14155550123"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let who: Vec<String> = h
        .audit_lines()
        .iter()
        .filter_map(|l| l.get("admin"))
        .filter(|a| a["action"] == "optout_add")
        .map(|a| a["who"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        who.iter()
            .any(|w| w.contains("client certificate ops.example.test")),
        "{who:?}"
    );
}

/// An admin over mutual TLS whose certificate `ops.example.test` is the console operator
/// `olga`; `alice` signs in with a password.
fn console_mtls(dir: &Path, pki: &Pki) -> (Harness, Leaf) {
    use callgate::config::{AdminRole, AdminUser, PasswordHashText};
    let users = vec![
        AdminUser {
            name: "olga".into(),
            role: AdminRole::Operator,
            password_hash: None,
            certificate: Some("ops.example.test".into()),
        },
        AdminUser {
            name: "alice".into(),
            role: AdminRole::Operator,
            password_hash: Some(PasswordHashText::of("correct horse battery staple").unwrap()),
            certificate: None,
        },
    ];
    admin_mtls_with(dir, pki, users)
}

fn http_header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn a_client_certificate_mapped_to_a_console_user_is_signed_in_as_that_user() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, ops) = console_mtls(tmp.path(), &pki);
    let (status, head, body) = https_with(&h, &pki, Some(&ops), "GET", "/console", "", "").unwrap();
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.contains("olga"), "{body}");
    let cookie = http_header(&head, "set-cookie").unwrap_or_default();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[test]
fn a_client_certificate_no_console_user_has_is_sent_to_sign_in() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, _) = console_mtls(tmp.path(), &pki);
    let stranger = pki.leaf(tmp.path(), "stranger", &["stranger.example.test"]);
    let (status, head, _) =
        https_with(&h, &pki, Some(&stranger), "GET", "/console", "", "").unwrap();
    assert_eq!(status, 303, "{head}");
    assert!(
        http_header(&head, "location").is_some_and(|l| l.starts_with("/console/sign-in")),
        "{head}"
    );
}

#[test]
fn an_opt_out_added_in_the_console_by_certificate_names_its_user_and_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::new("Ops CA");
    let (h, ops) = console_mtls(tmp.path(), &pki);
    let page = "/console/number?n=4155550123";
    let (status, head, body) = https_with(&h, &pki, Some(&ops), "GET", page, "", "").unwrap();
    assert_eq!(status, 200, "{head}");
    let cookie = http_header(&head, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let field = "name=\"csrf\" value=\"";
    let token = &body[body.find(field).unwrap() + field.len()..];
    let token = &token[..token.find('"').unwrap()];
    let form = format!("csrf={token}&number=%2B14155550123&source=letter");
    let headers = format!(
        "Cookie: {cookie}\r\nOrigin: https://admin\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n"
    );
    let (status, head, body) = https_with(
        &h,
        &pki,
        Some(&ops),
        "POST",
        "/console/optouts",
        &headers,
        &form,
    )
    .unwrap();
    assert!(status < 400, "{status} {head}\n{body}");
    let who: Vec<String> = h
        .audit_lines()
        .iter()
        .filter_map(|l| l.get("admin"))
        .filter(|a| a["action"] == "optout_add")
        .map(|a| a["who"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(who.len(), 1, "{who:?}");
    assert!(
        who[0].starts_with("olga") && who[0].contains("client certificate ops.example.test"),
        "{who:?}"
    );
}
