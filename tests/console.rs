//! The compliance console over HTTP, without a browser: sign-in and sessions, roles, CSRF,
//! the overview and number pages, an opt-out added in a form and honoured by the next call.

mod common;
use callgate::config::{AdminRole, AdminUser, PasswordHashText};
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::LazyLock;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery staple";

static HASH: LazyLock<PasswordHashText> = LazyLock::new(|| PasswordHashText::of(PASSWORD).unwrap());

fn user(name: &str, role: AdminRole) -> AdminUser {
    AdminUser {
        name: name.into(),
        role,
        password_hash: Some(HASH.clone()),
        certificate: None,
    }
}

/// callgate with its configuration changed by `edit` (the directory goes after it).
fn harness(edit: impl FnOnce(&mut callgate::config::Config)) -> (Harness, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    write_data(tmp.path(), Some(2));
    (
        Harness::in_dir_with(tmp.path().to_path_buf(), "", edit),
        tmp,
    )
}

/// callgate with an operator `alice` and a viewer `victor`.
fn with_users() -> (Harness, tempfile::TempDir) {
    harness(|cfg| {
        cfg.admin.user = vec![
            user("alice", AdminRole::Operator),
            user("victor", AdminRole::Viewer),
        ];
    })
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A client that keeps the session cookie it is given, as a browser does.
struct Client {
    addr: SocketAddr,
    cookie: Option<String>,
}

impl Client {
    fn new(h: &Harness) -> Client {
        Client {
            addr: h.run().admin_addr,
            cookie: None,
        }
    }

    fn send(&mut self, method: &str, path: &str, extra: &str, body: &str) -> Answer {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let cookie = self
            .cookie
            .as_ref()
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{cookie}{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let answer = Answer {
            status,
            head: head.to_string(),
            body: body.to_string(),
        };
        if let Some(set) = answer.header("set-cookie") {
            let pair = set.split(';').next().unwrap_or("");
            self.cookie = Some(pair.to_string()).filter(|p| !p.ends_with('='));
        }
        answer
    }

    fn get(&mut self, path: &str) -> Answer {
        self.send("GET", path, "", "")
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let body = serde_urlencoded::to_string(form).unwrap();
        let ct = "Content-Type: application/x-www-form-urlencoded\r\n";
        self.send("POST", path, ct, &body)
    }

    fn sign_in(&mut self, name: &str) -> Answer {
        self.post(
            "/console/sign-in",
            &[("name", name), ("password", PASSWORD), ("next", "/console")],
        )
    }
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[test]
fn a_page_asked_without_signing_in_leads_to_the_sign_in_form() {
    let (h, _dir) = with_users();
    let a = Client::new(&h).get("/console/number?n=4155550100");
    assert_eq!(a.status, 303);
    assert_eq!(
        a.header("location"),
        Some("/console/sign-in?next=/console/number%3Fn%3D4155550100")
    );
}

#[test]
fn signing_in_sets_a_strict_http_only_cookie_and_opens_the_overview() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    let a = c.sign_in("alice");
    assert_eq!((a.status, a.header("location")), (303, Some("/console")));
    let cookie = a.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let overview = c.get("/console");
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Lists in service"));
    assert!(overview.body.contains("alice"));
}

#[test]
fn a_wrong_password_is_refused_and_starts_no_session() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    let a = c.post(
        "/console/sign-in",
        &[("name", "alice"), ("password", "not the password")],
    );
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Wrong name or password"));
    assert!(a.header("set-cookie").is_none());
}

#[test]
fn an_operator_adds_an_opt_out_in_the_form_and_the_next_call_is_blocked() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("alice");
    let page = c.get("/console/number?n=4155550100");
    assert!(page.body.contains("Not opted out"), "{}", page.body);
    let token = csrf(&page.body);
    let a = c.post(
        "/console/optouts",
        &[
            ("csrf", &token),
            ("number", "+14155550100"),
            ("source", "phone, agent 7"),
        ],
    );
    assert_eq!(a.status, 303, "{}", a.body);
    h.send_dialer(&h.invite("4155550100", "console-optout"));
    assert!(h.recv_dialer().unwrap().contains("internal_dnc"));
    let added = h
        .audit_lines()
        .into_iter()
        .find(|l| l["admin"]["action"] == "optout_add")
        .expect("an audited opt-out");
    let who = added["admin"]["who"].as_str().unwrap();
    assert!(who.starts_with("alice (console: password)"), "{who}");
}

#[test]
fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("alice");
    let a = c.post("/console/optouts", &[("number", "+14155550100")]);
    assert_eq!(a.status, 403);
    assert!(a.body.contains("CSRF"), "{}", a.body);
    assert!(!h
        .run()
        .app
        .lists
        .optouts
        .contains("+14155550100".parse().unwrap()));
}

#[test]
fn a_viewer_sees_no_change_form_and_a_change_is_refused() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("victor");
    let page = c.get("/console/number?n=4155550100");
    assert!(!page.body.contains("Add opt-out"));
    let token = csrf(&page.body); // the sign-out form's
    let a = c.post(
        "/console/optouts",
        &[("csrf", &token), ("number", "+14155550100")],
    );
    assert_eq!(a.status, 403);
    assert!(a.body.contains("viewer"), "{}", a.body);
    assert!(!h
        .run()
        .app
        .lists
        .optouts
        .contains("+14155550100".parse().unwrap()));
}

#[test]
fn a_form_sent_from_another_site_is_refused() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("alice");
    let token = csrf(&c.get("/console").body);
    let body = format!("csrf={token}&number=%2B14155550100");
    let extra =
        "Content-Type: application/x-www-form-urlencoded\r\nOrigin: https://evil.example\r\n";
    let a = c.send("POST", "/console/optouts", extra, &body);
    assert_eq!(a.status, 403);
    assert!(!h
        .run()
        .app
        .lists
        .optouts
        .contains("+14155550100".parse().unwrap()));
}

#[test]
fn signing_out_ends_the_session() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("alice");
    let session = c.cookie.clone();
    let token = csrf(&c.get("/console").body);
    assert_eq!(c.post("/console/sign-out", &[("csrf", &token)]).status, 303);
    c.cookie = session;
    assert_eq!(
        c.get("/console").status,
        303,
        "the old cookie opens nothing"
    );
}

#[test]
fn the_number_page_shows_a_blocked_call_and_why() {
    let (h, _dir) = with_users();
    h.send_dialer(&h.invite("2125550143", "console-blocked"));
    assert!(h.recv_dialer().unwrap().contains("national_dnc"));
    h.audit_lines();
    let mut c = Client::new(&h);
    c.sign_in("victor");
    let page = c.get("/console/number?n=2125550143");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Would be blocked"), "{}", page.body);
    assert!(
        page.body.contains("Decision: blocked (national_dnc)"),
        "{}",
        page.body
    );
}

#[test]
fn a_number_that_is_not_one_is_named_on_the_page() {
    let (h, _dir) = with_users();
    let mut c = Client::new(&h);
    c.sign_in("victor");
    let page = c.get("/console/number?n=12345");
    assert_eq!(page.status, 400);
    assert!(
        page.body
            .contains("`12345` is not a number callgate can call"),
        "{}",
        page.body
    );
}

#[test]
fn the_overview_counts_todays_decisions_and_blocks_by_reason() {
    let (h, _dir) = with_users();
    h.send_dialer(&h.invite("2125550143", "console-count"));
    assert!(h.recv_dialer().unwrap().contains("national_dnc"));
    h.audit_lines();
    let mut c = Client::new(&h);
    c.sign_in("victor");
    let page = c.get("/console").body;
    assert!(
        page.contains("<td>blocked</td><td class=\"n\">1</td>"),
        "{page}"
    );
    assert!(page.contains("<svg"), "{page}");
}

#[test]
fn with_no_users_and_no_token_the_console_is_open_on_loopback() {
    let h = Harness::start();
    let a = Client::new(&h).get("/console");
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("loopback"));
}

#[test]
fn with_a_token_and_no_users_the_console_is_closed() {
    let (h, _dir) = harness(|cfg| cfg.admin.token = Some("t0ken".into()));
    let a = Client::new(&h).get("/console");
    assert_eq!(a.status, 403);
    assert!(a.body.contains("[[admin.user]]"), "{}", a.body);
}
