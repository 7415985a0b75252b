//! The compliance console: server-rendered pages under `/console` on the admin listener, for
//! the compliance officer. Who may come in (`access`): a session from signing in with a
//! configured user's password, a client certificate mapped to a user, or, when no user is
//! configured and no token set, anyone on loopback (as the API allows). A form that changes
//! something must come from an operator and carry the session's CSRF token; each change is an
//! audited admin record naming the user.

mod audit;
mod calls;
mod consent;
mod emergency;
mod lists;
mod number;
mod optouts;
mod overview;
mod page;
mod reports;
mod session;
mod sign_in;

use super::listener::AdminPeer;
use super::records;
use crate::app::App;
use crate::config::{AdminRole, PasswordHashText};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
pub(crate) use session::Session;
use session::Sessions;
use std::sync::Arc;
use std::time::Duration;

/// A form's body is read whole to find its CSRF token: at most this many bytes...
const MAX_FORM_BYTES: usize = 64 << 10;
/// ...or, for an upload (`UPLOADS`), this many.
const MAX_UPLOAD_BYTES: usize = 8 << 20;
const UPLOADS: [&str; 2] = ["/console/optouts/upload", "/console/consent/upload"];

pub(crate) struct Console {
    app: Arc<App>,
    sessions: Sessions,
    /// Served over HTTPS: cookies are `Secure`, and forms come from an `https://` origin.
    https: bool,
    /// Checked when a sign-in names no user: as costly as a user's hash.
    decoy: PasswordHashText,
    /// Turns to check a password (`sign_in::CHECKS_AT_ONCE`).
    checking: tokio::sync::Semaphore,
    /// The chain verification under way or last done.
    verification: audit::Shared,
    /// A turn to write a CSV export (one at a time).
    exporting: tokio::sync::Semaphore,
}

pub(crate) fn router(app: Arc<App>) -> Router {
    let idle = Duration::from_secs(app.cfg.admin.session_idle_minutes.saturating_mul(60));
    let decoy = match app
        .cfg
        .admin
        .user
        .iter()
        .find_map(|u| u.password_hash.as_ref())
    {
        Some(h) => h.decoy_like(),
        None => PasswordHashText::of(&session::token()).expect("a long password"),
    };
    let console = Arc::new(Console {
        https: app.tls.admin.is_some(),
        sessions: Sessions::new(idle),
        decoy,
        checking: tokio::sync::Semaphore::new(sign_in::CHECKS_AT_ONCE),
        verification: audit::Shared::default(),
        exporting: tokio::sync::Semaphore::new(1),
        app,
    });
    let signed_in = Router::new()
        .route("/console", get(overview::show))
        .route("/console/number", get(number::show))
        .route("/console/calls", get(calls::show))
        .route("/console/calls.csv", get(calls::csv))
        .route("/console/number/dossier", get(number::dossier))
        .route(
            "/console/optouts",
            get(optouts::show).post(number::add_optout),
        )
        .route(
            "/console/optouts/upload",
            post(optouts::upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/console/consent", get(consent::show))
        .route(
            "/console/consent/upload",
            post(consent::upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/console/emergency",
            get(emergency::show).post(emergency::set),
        )
        .route("/console/lists", get(lists::show))
        .route("/console/lists/reload", post(lists::reload))
        .route("/console/audit", get(audit::show))
        .route("/console/audit/verify", post(audit::start))
        .route("/console/reports", get(reports::show))
        .route("/console/reports/view", get(reports::view))
        .route("/console/sign-out", post(sign_in::sign_out))
        .layer(middleware::from_fn_with_state(console.clone(), access));
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        // The address people type with its slash.
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console/sign-in",
            get(sign_in::form).post(sign_in::sign_in),
        )
        .route("/console/style.css", get(style))
        .merge(signed_in)
        .with_state(console)
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        page::STYLE,
    )
        .into_response()
}

/// Who a request comes from.
enum Who {
    /// A session that has not ended.
    Session(Session),
    /// A session started now (a client certificate, or loopback with no users): its cookie
    /// goes with the answer.
    New(String, Session),
    SignIn,
    Refused(&'static str),
}

fn who_is(c: &Console, headers: &HeaderMap, peer: &AdminPeer) -> Who {
    if let Some(s) = session::cookie_of(headers).and_then(|id| c.sessions.get(id)) {
        return Who::Session(s);
    }
    let users = &c.app.cfg.admin.user;
    let by_cert = peer.cert.as_deref().and_then(|cert| {
        users
            .iter()
            .find(|u| u.certificate.as_deref() == Some(cert))
    });
    if let Some(u) = by_cert {
        let how = format!("client certificate {}", peer.cert.as_deref().unwrap_or(""));
        let (id, s) = c.sessions.reuse_or_start(&u.name, u.role, &how);
        return Who::New(id, s);
    }
    if !users.is_empty() {
        return Who::SignIn;
    }
    if c.app.cfg.admin_token().is_none() && peer.addr.ip().is_loopback() {
        let how = "loopback, no console users configured";
        let (id, s) = c
            .sessions
            .reuse_or_start("loopback", AdminRole::Operator, how);
        return Who::New(id, s);
    }
    Who::Refused(
        "No console user is configured: add an [[admin.user]] table to the configuration \
         (`callgate admin hash-password` makes its password_hash).",
    )
}

/// Let in who may come in; refuse a change from a viewer, from another site or without the
/// session's CSRF token. The handler finds the `Session` in the request's extensions.
async fn access(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<AdminPeer>,
    req: Request,
    next: Next,
) -> Response {
    let (session, cookie) = match who_is(&c, req.headers(), &peer) {
        Who::Session(s) => (s, None),
        Who::New(id, s) => (s, Some(id)),
        Who::SignIn => return to_sign_in(&req),
        Who::Refused(why) => return page::refused(StatusCode::FORBIDDEN, why),
    };
    let mut req = match *req.method() == Method::POST {
        true => match guard_change(&session, c.https, req).await {
            Ok(r) => r,
            Err(refusal) => return refusal,
        },
        false => req,
    };
    req.extensions_mut().insert(session);
    let mut answer = next.run(req).await;
    if let Some(id) = cookie {
        if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, c.https)) {
            answer.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    answer
}

/// To the sign-in page, back here after it; a change sent after the session ended is not
/// done (and not sent again by the browser after signing in), and the page says so.
fn to_sign_in(req: &Request) -> Response {
    if req.method() != Method::GET {
        return Redirect::to("/console/sign-in?expired=1").into_response();
    }
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/console");
    let back: String = url_encode(here);
    Redirect::to(&format!("/console/sign-in?next={back}")).into_response()
}

pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Forms anyone signed in may send: they change nothing callgate decides with.
const CHANGE_NOTHING: [&str; 2] = ["/console/sign-out", "/console/audit/verify"];

/// A form that changes something: from this site (`Origin`, when the browser sends it),
/// from an operator (signing out is anyone's), with the session's CSRF token.
async fn guard_change(s: &Session, https: bool, req: Request) -> Result<Request, Response> {
    let forbid = |why: &str| page::refused(StatusCode::FORBIDDEN, why);
    if !same_origin(req.headers(), https) {
        return Err(forbid("This form was sent from another site."));
    }
    if s.role != AdminRole::Operator && !CHANGE_NOTHING.contains(&req.uri().path()) {
        return Err(forbid(
            "You are signed in as a viewer: viewers may look but not change anything.",
        ));
    }
    let (parts, body) = req.into_parts();
    let limit = match UPLOADS.contains(&parts.uri.path()) {
        true => MAX_UPLOAD_BYTES,
        false => MAX_FORM_BYTES,
    };
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| page::refused(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
    let content_type = parts.headers.get(header::CONTENT_TYPE);
    let boundary = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    let token = match boundary {
        Some(b) => multipart_field(&bytes, b, "csrf").await,
        None => form_field(&bytes, "csrf"),
    };
    if !token.is_some_and(|t| session::same_token(&t, &s.csrf)) {
        return Err(forbid(
            "The form did not carry this session's security token (CSRF): reload the page and \
             send it again.",
        ));
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

/// The text of an upload form's `file` field.
pub(crate) async fn uploaded_text(mut form: axum::extract::Multipart) -> Result<String, String> {
    while let Some(field) = form.next_field().await.map_err(|e| e.body_text())? {
        if field.name() == Some("file") {
            let bytes = field.bytes().await.map_err(|e| e.body_text())?;
            return String::from_utf8(bytes.to_vec())
                .map_err(|_| "the file is not text (UTF-8)".into());
        }
    }
    Err("no file was sent".into())
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    fields.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A field of a `multipart/form-data` body (a file upload's form).
async fn multipart_field(body: &axum::body::Bytes, boundary: String, name: &str) -> Option<String> {
    let mut form = multer::Multipart::with_reader(std::io::Cursor::new(body.clone()), boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

/// Whether the request's `Origin`, if the browser sent one, is this console: its scheme and
/// the host the request was sent to (a reverse proxy in front must keep `Host`).
fn same_origin(headers: &HeaderMap, https: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let scheme = if https { "https" } else { "http" };
    origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
}

/// A printable document (a dossier, a report) made off the async threads from the records
/// index brought up to the log, `make` given the index and the log's files; or a page saying
/// why there is none.
pub(crate) async fn document(
    app: &Arc<App>,
    make: impl FnOnce(&App, &crate::records::cluster::Logs) -> Result<String, String> + Send + 'static,
) -> Response {
    let app = app.clone();
    let made = tokio::task::spawn_blocking(move || {
        let logs = records::current_logs(&app).map_err(|e| e.to_string())?;
        make(&app, &logs)
    })
    .await;
    match made.unwrap_or_else(|e| Err(e.to_string())) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => page::refused(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// Wait until the audit records of a change are written: the page that follows shows the
/// change in the history the records index reads from the log.
pub(crate) async fn written(app: &Arc<App>) {
    let app = app.clone();
    let _ = tokio::task::spawn_blocking(move || app.audit.flush()).await;
}

/// Who made a change, for its audit record: the user, how they signed in, from where.
pub(crate) fn who(s: &Session, peer: &AdminPeer) -> String {
    format!("{} (console: {}) from {}", s.user, s.how, peer.addr)
}
