//! Emergency closures: the states and area codes where marketing calls are closed (a declared
//! state of emergency), and an operator's change of them (durable, audited as the user's).

use super::page::{csrf_field, notice, page, page_with};
use super::{Console, Session};
use crate::admin::changes::Refused;
use crate::admin::listener::AdminPeer;
use crate::config::AdminRole;
use crate::policy::emergency::Closed;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    page(&s, "Emergency", body(&c, &s, None, None))
}

fn body(c: &Console, s: &Session, done: Option<&str>, error: Option<&str>) -> Markup {
    let closed = c.app.gate.state.emergency.current();
    let npas: Vec<String> = closed.npas.iter().map(u16::to_string).collect();
    html! {
        (notice(done, error))
        div.card {
            @if closed.states.is_empty() && closed.npas.is_empty() {
                p.ok { "Nothing is closed." }
            } @else {
                p.bad { "Closed to marketing calls: " }
                ul {
                    @if !closed.states.is_empty() { li { "states: " (closed.states.join(", ")) } }
                    @if !npas.is_empty() { li { "area codes: " (npas.join(", ")) } }
                }
            }
        }
        @if s.role == AdminRole::Operator {
            h2 { "Change the closures" }
            form.card method="post" action="/console/emergency" {
                (csrf_field(s))
                label for="states" { "States (two letters, separated by commas)" }
                input type="text" id="states" name="states" value=(closed.states.join(", "));
                label for="npas" { "Area codes (separated by commas)" }
                input type="text" id="npas" name="npas" value=(npas.join(", "));
                p.muted { "What is written here replaces what is closed; empty fields reopen everything." }
                button type="submit" { "Save the closures" }
            }
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ClosuresForm {
    #[serde(default)]
    states: String,
    #[serde(default)]
    npas: String,
}

fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split([',', ' ', ';'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
}

impl ClosuresForm {
    fn closed(&self) -> Result<Closed, String> {
        let states = items(&self.states).map(str::to_ascii_uppercase).collect();
        let npas = items(&self.npas)
            .map(|n| {
                n.parse::<u16>()
                    .map_err(|_| format!("`{n}` is not an area code"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Closed { states, npas })
    }
}

/// `POST /console/emergency`: the closures replaced, on disk before the answer.
pub(crate) async fn set(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    form: Result<Form<ClosuresForm>, FormRejection>,
) -> Response {
    let refuse_with = |status: StatusCode, why: String| {
        let why = format!("Nothing was changed: {why}");
        page_with(status, &s, "Emergency", body(&c, &s, None, Some(&why)))
    };
    let refuse = |why: String| refuse_with(StatusCode::BAD_REQUEST, why);
    let closed = match form
        .map_err(|e| e.body_text())
        .and_then(|Form(f)| f.closed())
    {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    match crate::admin::changes::record_closures(&c.app, closed, super::who(&s, &peer)).await {
        Ok(in_force) => {
            super::written(&c.app).await;
            let done = match in_force {
                true => "The closures are saved and in force.",
                false => {
                    "The closures are committed to the shared database; this instance \
                          applies them once it is back in touch with it."
                }
            };
            page(&s, "Emergency", body(&c, &s, Some(done), None))
        }
        Err(Refused::Bad(e)) => refuse(e),
        Err(Refused::Failed(status, e)) => refuse_with(status, e),
    }
}
