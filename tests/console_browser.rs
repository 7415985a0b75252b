//! The console in a real browser: Debian's headless Chromium driven through WebDriver
//! (chromedriver), against the `callgate` binary with sipp placing the calls. Each test saves
//! a screenshot of the pages it saw under `target/tmp/console-screenshots/`. These tests FAIL
//! (never skip) when chromium or chromedriver is missing: `scripts/test.sh` installs them.

mod common;
use callgate::config::PasswordHashText;
use common::peers::{dialer, Callgate, Carrier};
use common::{free_port, Kill};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// A tool's path; FAILS when it is not installed.
fn tool(name: &str, package: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    found.unwrap_or_else(|| {
        panic!("{name} is not installed (Debian package {package}): `bash scripts/test.sh` installs it")
    })
}

/// callgate in front of a sipp carrier, with an operator `alice` and a viewer `victor`.
fn callgate() -> (Carrier, Callgate) {
    let hash = PasswordHashText::of(PASSWORD).unwrap();
    let h = hash.as_str();
    let users = format!(
        "[[admin.user]]\nname = \"alice\"\nrole = \"operator\"\npassword_hash = \"{h}\"\n\
         [[admin.user]]\nname = \"victor\"\nrole = \"viewer\"\npassword_hash = \"{h}\"\n"
    );
    let carrier = Carrier::start();
    let cg = Callgate::start_with(carrier.port, &users);
    (carrier, cg)
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    client: Client,
    base: String,
    _driver: Kill,
    shots: PathBuf,
}

impl Browser {
    async fn open(cg: &Callgate, test: &str) -> Browser {
        let driver = tool("chromedriver", "chromium-driver");
        let chromium = tool("chromium", "chromium");
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let driver = Kill(child);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            // chromedriver is on loopback over plain HTTP: no TLS stack to build.
            let tried = ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await;
            match tried {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("chromedriver did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("console-screenshots")
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            base: format!("http://{}", cg.admin),
            _driver: driver,
            shots,
        }
    }

    async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// Type `text` into the field (a file input takes a file's path).
    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        if field.attr("type").await.unwrap().as_deref() != Some("file") {
            field.clear().await.unwrap();
        }
        field.send_keys(text).await.unwrap();
    }

    /// Click what submits a form, and wait for the page it leads to: the old page is marked,
    /// and the next one is the first loaded document without the mark.
    async fn click(&self, css: &str) {
        let button = self.client.find(Locator::Css(css)).await.unwrap();
        self.client
            .execute("window.__before = true;", vec![])
            .await
            .unwrap();
        button.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let next = self
                .client
                .execute(
                    "return window.__before === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if next.is_ok_and(|v| v == serde_json::Value::Bool(true)) {
                return;
            }
            assert!(Instant::now() < deadline, "no page after clicking {css}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn sign_in(&self, name: &str) {
        self.go("/console").await;
        self.fill("input[name=name]", name).await;
        self.fill("input[name=password]", PASSWORD).await;
        self.click("form[action='/console/sign-in'] button").await;
    }

    /// The page's text as shown.
    async fn text(&self) -> String {
        let body = self.client.find(Locator::Css("body")).await.unwrap();
        body.text().await.unwrap()
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    async fn close(self) {
        self.client.close().await.unwrap();
    }
}

#[tokio::test]
async fn a_number_called_and_blocked_shows_its_calls_and_reasons() {
    let (_carrier, cg) = callgate();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer(
            "uac_expect_reject.xml",
            &["2125550143"],
            cg.sip,
            work.path()
        ),
        0
    );
    assert_eq!(
        dialer("uac_allow.xml", &["4155550100"], cg.sip, work.path()),
        0
    );
    let b = Browser::open(&cg, "blocked_number").await;
    b.sign_in("victor").await;
    b.shot("overview").await;
    assert!(b.text().await.contains("Lists in service"));
    b.go("/console/number").await;
    b.fill("input[name=n]", "(212) 555-0143").await;
    b.click("form[action='/console/number'] button").await;
    let text = b.text().await;
    b.shot("number").await;
    assert!(text.contains("Would be blocked"), "{text}");
    assert!(text.contains("Decision: blocked (national_dnc)"), "{text}");
    b.close().await;
}

#[tokio::test]
async fn an_opt_out_added_in_the_form_blocks_the_next_sipp_call() {
    let (carrier, cg) = callgate();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer("uac_allow.xml", &["4155550142"], cg.sip, work.path()),
        0
    );
    let b = Browser::open(&cg, "opt_out").await;
    b.sign_in("alice").await;
    b.go("/console/number?n=4155550142").await;
    b.fill("input[name=source]", "phone call, agent 7").await;
    b.click("form[action='/console/optouts'] button").await;
    let text = b.text().await;
    b.shot("opt_out_added").await;
    assert!(text.contains("Opt-out recorded"), "{text}");
    assert!(
        text.contains("optout_add by alice (console: password)"),
        "{text}"
    );
    assert_eq!(
        dialer(
            "uac_expect_reject.xml",
            &["4155550142"],
            cg.sip,
            work.path()
        ),
        0,
        "the next call is rejected"
    );
    assert_eq!(carrier.invites(), 1);
    b.close().await;
}

#[tokio::test]
async fn a_viewer_has_no_form_that_changes_anything_and_a_change_is_refused() {
    let (_carrier, cg) = callgate();
    let b = Browser::open(&cg, "viewer").await;
    b.sign_in("victor").await;
    b.go("/console/number?n=4155550142").await;
    b.shot("number_as_viewer").await;
    let forms = b
        .client
        .find_all(Locator::Css("form[action='/console/optouts']"))
        .await
        .unwrap();
    assert!(forms.is_empty());
    // What a crafted form would send, with the viewer's own token.
    let status = b
        .client
        .execute(
            "const t = document.querySelector('input[name=csrf]').value;
             return fetch('/console/optouts', {method: 'POST',
               headers: {'Content-Type': 'application/x-www-form-urlencoded'},
               body: 'csrf=' + t + '&number=%2B14155550142'}).then(r => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, 403);
    b.close().await;
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let (_carrier, cg) = callgate();
    let b = Browser::open(&cg, "csrf").await;
    b.sign_in("alice").await;
    b.go("/console/number?n=4155550142").await;
    b.client
        .execute(
            "document.querySelector(\"form[action='/console/optouts'] input[name=csrf]\").remove();",
            vec![],
        )
        .await
        .unwrap();
    b.click("form[action='/console/optouts'] button").await;
    let text = b.text().await;
    b.shot("refused").await;
    assert!(text.contains("security token (CSRF)"), "{text}");
    b.go("/console/number?n=4155550142").await;
    assert!(b.text().await.contains("Not opted out"));
    b.close().await;
}

#[tokio::test]
async fn a_csv_with_a_bad_line_is_refused_naming_the_line_and_adds_nothing() {
    let (_carrier, cg) = callgate();
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("optouts.csv");
    std::fs::write(&csv, "number,source\n4155550142,letter\n12345,phone\n").unwrap();
    let b = Browser::open(&cg, "upload").await;
    b.sign_in("alice").await;
    b.go("/console/optouts").await;
    b.fill("input[type=file]", &csv.display().to_string()).await;
    b.click("form[action='/console/optouts/upload'] button")
        .await;
    let text = b.text().await;
    b.shot("upload_refused").await;
    assert!(text.contains("line 3: `12345`"), "{text}");
    assert!(text.contains("nothing was added"), "{text}");
    b.go("/console/number?n=4155550142").await;
    assert!(b.text().await.contains("Not opted out"));
    b.close().await;
}

#[tokio::test]
async fn the_report_for_the_period_shows_the_counts_the_test_placed() {
    let (_carrier, cg) = callgate();
    let work = tempfile::tempdir().unwrap();
    assert_eq!(
        dialer(
            "uac_expect_reject.xml",
            &["2125550143"],
            cg.sip,
            work.path()
        ),
        0
    );
    assert_eq!(
        dialer(
            "uac_allow.xml",
            &["4155550100", "4155550101"],
            cg.sip,
            work.path()
        ),
        0
    );
    let b = Browser::open(&cg, "report").await;
    b.sign_in("victor").await;
    b.go("/console/reports").await;
    b.shot("reports").await;
    let today = callgate::clock::today_at_utc_hour_rfc3339(19)[..10].to_string();
    b.go(&format!("/console/reports/view?from={today}&to={today}"))
        .await;
    let text = b.text().await;
    b.shot("report").await;
    assert!(text.contains("Decisions 3"), "{text}");
    assert!(text.contains("Blocked 1"), "{text}");
    assert!(text.contains("Call records 3"), "{text}");
    assert!(text.contains("within its allowed age"), "{text}");
    b.close().await;
}
