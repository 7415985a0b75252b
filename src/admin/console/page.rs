//! The console's page frame: head, navigation, who is signed in, the stylesheet (served
//! from the binary: the console works with no internet access). Every value is escaped by
//! `maud`.

use super::session::Session;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

pub(crate) const STYLE: &str = include_str!("style.css");

/// The pages in the navigation: path and title.
const NAV: &[(&str, &str)] = &[
    ("/console", "Overview"),
    ("/console/number", "Number"),
    ("/console/calls", "Calls"),
    ("/console/optouts", "Opt-outs"),
    ("/console/consent", "Consent"),
    ("/console/emergency", "Emergency"),
    ("/console/lists", "Lists"),
    ("/console/audit", "Audit"),
    ("/console/reports", "Reports"),
];

/// A whole page for `s`, titled `title`, with `body` in its main part.
pub(crate) fn page(s: &Session, title: &str, body: Markup) -> Response {
    page_with(StatusCode::OK, s, title, body)
}

/// `page`, answered with `status` (a refusal that shows the page again with what was wrong).
pub(crate) fn page_with(status: StatusCode, s: &Session, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · callgate" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                header.top {
                    span.brand { "callgate" }
                    nav {
                        @for (href, name) in NAV {
                            a href=(href) aria-current=[(*name == title).then_some("page")] { (name) }
                        }
                    }
                    span.who {
                        (s.user) " · " (role_name(s)) " "
                        form.inline method="post" action="/console/sign-out" {
                            (csrf_field(s))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    html_response(status, markup)
}

/// A page with no session (sign-in, a refusal).
pub(crate) fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · callgate" }
                link rel="stylesheet" href="/console/style.css";
            }
            body { main.narrow { h1 { (title) } (body) } }
        }
    };
    html_response(status, markup)
}

/// A refusal that says why and changes nothing.
pub(crate) fn refused(status: StatusCode, why: &str) -> Response {
    bare(
        status,
        "Not done",
        html! { p.bad role="alert" { (why) } p { "Nothing was changed." } },
    )
}

pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// The hidden field every form that changes something carries.
pub(crate) fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

fn role_name(s: &Session) -> &'static str {
    match s.role {
        crate::config::AdminRole::Viewer => "viewer",
        crate::config::AdminRole::Operator => "operator",
    }
}

/// An operator's form to upload a CSV to `action`, with `help` on what the file holds.
pub(crate) fn upload_form(s: &Session, action: &str, help: Markup) -> Markup {
    html! {
        h2 { "Upload a CSV" }
        form.card method="post" action=(action) enctype="multipart/form-data" {
            (csrf_field(s))
            p.muted { (help) " All of it is added, or, if any line is bad, none." }
            input type="file" name="file" accept=".csv,text/csv,text/plain" required;
            " " button type="submit" { "Upload" }
        }
    }
}

/// A notice at the top of a page: what was just done, or what was wrong.
pub(crate) fn notice(ok: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = ok { p.ok role="status" { (m) } }
        @if let Some(m) = error { p.bad role="alert" { (m) } }
    }
}
