//! Audit: the hash chain of the records verified in the background (every file, every line),
//! its progress, and the head and time of the last verification. Anyone signed in may start
//! one: it reads and changes nothing.

use super::page::{csrf_field, page};
use super::{Console, Session};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use maud::html;
use std::sync::{Arc, Mutex};

/// The last verification, or the one under way.
#[derive(Default)]
pub(crate) struct Verification {
    running: bool,
    done: usize,
    total: usize,
    started: Option<DateTime<Utc>>,
    by: String,
    finished: Option<DateTime<Utc>>,
    outcome: Option<Result<Verified, String>>,
}

struct Verified {
    files: usize,
    records: u64,
    head: String,
}

pub(crate) type Shared = Arc<Mutex<Verification>>;

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    let v = c.verification.lock().unwrap_or_else(|p| p.into_inner());
    let body = html! {
        @if v.running {
            // The page asks again every two seconds while the walk goes on (no script).
            meta http-equiv="refresh" content="2";
            div.card {
                p { "Verifying the hash chain: " (v.done) " of " (v.total) " files (started "
                    (when(v.started)) " by " (v.by) ")." }
                progress value=(v.done) max=(v.total.max(1)) {}
            }
        }
        @match &v.outcome {
            None if !v.running => p.muted { "The chain has not been verified from the console since callgate started." },
            None => {},
            Some(Ok(ok)) => div.card {
                p.ok { strong { "The chain verifies" } ": " (ok.records) " records in " (ok.files)
                    " files, every line linked to the one before it." }
                p { "Head (the newest line's hash): " span.mono { (ok.head) } }
                p.muted { "Verified " (when(v.finished)) ", started by " (v.by) "." }
            },
            Some(Err(e)) => div.card role="alert" {
                p.bad { "The chain does not verify: " (e) }
                p.muted { "Verified " (when(v.finished)) ", started by " (v.by) "." }
            },
        }
        @if !v.running {
            form.card method="post" action="/console/audit/verify" {
                (csrf_field(&s))
                "Walk every audit file and check every line's link (as " code { "callgate audit verify" } " does). "
                button type="submit" { "Verify the chain" }
            }
        }
    };
    drop(v);
    page(&s, "Audit", body)
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// `POST /console/audit/verify`: start a verification unless one is under way.
pub(crate) async fn start(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    let dir = c.app.cfg.audit.dir.clone();
    let now = c.app.clock.now();
    {
        let mut v = c.verification.lock().unwrap_or_else(|p| p.into_inner());
        if v.running {
            return Redirect::to("/console/audit").into_response();
        }
        *v = Verification {
            running: true,
            started: Some(now),
            by: s.user.to_string(),
            ..Verification::default()
        };
    }
    let (shared, clock) = (c.verification.clone(), c.app.clock.clone());
    let spawned = std::thread::Builder::new()
        .name("audit-verify".into())
        .spawn(move || walk(&dir, &shared, || clock.now()));
    if let Err(e) = spawned {
        let mut v = c.verification.lock().unwrap_or_else(|p| p.into_inner());
        v.running = false;
        v.outcome = Some(Err(format!("cannot start: {e}")));
    }
    Redirect::to("/console/audit").into_response()
}

/// The walk, on its own thread, telling `shared` how far it is.
fn walk(dir: &std::path::Path, shared: &Shared, now: impl Fn() -> DateTime<Utc>) {
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    // A walk that panics still ends: the page must not say "under way" for ever.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| chain_outcome(dir, shared)))
            .unwrap_or_else(|_| Err("the verification stopped on an internal error".into()));
    let mut v = lock();
    v.running = false;
    v.finished = Some(now());
    v.outcome = Some(outcome);
}

/// Every file of `dir` walked, `shared` told how far.
fn chain_outcome(dir: &std::path::Path, shared: &Shared) -> Result<Verified, String> {
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    crate::audit::chain::audit_files(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))
        .and_then(|files| {
            lock().total = files.len();
            crate::audit::verify::verify_with(&files, |n| lock().done = n)
                .map(|v| Verified {
                    files: v.files,
                    records: v.records,
                    head: v.head,
                })
                .map_err(|e| e.to_string())
        })
}
