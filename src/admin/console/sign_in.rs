//! Signing in (a configured user's password) and out.

use super::page::bare;
use super::{session, Console, Session};
use crate::admin::listener::AdminPeer;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// A wrong name or password is answered after this long, to slow guessing.
const FAILED_DELAY: Duration = Duration::from_millis(750);

/// Password checks at once: each takes an Argon2 hash's memory and a core for tens of
/// milliseconds, and the SIP path needs the cores. More sign-ins at once are told to retry.
pub(crate) const CHECKS_AT_ONCE: usize = 2;

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
    /// Set when a change was sent after the session had ended.
    expired: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
    /// The form's own token (as its cookie holds).
    signin: Option<String>,
}

/// Where to go after signing in: a console page only (never another site).
fn next_page(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/console") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/console",
    }
}

/// What the sign-in page says, and to whom.
struct SignInPage<'a> {
    /// The browser's form token, kept: a page loaded twice (a browser may) has forms that
    /// all still match the cookie.
    token: Option<&'a str>,
    status: StatusCode,
    next: &'a str,
    error: Option<&'a str>,
    users: bool,
    https: bool,
}

impl SignInPage<'_> {
    /// The page, with the form token in the form and in its cookie (a new one if the
    /// browser has none that could be one).
    fn render(self) -> Response {
        let kept = self
            .token
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let token = kept.map_or_else(session::token, str::to_string);
        let mut answer = bare(
            self.status,
            "Sign in",
            html! {
                @if let Some(e) = self.error { p.bad role="alert" { (e) } }
                @if self.users {
                    form method="post" action="/console/sign-in" {
                        input type="hidden" name="next" value=(self.next);
                        input type="hidden" name="signin" value=(token);
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
        );
        let cookie = session::sign_in_cookie(&token, self.https);
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            answer.headers_mut().append(header::SET_COOKIE, v);
        }
        answer
    }
}

pub(crate) async fn form(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<Next>,
) -> Response {
    let expired = q.expired.is_some().then_some(
        "Your session had ended, and what you sent was not done: sign in and send it again.",
    );
    SignInPage {
        token: session::named_cookie(&headers, session::SIGN_IN_COOKIE),
        status: StatusCode::OK,
        next: next_page(q.next.as_deref()),
        error: expired,
        users: !c.app.cfg.admin.user.is_empty(),
        https: c.https,
    }
    .render()
}

pub(crate) async fn sign_in(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    headers: HeaderMap,
    form: Result<Form<Credentials>, FormRejection>,
) -> Response {
    let users = !c.app.cfg.admin.user.is_empty();
    let cookie = session::named_cookie(&headers, session::SIGN_IN_COOKIE);
    let page = |status, next: &str, error: &str| {
        SignInPage {
            token: cookie,
            status,
            next,
            error: Some(error),
            users,
            https: c.https,
        }
        .render()
    };
    let Ok(Form(f)) = form else {
        let why = "The form was not complete: give a name and a password.";
        return page(StatusCode::BAD_REQUEST, "/console", why);
    };
    let next = next_page(f.next.as_deref()).to_string();
    let same_form =
        matches!((cookie, f.signin.as_deref()), (Some(a), Some(b)) if session::same_token(a, b));
    if !same_form || !super::same_origin(&headers, c.https) {
        let why = "This sign-in did not come from this console's own form: sign in again.";
        return page(StatusCode::FORBIDDEN, &next, why);
    }
    let Ok(_turn) = c.checking.try_acquire() else {
        let why = "Too many sign-ins at once: try again in a moment.";
        return page(StatusCode::TOO_MANY_REQUESTS, &next, why);
    };
    let user = c
        .app
        .cfg
        .admin
        .user
        .iter()
        .find(|u| u.name == f.name)
        .cloned();
    let decoy = c.decoy.clone();
    let checked = tokio::task::spawn_blocking(move || {
        // A name that is no user's costs the same hash check: the time does not tell names.
        let hash = user.as_ref().and_then(|u| u.password_hash.as_ref());
        let matches = hash.unwrap_or(&decoy).matches(&f.password);
        let matches = matches && hash.is_some();
        user.filter(|_| matches)
    })
    .await
    .ok()
    .flatten();
    let Some(user) = checked else {
        tracing::warn!(peer = %peer.addr, "console: a sign-in with a wrong name or password");
        tokio::time::sleep(FAILED_DELAY).await;
        return page(StatusCode::UNAUTHORIZED, &next, "Wrong name or password.");
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
    headers: HeaderMap,
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

#[cfg(test)]
mod tests {
    use super::next_page;

    #[test]
    fn after_signing_in_only_a_console_page_is_next() {
        assert_eq!(
            next_page(Some("/console/number?n=1")),
            "/console/number?n=1"
        );
        for hostile in [
            "https://evil.example",
            "//evil.example",
            "/console//evil",
            "/\\evil",
            "/v1/optouts",
        ] {
            assert_eq!(next_page(Some(hostile)), "/console", "{hostile}");
        }
    }
}
