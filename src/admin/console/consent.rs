//! Consent and established business relationships: a number's records, and a CSV of them
//! uploaded by an operator (all of it or nothing, the bad line named), audited as the user's.

use super::page::{notice, page, page_with, upload_form};
use super::{Console, Session};
use crate::admin::changes::{record_consents, Refused};
use crate::admin::listener::AdminPeer;
use crate::config::AdminRole;
use crate::number::E164;
use axum::extract::{ConnectInfo, Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub(crate) struct Ask {
    n: Option<String>,
}

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Ask>,
) -> Response {
    let typed = q.n.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let (found, error) = match typed.map(str::parse::<E164>) {
        None => (None, None),
        Some(Ok(n)) => (Some(n), None),
        Some(Err(e)) => (
            None,
            Some(format!("`{}` is not a number: {e}", typed.unwrap_or(""))),
        ),
    };
    let status = match error {
        Some(_) => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    let body = body(&c, &s, typed.unwrap_or(""), found, None, error.as_deref());
    page_with(status, &s, "Consent", body)
}

fn body(
    c: &Console,
    s: &Session,
    typed: &str,
    found: Option<E164>,
    done: Option<&str>,
    error: Option<&str>,
) -> Markup {
    html! {
        (notice(done, error))
        p { (c.app.gate.state.consent.seq()) " consent record(s) entered in all." }
        form.card method="get" action="/console/consent" {
            label for="n" { "A number's consent and business relationships" }
            input type="search" id="n" name="n" value=(typed) required;
            " " button type="submit" { "Search" }
        }
        @if let Some(n) = found {
            h2 { (n.to_string()) }
            (super::number::consent(&c.app, n))
        }
        @if s.role == AdminRole::Operator {
            (upload_form(s, "/console/consent/upload", html! {
                "A header naming the columns (" code { "number,type,captured" }
                " needed; also seller, campaign, expires, evidence, address_state, time_zone), \
                 then one record a line."
            }))
        }
    }
}

/// `POST /console/consent/upload`: durable, all of it, before the answer.
pub(crate) async fn upload(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    form: Multipart,
) -> Response {
    let refuse = |status: StatusCode, why: String| {
        let why = format!("The file was refused; nothing was added. {why}");
        page_with(
            status,
            &s,
            "Consent",
            body(&c, &s, "", None, None, Some(&why)),
        )
    };
    let parsed = super::uploaded_text(form)
        .await
        .and_then(|t| crate::policy::consent::parse_csv("line", &t).map_err(|e| e.to_string()));
    let inputs = match parsed {
        Ok(i) if i.is_empty() => {
            return refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                "It holds no record.".into(),
            )
        }
        Ok(i) => i,
        Err(e) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
    };
    match record_consents(&c.app, inputs, super::who(&s, &peer)).await {
        Ok(recs) => {
            super::written(&c.app).await;
            let done = format!("{} consent record(s) recorded.", recs.len());
            page(&s, "Consent", body(&c, &s, "", None, Some(&done), None))
        }
        Err(Refused::Bad(e)) => refuse(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(Refused::Failed(status, e)) => refuse(status, e),
    }
}
