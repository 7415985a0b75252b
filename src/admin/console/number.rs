//! One number: what would happen to a call to it now and why, its opt-out and consent
//! records, its whole history from the records index (every decision and call), the printable
//! dossier, and for operators, adding an opt-out.

use super::page::{csrf_field, notice, page, page_with, refused};
use super::{url_encode, Console, Session};
use crate::admin::listener::AdminPeer;
use crate::app::App;
use crate::call::Verdict;
use crate::config::AdminRole;
use crate::number::E164;
use crate::policy::{CheckRequest, Decision};
use crate::records::dossier::{self, Entry, Kinds};
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use chrono::NaiveDate;
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub(crate) struct Ask {
    /// The number as typed.
    n: Option<String>,
    /// What was just done (after a form).
    done: Option<String>,
}

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(q): Query<Ask>,
) -> Response {
    let typed = q.n.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let Some(typed) = typed else {
        return page(&s, "Number", search_form(""));
    };
    // Said only when it is so: a link cannot make the page claim an opt-out.
    let opted_out = typed
        .parse::<E164>()
        .is_ok_and(|n| c.app.lists.optouts.contains(n));
    let done = match q.done.as_deref() {
        Some("optout") if opted_out => {
            Some("Opt-out recorded: the next call to this number is blocked.")
        }
        _ => None,
    };
    number_page(&c, &s, typed, done, None, StatusCode::OK).await
}

/// The number's page, with a notice (`done`) or an error from a form.
async fn number_page(
    c: &Arc<Console>,
    s: &Session,
    typed: &str,
    done: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let n: E164 = match typed.parse() {
        Ok(n) => n,
        Err(e) => {
            let body = html! {
                (notice(None, Some(&format!("`{typed}` is not a number callgate can call: {e}"))))
                (search_form(typed))
            };
            return page_with(StatusCode::BAD_REQUEST, s, "Number", body);
        }
    };
    let app = c.app.clone();
    let history = tokio::task::spawn_blocking(move || history(&app, n)).await;
    let history = history.unwrap_or_else(|e| Err(e.to_string()));
    let decision = c.app.gate.check(&CheckRequest {
        number: n.to_string(),
        ..CheckRequest::default()
    });
    let body = html! {
        (notice(done, error))
        (search_form(typed))
        h2 { "A call now" }
        @match &decision {
            Ok(d) => (explain(d)),
            Err(e) => p.bad { (e) },
        }
        h2 { "Opt-out" }
        (optout(&c.app, s, n))
        h2 { "Consent and business relationships" }
        (consent(&c.app, n))
        h2 { "History" }
        @match &history {
            Ok((entries, counts)) => (timeline(entries, counts, n, c.app.clock.now().date_naive())),
            Err(e) => p.bad role="alert" { "The records index cannot answer: " (e) },
        }
    };
    page_with(status, s, &format!("Number {n}"), body)
}

fn search_form(typed: &str) -> Markup {
    html! {
        form.card method="get" action="/console/number" {
            label for="n" { "Number" }
            input type="search" id="n" name="n" value=(typed) placeholder="(415) 555-0100" required;
            " " button type="submit" { "Look up" }
        }
    }
}

fn explain(d: &Decision) -> Markup {
    let checks = crate::policy::explain::checks(d);
    html! {
        div.card {
            p {
                @if d.verdict.forwards() { strong.ok { "Would be forwarded" } }
                @else { strong.bad { "Would be blocked" } }
                @if !matches!(d.verdict, Verdict::Allowed | Verdict::Blocked) {
                    " (" (d.verdict.as_str()) ")"
                }
            }
            @if !d.reasons.is_empty() {
                ul { @for r in d.reasons.iter() { li { (r.text()) " " span.muted.mono { (r.code()) } } } }
            }
            details {
                summary { "Every check, in order" }
                table {
                    thead { tr { th { "Check" } th { "Outcome" } th { "Source" } } }
                    tbody {
                        @for c in &checks {
                            tr {
                                td { (c["check"].as_str().unwrap_or("-")) }
                                td { (c["outcome"].as_str().unwrap_or("-")) }
                                td.muted { (c.get("source").and_then(|s| s.as_str()).unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn optout(app: &App, s: &Session, n: E164) -> Markup {
    html! {
        @match app.lists.optouts.when(n) {
            Some(at) => p.bad { "Opted out on " (at.format("%Y-%m-%d %H:%M UTC")) "." },
            None => p { "Not opted out." },
        }
        @if s.role == AdminRole::Operator {
            form.card method="post" action="/console/optouts" {
                (csrf_field(s))
                input type="hidden" name="number" value=(n.to_string());
                label for="source" { "Source (how the request came in)" }
                input type="text" id="source" name="source" placeholder="phone call, agent 7";
                " " button type="submit" { "Add opt-out" }
            }
        }
    }
}

pub(super) fn consent(app: &App, n: E164) -> Markup {
    let defaults = &app.gate.rules().policy.rules.consent;
    let records = app.gate.state.consent.get(n).unwrap_or_default();
    html! {
        @if records.is_empty() {
            p.muted { "None held." }
        } @else {
            table {
                thead { tr { th { "Kind" } th { "Seller" } th { "Campaign" } th { "Captured" } th { "Expires" } th { "Evidence" } } }
                tbody {
                    @for r in records.iter() {
                        tr {
                            td { (format!("{:?}", r.kind).to_lowercase()) }
                            td { (r.seller.as_deref().unwrap_or("-")) }
                            td { (r.campaign.as_deref().unwrap_or("-")) }
                            td { (r.captured) }
                            td { (r.expiry(defaults).map(|d| d.to_string()).unwrap_or_else(|| "none".into())) }
                            td.mono { (r.evidence.as_deref().unwrap_or("-")) }
                        }
                    }
                }
            }
        }
    }
}

/// Every record of the number, from the index and the log (the dossier's gathering).
/// The number's newest records and its counts (without the chain walk: the dossier does that).
fn history(app: &App, n: E164) -> Result<(Vec<Entry>, Kinds), String> {
    let logs = super::super::records::current_logs(app).map_err(|e| e.to_string())?;
    let ask = dossier::Ask {
        number: n.to_string(),
        from: None,
        to: None,
    };
    dossier::history_all(&logs, &ask, SHOWN).map_err(|e| e.to_string())
}

/// The newest records the page shows; the dossier has them all.
const SHOWN: usize = 200;

fn timeline(entries: &[Entry], c: &Kinds, n: E164, today: NaiveDate) -> Markup {
    let all = c.decisions + c.calls + c.admin;
    let older = all.saturating_sub(entries.len() as u64);
    let year_ago = today - chrono::Duration::days(365);
    html! {
        p {
            (c.decisions) " decision(s), " (c.calls) " call record(s), " (c.admin)
            " opt-out, consent or other record(s)."
        }
        @if entries.is_empty() {
            p.muted { "No record of this number." }
        } @else {
            @let cluster = entries.iter().any(|e| e.instance.is_some());
            table {
                thead { tr {
                    th { "Time (UTC)" } th { "Record" } th { "Campaign" }
                    @if cluster { th { "Instance" } }
                } }
                tbody {
                    @for e in entries {
                        tr {
                            td { (e.ts.as_deref().unwrap_or("-")) }
                            td { (dossier::headline(e)) }
                            td { (dossier::campaign_of(e)) }
                            @if cluster { td { (e.instance.as_deref().unwrap_or("this one")) } }
                        }
                    }
                }
            }
            @if older > 0 {
                p.muted { "The newest " (SHOWN) " records; the " (older) " before them are in the dossier." }
            }
        }
        form.card.search method="get" action="/console/number/dossier" {
            input type="hidden" name="n" value=(n.to_string());
            span { label for="dfrom" { "Dossier from (UTC)" } input type="date" id="dfrom" name="from" value=(year_ago); }
            span { label for="dto" { "to (included)" } input type="date" id="dto" name="to" value=(today); }
            span { button type="submit" { "Printable dossier" } }
            p.muted { "The dossier checks each line's hash chain through every day of its period \
                (about two seconds a month of a busy log)." }
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct DossierAsk {
    n: Option<String>,
    /// The period (UTC days, `to` included); none: the whole log.
    from: Option<String>,
    to: Option<String>,
}

/// The printable dossier of the number over a period (as `records dossier` writes it).
pub(crate) async fn dossier(
    State(c): State<Arc<Console>>,
    Query(q): Query<DossierAsk>,
) -> Response {
    use super::super::records::time;
    let some = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let asked = (
        q.n.as_deref()
            .unwrap_or("")
            .parse::<E164>()
            .map_err(|e| format!("Not a number: {e}")),
        time(&some(&q.from), "from", false),
        time(&some(&q.to), "to", true),
    );
    let ask = match asked {
        (Ok(n), Ok(from), Ok(to)) => dossier::Ask {
            number: n.to_string(),
            from,
            to,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return refused(StatusCode::BAD_REQUEST, &e)
        }
    };
    super::document(&c.app, move |app, logs| {
        let d = dossier::build_all(logs, &ask, app.clock.now()).map_err(|e| e.to_string())?;
        Ok(dossier::html(&d))
    })
    .await
}

#[derive(Deserialize)]
pub(crate) struct OptOutForm {
    number: String,
    #[serde(default)]
    source: String,
}

/// `POST /console/optouts`: durable before the answer; back to the number's page.
pub(crate) async fn add_optout(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    form: Result<Form<OptOutForm>, FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        let why = "The form was not complete: it needs the number.";
        return page_with(
            StatusCode::BAD_REQUEST,
            &s,
            "Number",
            html! { (notice(None, Some(why))) (search_form("")) },
        );
    };
    let n: E164 = match f.number.trim().parse() {
        Ok(n) => n,
        Err(e) => {
            let why = format!("`{}` is not a number callgate can call: {e}", f.number);
            return number_page(&c, &s, &f.number, None, Some(&why), StatusCode::BAD_REQUEST).await;
        }
    };
    let source = Some(f.source.trim().to_string()).filter(|s| !s.is_empty());
    match crate::admin::changes::record_optout(&c.app, n, source, super::who(&s, &peer)).await {
        Ok(_) => {
            super::written(&c.app).await;
            let to = format!(
                "/console/number?n={}&done=optout",
                url_encode(&n.to_string())
            );
            Redirect::to(&to).into_response()
        }
        Err(e) => {
            let why = format!("The opt-out was {e}");
            number_page(&c, &s, &n.to_string(), None, Some(&why), e.status()).await
        }
    }
}
