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

    /// The sign-in form, then the form sent with `password`, as a browser does.
    fn sign_in_with(&mut self, name: &str, password: &str) -> Answer {
        let form = self.get("/console/sign-in").body;
        let token = hidden(&form, "signin");
        self.post(
            "/console/sign-in",
            &[
                ("name", name),
                ("password", password),
                ("next", "/console"),
                ("signin", &token),
            ],
        )
    }

    fn sign_in(&mut self, name: &str) -> Answer {
        self.sign_in_with(name, PASSWORD)
    }
}

/// A client signed in as `name`.
fn signed_in(h: &Harness, name: &str) -> Client {
    let mut c = Client::new(h);
    assert_eq!(c.sign_in(name).status, 303, "{name} signs in");
    c
}

/// The value of the hidden field `name` in a page's forms.
fn hidden(page: &str, name: &str) -> String {
    let field = format!("name=\"{name}\" value=\"");
    let at = page
        .find(&field)
        .unwrap_or_else(|| panic!("no field {name} in {page}"));
    let rest = &page[at + field.len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    hidden(page, "csrf")
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
    let a = c.sign_in_with("alice", "not the password");
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Wrong name or password"));
    let cookie = a.header("set-cookie").unwrap_or("");
    assert!(!cookie.starts_with("callgate_session="), "{cookie}");
    assert_eq!(c.get("/console").status, 303, "not signed in");
}

#[test]
fn an_operator_adds_an_opt_out_in_the_form_and_the_next_call_is_blocked() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
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
    let mut c = signed_in(&h, "alice");
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
    let mut c = signed_in(&h, "victor");
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
    let mut c = signed_in(&h, "alice");
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
    let mut c = signed_in(&h, "alice");
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
    let mut c = signed_in(&h, "victor");
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
    let mut c = signed_in(&h, "victor");
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
    let mut c = signed_in(&h, "victor");
    let page = c.get("/console").body;
    assert!(
        page.contains("<td>blocked</td><td class=\"n\">1</td>"),
        "{page}"
    );
    assert!(page.contains("<svg"), "{page}");
    assert!(page.contains("<title>national_dnc</title>"), "{page}");
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

/// A blocked call to 212-555-0143 (national list), its call record written.
fn blocked_call(h: &Harness) {
    h.send_dialer(&h.invite("2125550143", "console-calls"));
    assert!(h.recv_dialer().unwrap().contains("national_dnc"));
    common::calls::record_within(h, "console-calls", Duration::from_secs(5));
}

#[test]
fn the_calls_page_finds_a_blocked_call_by_its_reason() {
    let (h, _dir) = with_users();
    blocked_call(&h);
    let mut c = signed_in(&h, "victor");
    let page = c.get("/console/calls?reason=national_dnc").body;
    assert!(page.contains(">+12125550143</a>"), "{page}");
    let other = c.get("/console/calls?reason=internal_dnc").body;
    assert!(other.contains("No call matches"), "{other}");
}

#[test]
fn a_search_with_a_value_that_is_not_one_is_named_and_finds_nothing() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "victor");
    let a = c.get("/console/calls?verdict=maybe");
    assert_eq!(a.status, 400);
    assert!(
        a.body.contains("verdict `maybe`: not a verdict"),
        "{}",
        a.body
    );
    let a = c.get("/console/calls?from=yesterday");
    assert_eq!(a.status, 400);
    assert!(a.body.contains("from `yesterday`"), "{}", a.body);
}

#[test]
fn the_calls_csv_holds_what_the_search_found() {
    let (h, _dir) = with_users();
    blocked_call(&h);
    let mut c = signed_in(&h, "victor");
    let csv = c.get("/console/calls.csv?verdict=blocked");
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(
        lines[0].contains("called") && lines[1].contains("+12125550143"),
        "{}",
        csv.body
    );
}

impl Client {
    /// A `multipart/form-data` form: the CSRF token and a file, as a browser uploads it.
    fn upload(&mut self, path: &str, token: &str, file: &str) -> Answer {
        let b = "----callgate-test-boundary";
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"optouts.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n{file}\r\n--{b}--\r\n"
        );
        let ct = format!("Content-Type: multipart/form-data; boundary={b}\r\n");
        self.send("POST", path, &ct, &body)
    }
}

#[test]
fn an_uploaded_csv_of_opt_outs_is_added_whole_and_its_calls_blocked() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/optouts").body);
    let a = c.upload(
        "/console/optouts/upload",
        &token,
        "number,source\n4155550100,letter\n(415) 555-0101,\"phone, agent 7\"\n",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("2 opt-out(s) recorded"), "{}", a.body);
    h.send_dialer(&h.invite("4155550101", "console-upload"));
    assert!(h.recv_dialer().unwrap().contains("internal_dnc"));
    let sources: Vec<String> = h
        .audit_lines()
        .into_iter()
        .filter(|l| l["admin"]["action"] == "optout_add")
        .map(|l| {
            l["admin"]["detail"]["source"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(sources, ["letter", "phone, agent 7"]);
}

#[test]
fn an_uploaded_csv_with_a_bad_line_is_refused_naming_it_and_adds_nothing() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/optouts").body);
    let a = c.upload(
        "/console/optouts/upload",
        &token,
        "number,source\n4155550100,letter\n12345,phone\n",
    );
    assert_eq!(a.status, 422);
    assert!(a.body.contains("line 3: `12345`"), "{}", a.body);
    assert!(a.body.contains("nothing was added"), "{}", a.body);
    assert!(!h
        .run()
        .app
        .lists
        .optouts
        .contains("+14155550100".parse().unwrap()));
}

#[test]
fn an_upload_without_its_csrf_token_is_refused() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let a = c.upload("/console/optouts/upload", "wrong", "number\n4155550100\n");
    assert_eq!(a.status, 403);
    assert!(!h
        .run()
        .app
        .lists
        .optouts
        .contains("+14155550100".parse().unwrap()));
}

#[test]
fn an_uploaded_consent_csv_is_recorded_and_found_by_number() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/consent").body);
    let a = c.upload(
        "/console/consent/upload",
        &token,
        "number,type,captured\n+12125550143,pewc,2026-01-01\n",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("1 consent record(s) recorded"),
        "{}",
        a.body
    );
    let found = c.get("/console/consent?n=2125550143").body;
    assert!(found.contains("<td>2026-01-01</td>"), "{found}");
}

#[test]
fn a_consent_csv_with_a_bad_line_is_refused_naming_it() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/consent").body);
    let a = c.upload(
        "/console/consent/upload",
        &token,
        "number,type,captured\n+12125550143,pewc,2026-01-01\n+12125550144,pewc,last week\n",
    );
    assert_eq!(a.status, 422);
    assert!(a.body.contains("line:3"), "{}", a.body);
    assert_eq!(h.run().app.gate.state.consent.seq(), 0, "nothing added");
}

#[test]
fn an_operator_closes_a_state_and_the_closure_is_in_force() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/emergency").body);
    let a = c.post(
        "/console/emergency",
        &[("csrf", &token), ("states", "la"), ("npas", "")],
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("states: LA"), "{}", a.body);
    assert!(h
        .http("GET", "/v1/emergency", "")
        .1
        .contains("\"states\":[\"LA\"]"));
}

#[test]
fn closures_that_are_not_ones_are_named_and_change_nothing() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/emergency").body);
    let a = c.post(
        "/console/emergency",
        &[("csrf", &token), ("states", ""), ("npas", "50x")],
    );
    assert_eq!(a.status, 400);
    assert!(a.body.contains("`50x` is not an area code"), "{}", a.body);
    let a = c.post(
        "/console/emergency",
        &[("csrf", &token), ("states", "Atlantis"), ("npas", "")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(h
        .http("GET", "/v1/emergency", "")
        .1
        .contains("\"states\":[]"));
}

#[test]
fn a_reload_from_the_lists_page_is_shown_with_who_made_it() {
    let (h, _dir) = with_users();
    let mut c = signed_in(&h, "alice");
    let token = csrf(&c.get("/console/lists").body);
    let a = c.post("/console/lists/reload", &[("csrf", &token)]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("Reloaded: generation"), "{}", a.body);
    assert!(a.body.contains("alice (console: password)"), "{}", a.body);
}

#[test]
fn a_viewer_verifies_the_chain_and_sees_its_head() {
    let (h, _dir) = with_users();
    blocked_call(&h);
    let mut c = signed_in(&h, "victor");
    let token = csrf(&c.get("/console/audit").body);
    let a = c.post("/console/audit/verify", &[("csrf", &token)]);
    assert_eq!(a.status, 303, "{}", a.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = c.get("/console/audit").body;
        if !page.contains("Verifying the hash chain") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(page.contains("The chain verifies"), "{page}");
    assert!(page.contains("started by victor"), "{page}");
}

#[test]
fn the_printable_dossier_of_a_period_verifies_each_line() {
    let (h, _dir) = with_users();
    blocked_call(&h);
    let mut c = signed_in(&h, "victor");
    let today = &callgate::clock::today_at_utc_hour_rfc3339(19)[..10];
    let a = c.get(&format!(
        "/console/number/dossier?n=2125550143&from={today}&to={today}"
    ));
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("national_dnc"), "{}", a.body);
    assert!(!a.body.contains("NOT VERIFIED"), "{}", a.body);
    let bad = c.get("/console/number/dossier?n=2125550143&from=someday");
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("from `someday`"), "{}", bad.body);
}
