//! `GET /v1/records` and `GET /v1/records/dossier`: the records index over HTTP, for the
//! console. Each answer reads the log past what the index holds first, so it is never behind
//! the log; records come from the log itself.

use crate::app::App;
use crate::number::E164;
use crate::records::dossier;
use crate::records::export::FindError;
use crate::records::index::{each_line, Index, IndexError, Kind, Pos, Query};
use axum::extract::{Query as Params, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::ops::ControlFlow;
use std::sync::Arc;

/// One page at most this many records...
const MAX_LIMIT: u32 = 1000;
/// ...and about this many bytes of them (a batch of consent records is one long line).
const PAGE_BYTES: usize = 8 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordsParams {
    number: Option<String>,
    from: Option<String>,
    to: Option<String>,
    campaign: Option<String>,
    /// `decision`, `call` or `admin`; several separated by commas.
    kind: Option<String>,
    verdict: Option<String>,
    /// A reason code the record has among its reasons.
    reason: Option<String>,
    /// An admin record's action (`optout_add`, `lists_reload`...).
    action: Option<String>,
    disposition: Option<String>,
    call_id: Option<String>,
    decision: Option<String>,
    /// The previous page's `next`.
    after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DossierParams {
    number: String,
    from: Option<String>,
    to: Option<String>,
    /// `json` (default) or `html`.
    format: Option<String>,
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    let message = e.to_string();
    tracing::error!(error = %message, "records query failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": message})),
    )
        .into_response()
}

pub(super) fn number(n: &str) -> Result<String, String> {
    n.parse::<E164>()
        .map(|e| e.to_string())
        .map_err(|e| format!("number `{n}`: {e}"))
}

/// A time bound: RFC 3339, or a day (`to` a day includes it).
pub(super) fn time(
    s: &Option<String>,
    key: &str,
    to: bool,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some(s) = s else { return Ok(None) };
    crate::records::period_bound(s, to)
        .map(Some)
        .ok_or_else(|| format!("{key} `{s}`: expected RFC 3339 or YYYY-MM-DD"))
}

/// A page's `after`: a place the index can hold (as a page's `next` gives).
pub(super) fn after(s: &str) -> Result<Pos, String> {
    let pos: Pos = s.parse()?;
    match crate::records::index::holds(&pos) {
        true => Ok(pos),
        false => Err(format!("after `{s}`: not a place in the log")),
    }
}

impl RecordsParams {
    fn query(self) -> Result<Query, String> {
        let kinds = match &self.kind {
            None => vec![],
            Some(k) => k
                .split(',')
                .map(|k| {
                    Kind::parse(k.trim())
                        .ok_or_else(|| format!("kind `{k}`: expected decision, call or admin"))
                })
                .collect::<Result<_, _>>()?,
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit {limit}: expected 1 to {MAX_LIMIT}"));
        }
        Ok(Query {
            number: self.number.as_deref().map(number).transpose()?,
            from: time(&self.from, "from", false)?,
            to: time(&self.to, "to", true)?,
            campaign: self.campaign,
            kinds,
            verdict: self.verdict,
            reason: self.reason,
            action: self.action,
            disposition: self.disposition,
            call_id: self.call_id,
            decision_id: self.decision,
            after: self.after.as_deref().map(after).transpose()?,
            limit: Some(limit),
            newest_first: false,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub(super) enum Failure {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Find(#[from] FindError),
    #[error("{dir}: {source}")]
    Log { dir: String, source: std::io::Error },
    #[error("the records index is being built ({0} of {1} files): ask again shortly")]
    Building(usize, usize),
}

/// The index of the audit directory, brought up to the log, the log's files, and what could
/// not be read. While callgate's own first pass builds a missing index, the answer is to wait.
pub(super) fn current_index(
    app: &App,
) -> Result<(Index, Vec<std::path::PathBuf>, Vec<String>), Failure> {
    if let (true, Some((done, all))) = (app.cfg.records.index, app.records_index.building()) {
        return Err(Failure::Building(done, all));
    }
    let dir = &app.cfg.audit.dir;
    let files = crate::audit::chain::audit_files(dir).map_err(|source| Failure::Log {
        dir: dir.display().to_string(),
        source,
    })?;
    let mut index = Index::open(dir)?;
    let done = index.catch_up(&files)?;
    let unread = done.failed.iter().map(|e| e.to_string()).collect();
    Ok((index, files, unread))
}

/// This instance's log and the copies of the other instances' (`records::cluster`), each
/// index brought up to its log.
pub(super) fn current_logs(app: &App) -> Result<crate::records::cluster::Logs, Failure> {
    use crate::records::cluster::{Logs, Opened, Source};
    if let (true, Some((done, all))) = (app.cfg.records.index, app.records_index.building()) {
        return Err(Failure::Building(done, all));
    }
    let own = Opened::open(Source {
        instance: None,
        dir: app.cfg.audit.dir.clone(),
    })?;
    Ok(Logs::with_others(own))
}

fn answer(result: Result<Result<Response, Failure>, tokio::task::JoinError>) -> Response {
    match result {
        Ok(Ok(r)) => r,
        Ok(Err(Failure::Building(done, all))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(json!({"error": Failure::Building(done, all).to_string()})),
        )
            .into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(e),
    }
}

/// `GET /v1/records?number=&from=&to=&campaign=&kind=&verdict=&reason=&action=&disposition=&call_id=&decision=&after=&limit=`:
/// one page of records in log order, and `next` to ask for the following page. Asked by
/// number, a batch of consent records shows that number's only.
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    Params(p): Params<RecordsParams>,
) -> Response {
    let q = match p.query() {
        Ok(q) => q,
        Err(e) => return bad(e),
    };
    answer(tokio::task::spawn_blocking(move || page(&app, &q)).await)
}

fn page(app: &App, q: &Query) -> Result<Response, Failure> {
    let (index, files, unread) = current_index(app)?;
    let found = index.query(q)?;
    let (mut records, mut bytes) = (Vec::with_capacity(found.len()), 0);
    let mut last = None;
    let mut cut = q.limit.is_some_and(|l| found.len() as u64 == u64::from(l));
    each_line(&files, &found, |_, f, line| {
        if bytes > 0 && bytes + line.len() > PAGE_BYTES {
            cut = true;
            return Ok(ControlFlow::Break(()));
        }
        bytes += line.len();
        let mut record: Value = serde_json::from_slice(line).unwrap_or(Value::Null);
        // The index keeps a Call-ID as its hash: the line itself says whether it is the one.
        if q.call_id
            .as_deref()
            .is_some_and(|c| call_id_of(&record) != Some(c))
        {
            return Ok(ControlFlow::Continue(()));
        }
        if let (Some(n), Some(admin)) = (&q.number, record.get_mut("admin")) {
            dossier::only_this_number(admin, n);
        }
        records.push(json!({"pos": f.pos.to_string(), "kind": f.kind, "record": record}));
        last = Some(f.pos.to_string());
        Ok(ControlFlow::Continue(()))
    })?;
    let next = last.filter(|_| cut);
    Ok(Json(json!({"records": records, "next": next, "unreadable": unread})).into_response())
}

/// A decision's or a call record's Call-ID.
fn call_id_of(record: &Value) -> Option<&str> {
    record
        .get("call_id")
        .or_else(|| record.get("call").and_then(|c| c.get("call_id")))
        .and_then(Value::as_str)
}

/// `GET /v1/records/dossier?number=&from=&to=&format=json|html`: the complaint dossier.
pub(crate) async fn dossier(
    State(app): State<Arc<App>>,
    Params(p): Params<DossierParams>,
) -> Response {
    let html = match p.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(f) => return bad(format!("format `{f}`: expected json or html")),
    };
    let ask = match (
        number(&p.number),
        time(&p.from, "from", false),
        time(&p.to, "to", true),
    ) {
        (Ok(number), Ok(from), Ok(to)) => dossier::Ask { number, from, to },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return bad(e),
    };
    let built = tokio::task::spawn_blocking(move || -> Result<Response, Failure> {
        let logs = current_logs(&app)?;
        let d = dossier::build_all(&logs, &ask, app.clock.now())?;
        Ok(match html {
            true => (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                dossier::html(&d),
            )
                .into_response(),
            false => Json(d).into_response(),
        })
    })
    .await;
    answer(built)
}
