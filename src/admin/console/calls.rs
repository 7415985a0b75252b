//! Calls: the call records of a period, searched by campaign, verdict, reason, disposition
//! and number through the records index, a page at a time, and the whole result as CSV.

use super::page::{notice, page, page_with};
use super::{url_encode, Console, Session};
use crate::app::App;
use crate::call::{Reason, Verdict};
use crate::records::cluster::{self, Cursor};
use crate::records::export::{cell, csv_header, csv_row};
use crate::records::index::{each_line, Kind, Query};
use crate::records::Disposition;
use axum::extract::{Query as Params, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Calls on a page.
const PAGE: u32 = 100;
/// Calls in one CSV: past this, narrow the search or use `callgate records export`.
const MAX_CSV: u32 = 200_000;

/// The search, as the form sends it (every field may be empty).
#[derive(Deserialize, Serialize, Default, Clone)]
pub(crate) struct Search {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    disposition: String,
    /// The previous page's last call.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    after: String,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Search {
    /// The index query and where the page starts in each instance's log, or what is wrong
    /// with the search.
    fn query(&self, limit: u32) -> Result<(Query, Cursor), String> {
        use super::super::records::{number, time};
        let verdict = some(&self.verdict);
        if let Some(v) = verdict.as_deref().filter(|v| Verdict::parse(v).is_none()) {
            return Err(format!("verdict `{v}`: not a verdict"));
        }
        let reason = some(&self.reason);
        if let Some(r) = reason.as_deref().filter(|r| Reason::from_code(r).is_none()) {
            return Err(format!("reason `{r}`: not a reason code"));
        }
        let disposition = some(&self.disposition);
        if let Some(d) = disposition
            .as_deref()
            .filter(|d| Disposition::parse(d).is_none())
        {
            return Err(format!("disposition `{d}`: not a disposition"));
        }
        let cursor = some(&self.after)
            .map(|a| a.parse::<Cursor>().map_err(|e| format!("after: {e}")))
            .transpose()?
            .unwrap_or_default();
        let q = Query {
            number: some(&self.number).as_deref().map(number).transpose()?,
            from: time(&some(&self.from), "from", false)?,
            to: time(&some(&self.to), "to", true)?,
            campaign: some(&self.campaign),
            kinds: vec![Kind::Call],
            verdict,
            reason,
            disposition,
            limit: Some(limit),
            ..Query::default()
        };
        Ok((q, cursor))
    }

    /// The search as a query string (for the next page and the CSV link).
    fn link(&self, path: &str, after: Option<&str>) -> String {
        let mut s = Search {
            after: String::new(),
            ..self.clone()
        };
        if let Some(a) = after {
            s.after = a.to_string();
        }
        let query = serde_urlencoded::to_string(&s).unwrap_or_default();
        format!("{path}?{query}")
    }
}

/// A page of the call records a query found in every instance's log, in time order, and
/// where the next page starts.
fn calls(app: &App, q: &Query, cursor: &Cursor) -> Result<Page, String> {
    let logs = super::super::records::current_logs(app).map_err(|e| e.to_string())?;
    let limit = q.limit.unwrap_or(PAGE) as usize;
    let (hits, next) = cluster::page(&logs, q, cursor, limit).map_err(|e| e.to_string())?;
    let calls = hits
        .iter()
        .filter_map(|h| serde_json::from_slice::<Value>(&h.line).ok())
        .filter_map(|mut r| r.get_mut("call").map(Value::take))
        .collect();
    Ok(Page {
        calls,
        next: next.to_string(),
        skipped: logs.skipped,
    })
}

/// A page of calls, where the next starts, and the instances whose records are not in it.
struct Page {
    calls: Vec<Value>,
    next: String,
    skipped: Vec<String>,
}

/// The CSV of the calls a query finds, written as they are read (no record is kept), or
/// why not: more than `MAX_CSV` of them among it.
fn csv_of(app: &App, q: &Query) -> Result<String, String> {
    let logs = super::super::records::current_logs(app).map_err(|e| e.to_string())?;
    let mut found = Vec::with_capacity(1 + logs.others.len());
    for log in logs.iter() {
        found.push(log.index.query(q).map_err(|e| e.to_string())?);
    }
    if found.iter().map(Vec::len).sum::<usize>() > MAX_CSV as usize {
        return Err(format!(
            "More than {MAX_CSV} calls match: narrow the period, or use `callgate records export`."
        ));
    }
    // Instance by instance, each in its log's order (`records export --shared` merges by time).
    let mut out = csv_header();
    for (log, found) in logs.iter().zip(&found) {
        each_line(&log.files, found, |_, _, line| {
            let record: Option<Value> = serde_json::from_slice(line).ok();
            if let Some(call) = record.as_ref().and_then(|r| r.get("call")) {
                out.push_str(&csv_row(call));
            }
            Ok(ControlFlow::Continue(()))
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(out)
}

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Params(search): Params<Search>,
) -> Response {
    let (q, cursor) = match search.query(PAGE) {
        Ok(q) => q,
        Err(e) => {
            let body = html! { (notice(None, Some(&e))) (form(&search)) };
            return page_with(StatusCode::BAD_REQUEST, &s, "Calls", body);
        }
    };
    let app = c.app.clone();
    let found = tokio::task::spawn_blocking(move || calls(&app, &q, &cursor)).await;
    let found = found.unwrap_or_else(|e| Err(e.to_string()));
    let body = html! {
        (form(&search))
        @match &found {
            Ok(p) => {
                @for why in &p.skipped {
                    p.bad role="alert" { "Without another instance's calls: " (why) }
                }
                (results(&search, &p.calls, &p.next))
            },
            Err(e) => p.bad role="alert" { "The records index cannot answer: " (e) },
        }
    };
    page(&s, "Calls", body)
}

fn form(s: &Search) -> Markup {
    let verdicts = Verdict::ALL.map(|v| v.as_str());
    let dispositions = Disposition::ALL.map(|d| d.as_str());
    let reasons: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    html! {
        form.card.search method="get" action="/console/calls" {
            span { label for="from" { "From (UTC)" } input type="date" id="from" name="from" value=(s.from); }
            span { label for="to" { "To (UTC, included)" } input type="date" id="to" name="to" value=(s.to); }
            span { label for="number" { "Number" } input type="search" id="number" name="number" value=(s.number); }
            span { label for="campaign" { "Campaign" } input type="search" id="campaign" name="campaign" value=(s.campaign); }
            span { label for="verdict" { "Verdict" } (select("verdict", &verdicts, &s.verdict)) }
            span { label for="reason" { "Reason" } (select("reason", &reasons, &s.reason)) }
            span { label for="disposition" { "Disposition" } (select("disposition", &dispositions, &s.disposition)) }
            span { button type="submit" { "Search" } }
        }
    }
}

fn select(name: &str, options: &[&str], chosen: &str) -> Markup {
    html! {
        select id=(name) name=(name) {
            option value="" selected[chosen.is_empty()] { "any" }
            @for o in options { option value=(o) selected[*o == chosen] { (o) } }
        }
    }
}

fn results(search: &Search, calls: &[Value], next: &str) -> Markup {
    let field = |c: &Value, k: &str| {
        let v = cell(c, k);
        if v.is_empty() {
            "-".to_string()
        } else {
            v
        }
    };
    let duration = |c: &Value| {
        c.get("duration_ms")
            .and_then(Value::as_u64)
            .map(|ms| format!("{}.{:03} s", ms / 1000, ms % 1000))
            .unwrap_or_else(|| "-".into())
    };
    html! {
        p {
            (calls.len()) " call(s) on this page. "
            a href=(search.link("/console/calls.csv", None)) { "Export the whole search as CSV" }
        }
        @if calls.is_empty() {
            p.muted { "No call matches." }
        } @else {
            table {
                thead { tr {
                    th { "INVITE (UTC)" } th { "Called" } th { "Caller ID" } th { "Campaign" }
                    th { "Verdict" } th { "Reasons" } th { "Disposition" } th { "Duration" } th { "Ended by" }
                } }
                tbody {
                    @for c in calls {
                        @let called = field(c, "called");
                        tr {
                            td { (field(c, "invite_at")) }
                            td { a href=(format!("/console/number?n={}", url_encode(&called))) { (called) } }
                            td { (field(c, "caller_id")) }
                            td { (field(c, "campaign")) }
                            td { (field(c, "verdict")) }
                            td.mono { (field(c, "reasons")) }
                            td { (field(c, "disposition")) }
                            td.n { (duration(c)) }
                            td { (field(c, "ended_by")) }
                        }
                    }
                }
            }
            @if calls.len() as u32 == PAGE {
                p { a href=(search.link("/console/calls", Some(next))) { "Next page" } }
            }
        }
    }
}

/// `GET /console/calls.csv?...`: every call the search finds, as `records export` writes them.
pub(crate) async fn csv(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Params(search): Params<Search>,
) -> Response {
    let q = match search.query(MAX_CSV + 1) {
        Ok((q, _)) => q,
        Err(e) => {
            return page_with(
                StatusCode::BAD_REQUEST,
                &s,
                "Calls",
                html! { (notice(None, Some(&e))) (form(&search)) },
            );
        }
    };
    // One export at a time: each may hold a large file in memory while it is written.
    let Ok(_turn) = c.exporting.try_acquire() else {
        let why = "Another export is being written: try again in a moment.";
        return page_with(
            StatusCode::TOO_MANY_REQUESTS,
            &s,
            "Calls",
            html! { (notice(None, Some(why))) (form(&search)) },
        );
    };
    let app = c.app.clone();
    let written = tokio::task::spawn_blocking(move || csv_of(&app, &q)).await;
    let out = match written.unwrap_or_else(|e| Err(e.to_string())) {
        Ok(out) => out,
        Err(why) => {
            return page_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                &s,
                "Calls",
                html! { (notice(None, Some(&why))) (form(&search)) },
            );
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"calls.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response()
}
