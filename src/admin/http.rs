//! The admin HTTP API: metrics, health, the "what would happen to this number" check,
//! opt-outs and reload. Loopback by default; with a token configured every endpoint but
//! `/healthz` requires `Authorization: Bearer <token>`; with `admin.tls_cert` it serves HTTPS,
//! and with `admin.client_ca` only clients with a certificate from those CAs get in.

use super::changes::{record_closures, record_consents, record_optout, Refused};
use super::listener::{AdminPeer, HttpsListener};
use crate::app::App;
use crate::call::Verdict;
use crate::number::E164;
use crate::policy::Decision;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::watch;

pub async fn serve(
    app: Arc<App>,
    listener: std::net::TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("admin listener");
    let tls = app.tls.admin.clone();
    let service = router(app).into_make_service_with_connect_info::<AdminPeer>();
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    let _ = match tls {
        Some(tls) => {
            let https = HttpsListener::new(listener, tls).expect("admin listener address");
            axum::serve(https, service)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(stop)
                .await
        }
    };
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/check", get(check))
        .route("/v1/optouts", post(add_optout))
        .route("/v1/reload", post(reload))
        .route("/v1/consent", post(add_consent).get(get_consent))
        .route("/v1/emergency", get(get_emergency).put(set_emergency))
        .route("/v1/records", get(super::records::list))
        .route("/v1/records/dossier", get(super::records::dossier))
        .route("/v1/records/prune", post(prune_records))
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .with_state(app.clone())
        // The console signs its users in itself (the bearer token is the API's).
        .merge(super::console::router(app))
}

async fn auth(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Some(token) = app.cfg.admin_token() {
        if req.uri().path() != "/healthz" {
            let ok = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
            if !ok {
                return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            }
        }
    }
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.refresh_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// JSON for the lists a decision used (also used by `/readyz`).
pub(crate) fn lists_json(app: &App) -> Value {
    let lists = app.lists.current();
    let now = app.clock.now();
    let (fresh, age, why) = app.gate.rules().policy.national_status(&lists, now);
    json!({
        "generation": lists.generation,
        "national": {"fresh": fresh, "age_seconds": age, "status": why,
                      "max_age_days": app.gate.rules().policy.config().national_max_age_days},
        "lists": lists.lists.iter().map(|l| json!({
            "id": l.meta.id, "kind": l.meta.kind, "version": l.meta.version(),
            "sha256": l.meta.sha256, "entries": l.meta.entries, "file": l.meta.file,
            "source_date": l.meta.source_date, "downloaded": l.meta.downloaded,
            "sample_data": l.meta.sample, "loaded_at": l.meta.loaded_at,
            "age_seconds": l.meta.age(now).map(|a| a.num_seconds()),
            "max_age_days": app.gate.rules().policy.max_age_days(l),
            "fresh": app.gate.rules().policy.list_fresh(l, now),
        })).collect::<Vec<_>>(),
        "unavailable": lists.unavailable,
        "optouts": {"entries": app.lists.optouts.len(), "seq": app.lists.optouts.seq()},
    })
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    match app.sip_loop_stalled() {
        None => "ok\n".into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let why = app.not_ready();
    let status = match why {
        None => StatusCode::OK,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let mut body = lists_json(&app);
    body["ready"] = json!(why.is_none());
    if let Some(why) = why {
        body["why"] = json!(why);
    }
    (status, Json(body))
}

/// Describe a decision for people: verdict, reasons with text, what SIP answer it would get.
pub(crate) fn decision_json(app: &App, input: &str, d: &Decision) -> Value {
    let reasons: Vec<Value> = d
        .reasons
        .iter()
        .map(|r| json!({"code": r.code(), "text": r.text()}))
        .collect();
    let sip_status = (d.verdict == Verdict::Blocked)
        .then(|| app.gate.rules().reject.status_for(d.reasons.primary()));
    let hits: Vec<Value> = d
        .lists
        .lists
        .iter()
        .enumerate()
        .filter(|(i, _)| d.list_hits & (1 << i) != 0)
        .map(|(_, l)| json!({"id": l.meta.id, "version": l.meta.version()}))
        .collect();
    json!({
        "number": input,
        "e164": d.number().map(|n| n.to_string()),
        "number_problem": d.called.as_ref().err().map(|e| e.to_string()),
        "verdict": d.verdict.as_str(),
        "forwarded": d.verdict.forwards(),
        "fail_open": d.fail_open,
        "reasons": reasons,
        "sip_status": sip_status,
        "matched_lists": hits,
        "optout": d.number().is_some_and(|n| app.lists.optouts.contains(n)),
        "optouts_seq": d.optouts_seq,
        "context": crate::policy::explain::context(d),
        "checks": crate::policy::explain::checks(d),
        "lists": lists_json(app),
    })
}

/// `GET /v1/check?number=...&at=...&campaign=...&call_type=...&caller_id=...`
async fn check(
    State(app): State<Arc<App>>,
    q: Result<Query<crate::policy::CheckRequest>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match app.gate.check(&q) {
        Ok(d) => Json(decision_json(&app, &q.number, &d)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with `number` and an optional `source`"
)]
struct OptOutBody {
    number: String,
    #[serde(default)]
    source: Option<String>,
}

/// A JSON request body, whatever its Content-Type says (the README's curl sends none): the
/// error says what was wrong, in JSON.
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        let why = format!("the body is not the JSON expected: {e}");
        Box::new(error(StatusCode::BAD_REQUEST, why))
    })
}

/// An error answer: `{"error": "..."}` with the status.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// Who made an admin change, for the audit log: the peer and how it was let in.
fn who(app: &App, peer: &AdminPeer) -> String {
    let how = match (&peer.cert, app.cfg.admin_token().is_some()) {
        (Some(c), true) => format!("client certificate {c}, bearer token"),
        (Some(c), false) => format!("client certificate {c}"),
        (None, true) => "bearer token".into(),
        (None, false) => "loopback, no token configured".into(),
    };
    format!("{} ({how})", peer.addr)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    #[serde(default)]
    dry_run: bool,
}

/// Remove audit files past `records.retention_days` (audited, final hashes kept).
async fn prune_records(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    body: axum::body::Bytes,
) -> Response {
    let body: PruneBody = if body.is_empty() {
        PruneBody::default()
    } else {
        match json_body(&body) {
            Ok(b) => b,
            Err(answer) => return *answer,
        }
    };
    let (app2, who) = (app.clone(), who(&app, &peer));
    match tokio::task::spawn_blocking(move || app2.prune_records(who, body.dry_run)).await {
        Ok(Ok(report)) => (StatusCode::OK, Json(json!(report))).into_response(),
        Ok(Err(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("prune stopped: {e}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn add_optout(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    body: axum::body::Bytes,
) -> Response {
    let body: OptOutBody = match json_body(&body) {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    let n: E164 = match body.number.parse() {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("`{}`: {e}", body.number)),
    };
    match record_optout(&app, n, body.source, who(&app, &peer)).await {
        Ok(rec) => (
            StatusCode::CREATED,
            Json(json!({"number": rec.number, "seq": rec.seq, "at": rec.at, "durable": true})),
        )
            .into_response(),
        Err(e) => error(e.status(), e.to_string()),
    }
}

async fn reload(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
) -> Response {
    let app2 = app.clone();
    let who = who(&app, &peer);
    let reloaded = tokio::task::spawn_blocking(move || app2.reload_files(who));
    let (lists, tls) = match reloaded.await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let tls_refused: Vec<Value> = tls
        .iter()
        .map(|(role, e)| json!({"role": role, "error": e, "kept": "the certificate in service"}))
        .collect();
    match lists {
        Ok(report) => {
            let status = if report.failed.is_empty() && tls_refused.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            app.log_list_health();
            (
                status,
                Json(json!({"report": report, "lists": lists_json(&app), "tls_refused": tls_refused})),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({"error": e.to_string(), "kept": "the lists in service are unchanged",
                "tls_refused": tls_refused}),
            ),
        )
            .into_response(),
    }
}

/// `POST /v1/consent`: a JSON array of records (or one object), or CSV (`Content-Type: text/csv`)
/// with a header line. All or nothing; 201 once fsynced.
async fn add_consent(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::policy::consent::{parse_csv, ConsentInput};
    let bad = |e: String| error(StatusCode::BAD_REQUEST, e);
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv") || v.starts_with("text/plain"))
        || !matches!(
            body.iter().find(|b| !b.is_ascii_whitespace()),
            Some(b'[' | b'{')
        );
    let inputs: Vec<ConsentInput> = if csv {
        match std::str::from_utf8(&body)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_csv("body", t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(e) => return bad(e),
        }
    } else {
        match serde_json::from_slice::<Vec<ConsentInput>>(&body)
            .or_else(|_| serde_json::from_slice::<ConsentInput>(&body).map(|r| vec![r]))
        {
            Ok(v) => v,
            Err(e) => return bad(format!("expected a JSON record or array of records: {e}")),
        }
    };
    if inputs.is_empty() {
        return bad("no records".into());
    }
    match record_consents(&app, inputs, who(&app, &peer)).await {
        Ok(recs) => {
            let first = recs.first().map(|r| r.seq).unwrap_or(0);
            let last = recs.last().map(|r| r.seq).unwrap_or(0);
            (
                StatusCode::CREATED,
                Json(json!({"records": recs.len(), "seq_first": first, "seq_last": last, "durable": true})),
            )
                .into_response()
        }
        Err(Refused::Bad(e)) => bad(e),
        Err(Refused::Failed(status, e)) => error(status, e),
    }
}

#[derive(Deserialize)]
struct NumberQuery {
    number: String,
}

/// `GET /v1/consent?number=...`: every consent / EBR / address record held for a number, with
/// its expiry and whether it is in force today for each campaign's seller.
async fn get_consent(State(app): State<Arc<App>>, Query(q): Query<NumberQuery>) -> Response {
    let n: E164 = match q.number.parse() {
        Ok(n) => n,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("`{}`: {e}", q.number)),
    };
    let live = app.gate.rules();
    let defaults = &live.policy.rules.consent;
    let recs: Vec<Value> = app
        .gate
        .state
        .consent
        .get(n)
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let mut v = json!(r.as_ref());
                    v["expires_effective"] = json!(r.expiry(defaults));
                    v
                })
                .collect()
        })
        .unwrap_or_default();
    Json(json!({
        "number": n.to_string(),
        "opted_out": app.lists.optouts.contains(n),
        "records": recs,
        "consent_seq": app.gate.state.consent.seq(),
    }))
    .into_response()
}

async fn get_emergency(State(app): State<Arc<App>>) -> Response {
    Json(app.gate.state.emergency.current()).into_response()
}

/// `PUT /v1/emergency {"states": ["LA"], "npas": [504]}`: replaces the closures (an empty
/// body object reopens everything). Durable before 200.
async fn set_emergency(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    body: axum::body::Bytes,
) -> Response {
    let closed: crate::policy::emergency::Closed = match json_body(&body) {
        Ok(b) => b,
        Err(answer) => return *answer,
    };
    match record_closures(&app, closed, who(&app, &peer)).await {
        Ok(true) => Json(app.gate.state.emergency.current()).into_response(),
        // Committed for the cluster, not yet applied here: say so rather than show the old.
        Ok(false) => (
            StatusCode::ACCEPTED,
            Json(json!({"committed": true, "in_force_here": false})),
        )
            .into_response(),
        Err(Refused::Bad(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(Refused::Failed(status, e)) => error(status, e),
    }
}
