//! Opt-outs: how many are held, one added by hand (the number page's form), or a CSV of them
//! uploaded (letters, a call centre's do-not-call log): all of it or nothing, each bad line
//! named by its number; each opt-out an audited admin record naming the user.

use super::page::{notice, page, page_with, upload_form};
use super::{Console, Session};
use crate::admin::listener::AdminPeer;
use crate::config::AdminRole;
use axum::extract::{ConnectInfo, Multipart, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use std::sync::Arc;

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    page(&s, "Opt-outs", body(&c, &s, None, &[]))
}

fn body(c: &Console, s: &Session, done: Option<&str>, errors: &[String]) -> Markup {
    html! {
        (notice(done, None))
        @if !errors.is_empty() {
            div.card role="alert" {
                p.bad { "The file was refused; nothing was added." }
                ul { @for e in errors { li { (e) } } }
            }
        }
        p { (c.app.lists.optouts.len()) " opt-out(s) held. Look a number up on the "
            a href="/console/number" { "number page" } " to see its opt-out, or add one there." }
        @if s.role == AdminRole::Operator {
            (upload_form(s, "/console/optouts/upload", html! {
                "A header line " code { "number,source" } " (or " code { "number" }
                "), then one opt-out a line."
            }))
        }
    }
}

/// `POST /console/optouts/upload`: durable, all of it, before the answer.
pub(crate) async fn upload(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    form: Multipart,
) -> Response {
    let refuse = |status: StatusCode, errors: Vec<String>| {
        page_with(status, &s, "Opt-outs", body(&c, &s, None, &errors))
    };
    let entries = match super::uploaded_text(form)
        .await
        .map_err(|e| vec![e])
        .and_then(|t| crate::lists::optouts::parse_csv(&t))
    {
        Ok(e) => e,
        Err(errors) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let recorded =
        crate::admin::changes::record_optouts(&c.app, entries, super::who(&s, &peer)).await;
    let records = match recorded {
        Ok(r) => r,
        Err(e) => return refuse(e.status(), vec![e.to_string()]),
    };
    let app = &c.app;
    tracing::info!(count = records.len(), user = %s.user, "opt-outs uploaded");
    super::written(app).await;
    let done = format!(
        "{} opt-out(s) recorded: the next call to each of them is blocked.",
        records.len()
    );
    page(&s, "Opt-outs", body(&c, &s, Some(&done), &[]))
}
