//! Signing in (a configured user's password) and out.

use super::page::bare;
use super::{session, Console, Session};
use crate::admin::listener::AdminPeer;
use crate::config::PasswordHashText;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// A wrong name or password is answered after this long, to slow guessing.
const FAILED_DELAY: Duration = Duration::from_millis(750);

/// Checked when the name is no user's.
static UNKNOWN: LazyLock<PasswordHashText> = LazyLock::new(|| {
    PasswordHashText::of("no user has this name").expect("a hash of a long password")
});

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

/// Where to go after signing in: a console page only (never another site).
fn next_page(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

fn sign_in_page(status: StatusCode, next: &str, error: Option<&str>, users: bool) -> Response {
    bare(
        status,
        "Sign in",
        html! {
            @if let Some(e) = error { p.bad role="alert" { (e) } }
            @if users {
                form method="post" action="/console/sign-in" {
                    input type="hidden" name="next" value=(next);
                    label for="name" { "Name" }
                    input type="text" id="name" name="name" autocomplete="username" required autofocus;
                    label for="password" { "Password" }
                    input type="password" id="password" name="password" autocomplete="current-password" required;
                    p { button type="submit" { "Sign in" } }
                }
            } @else {
                p { "No console user is configured. Add an " code { "[[admin.user]]" }
                    " table to the configuration (" code { "callgate admin hash-password" }
                    " makes its password_hash), or open the console from this machine with no \
                     admin token set." }
            }
        },
    )
}

pub(crate) async fn form(State(c): State<Arc<Console>>, Query(q): Query<Next>) -> Response {
    let users = !c.app.cfg.admin.user.is_empty();
    sign_in_page(StatusCode::OK, next_page(q.next.as_deref()), None, users)
}

pub(crate) async fn sign_in(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    headers: axum::http::HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    let next = next_page(f.next.as_deref()).to_string();
    let users = !c.app.cfg.admin.user.is_empty();
    if !super::same_origin(&headers) {
        let why = "This form was sent from another site.";
        return sign_in_page(StatusCode::FORBIDDEN, &next, Some(why), users);
    }
    let user = c
        .app
        .cfg
        .admin
        .user
        .iter()
        .find(|u| u.name == f.name)
        .cloned();
    let checked = tokio::task::spawn_blocking(move || {
        // An unknown name costs the same hash check: the time taken does not tell names.
        let hash = user.as_ref().and_then(|u| u.password_hash.as_ref());
        let matches = hash.unwrap_or(&UNKNOWN).matches(&f.password);
        let matches = matches && hash.is_some();
        user.filter(|_| matches)
    })
    .await
    .ok()
    .flatten();
    let Some(user) = checked else {
        tracing::warn!(peer = %peer.addr, "console: a sign-in with a wrong name or password");
        tokio::time::sleep(FAILED_DELAY).await;
        let why = "Wrong name or password.";
        return sign_in_page(StatusCode::UNAUTHORIZED, &next, Some(why), users);
    };
    let (id, _) = c.sessions.start(&user.name, user.role, "password");
    tracing::info!(user = %user.name, peer = %peer.addr, "console: signed in");
    let mut answer = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, c.https)) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}

pub(crate) async fn sign_out(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(id) = session::cookie_of(&headers) {
        c.sessions.end(id);
    }
    tracing::info!(user = %s.user, "console: signed out");
    let mut answer = Redirect::to("/console/sign-in").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie(c.https)) {
        answer.headers_mut().append(header::SET_COOKIE, v);
    }
    answer
}
