//! Lists: the versions in service with their age, every reload the log holds (who, when,
//! what was loaded, kept or refused), and for operators a reload with its result.

use super::page::{csrf_field, notice, page};
use super::{Console, Session};
use crate::admin::listener::AdminPeer;
use crate::app::App;
use crate::config::AdminRole;
use crate::records::index::{each_line, Kind, Query};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde_json::Value;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Reloads shown, the newest first.
const SHOWN: usize = 50;

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    let body = body(&c, &s, None, None).await;
    page(&s, "Lists", body)
}

async fn body(c: &Console, s: &Session, done: Option<&str>, error: Option<&str>) -> Markup {
    let app = c.app.clone();
    let history = tokio::task::spawn_blocking(move || reloads(&app)).await;
    let history = history.unwrap_or_else(|e| Err(e.to_string()));
    html! {
        (notice(done, error))
        (super::overview::lists(&c.app))
        @if s.role == AdminRole::Operator {
            form.card method="post" action="/console/lists/reload" {
                (csrf_field(s))
                "Read the list files again (as SIGHUP does): a list that cannot be read whole is \
                 refused and the version in service stays. "
                button type="submit" { "Reload the lists" }
            }
        }
        h2 { "Reloads" }
        @match &history {
            Err(e) => p.bad role="alert" { "The records index cannot answer: " (e) },
            Ok(h) if h.is_empty() => p.muted { "No reload in the records of the last " (SINCE_DAYS) " days." },
            Ok(h) => table {
                thead { tr { th { "Time (UTC)" } th { "By" } th { "Result" } } }
                tbody {
                    @for r in h {
                        tr {
                            td { (r["ts"].as_str().unwrap_or("-")) }
                            td { (r["admin"]["who"].as_str().unwrap_or("-")) }
                            td { (outcome(&r["admin"]["detail"])) }
                        }
                    }
                }
            },
        }
    }
}

/// What a reload's record says happened.
fn outcome(d: &Value) -> Markup {
    let names = |k: &str| {
        d[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    html! {
        @if let Some(refused) = d["refused"].as_str() {
            span.bad { "refused: " (refused) }
        } @else {
            @if !names("loaded").is_empty() { "loaded " (names("loaded")) ". " }
            @if !names("kept").is_empty() { "kept " (names("kept")) ". " }
            @if !names("failed").is_empty() { span.bad { "failed " (names("failed")) "." } }
        }
    }
}

/// How far back the page looks for reloads.
const SINCE_DAYS: i64 = 400;

/// The newest `lists_reload` records (at most `SHOWN`, of the last `SINCE_DAYS`), newest first.
fn reloads(app: &App) -> Result<Vec<Value>, String> {
    let (index, files, _) = super::super::records::current_index(app).map_err(|e| e.to_string())?;
    let q = Query {
        kinds: vec![Kind::Admin],
        action: Some("lists_reload".into()),
        from: Some(app.clock.now() - chrono::Duration::days(SINCE_DAYS)),
        newest_first: true,
        limit: Some(SHOWN as u32),
        ..Query::default()
    };
    let mut found = index.query(&q).map_err(|e| e.to_string())?;
    found.reverse(); // the log is read forwards
    let mut out = Vec::with_capacity(found.len());
    each_line(&files, &found, |_, _, line| {
        out.extend(serde_json::from_slice::<Value>(line).ok());
        Ok(ControlFlow::Continue(()))
    })
    .map_err(|e| e.to_string())?;
    out.reverse();
    Ok(out)
}

/// `POST /console/lists/reload`: the lists read again; the page says what came of it.
pub(crate) async fn reload(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
) -> Response {
    let (app, who) = (c.app.clone(), super::who(&s, &peer));
    let reloaded = tokio::task::spawn_blocking(move || app.reload_files(who)).await;
    let (done, error) = match reloaded {
        Ok((Ok(r), tls)) if r.failed.is_empty() && tls.is_empty() => (
            Some(format!("Reloaded: generation {}.", r.generation)),
            None,
        ),
        Ok((Ok(r), tls)) => {
            let tls: Vec<String> = tls
                .iter()
                .map(|(role, e)| format!("{role} certificate: {e}"))
                .collect();
            let failed = [r.failed.join("; "), tls.join("; ")].join(" ");
            (
                None,
                Some(format!(
                    "Reloaded in part; kept the versions in service of what failed: {failed}"
                )),
            )
        }
        Ok((Err(e), _)) => (
            None,
            Some(format!(
                "Reload refused; the lists in service are unchanged: {e}"
            )),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    c.app.log_list_health();
    super::written(&c.app).await;
    let body = body(&c, &s, done.as_deref(), error.as_deref()).await;
    page(&s, "Lists", body)
}
