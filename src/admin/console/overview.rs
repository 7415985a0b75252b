//! The overview: whether calls are being decided and why not, every list with its age and
//! the days before it goes stale, today's decisions by verdict, the last 24 hours' blocks by
//! reason (a chart), alarms, and with a shared database the cluster's instances.

use super::page::{page, refused};
use super::{Console, Session};
use crate::app::App;
use crate::records::index::{Index, Kind, Query, Tally};
use crate::records::report::bars;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) async fn show(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
) -> Response {
    let app = c.app.clone();
    let counted = tokio::task::spawn_blocking(move || Counts::of(&app)).await;
    let counts = match counted {
        Ok(c) => c,
        Err(e) => return refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let body = html! {
        (readiness(&c.app))
        (alarms(&c.app, &counts))
        h2 { "Lists in service" }
        (lists(&c.app))
        h2 { "Today's decisions" span.muted { " (since 00:00 UTC)" } }
        (today(&counts))
        h2 { "Blocked in the last 24 hours, by reason" }
        (bars("Blocked calls by reason", &counts.blocked_by_reason))
        @if let Some(shared) = &c.app.shared {
            h2 { "Instances sharing this database" }
            (cluster(shared, c.app.cfg.shared.max_lag_ms).await)
        }
    };
    page(&s, "Overview", body)
}

/// Every instance of the cluster: when it started, when it last reported, how many changes
/// it had not applied then (red past the allowed lag).
async fn cluster(shared: &crate::shared::Shared, max_lag_ms: u64) -> Markup {
    let instances = match shared.instances().await {
        Ok(i) => i,
        Err(e) => {
            return html! { p.bad role="alert" { "The shared database did not answer: " (e) } }
        }
    };
    let late = |i: &crate::shared::Instance| i.seen_ago.as_millis() > u128::from(max_lag_ms);
    html! {
        table {
            tr { th { "Instance" } th { "Started (UTC)" } th { "Last report" } th { "Changes not applied" } th { "Version" } }
            @for i in &instances {
                tr class=[late(i).then_some("bad")] {
                    td { (i.name) }
                    td { (i.started_at.format("%Y-%m-%d %H:%M:%S")) }
                    td.n { (format!("{:.1} s ago", i.seen_ago.as_secs_f64())) }
                    td.n { (i.behind) }
                    td { (i.version) }
                }
            }
        }
    }
}

/// What the records index says about today and the last 24 hours.
struct Counts {
    /// Decisions today by verdict.
    verdicts: BTreeMap<String, u64>,
    /// Call records today by disposition.
    dispositions: BTreeMap<String, u64>,
    /// Blocked decisions in the last 24 h, by reason code (a decision may have several).
    blocked_by_reason: BTreeMap<String, u64>,
    /// Why the index could not answer.
    problem: Option<String>,
}

impl Counts {
    fn of(app: &App) -> Counts {
        let now = app.clock.now();
        let midnight = now.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let mut counts = Counts {
            verdicts: BTreeMap::new(),
            dispositions: BTreeMap::new(),
            blocked_by_reason: BTreeMap::new(),
            problem: None,
        };
        // One catch-up of each index for both counts; every instance's calls are counted.
        let asked = super::super::records::current_logs(app)
            .map_err(|e| e.to_string())
            .and_then(|logs| {
                let (mut today, mut day) = (Vec::new(), Vec::new());
                for log in logs.iter() {
                    today.extend(tally(&log.index, midnight, now)?);
                    day.extend(tally(&log.index, Some(now - Duration::hours(24)), now)?);
                }
                Ok((today, day))
            });
        let (today, day) = match asked {
            Ok(t) => t,
            Err(e) => {
                counts.problem = Some(e);
                return counts;
            }
        };
        for t in &today {
            match t.kind {
                Kind::Decision => *counts.verdicts.entry(t.verdict.clone()).or_default() += t.count,
                Kind::Call => {
                    *counts
                        .dispositions
                        .entry(t.disposition.clone())
                        .or_default() += t.count
                }
                Kind::Admin => {}
            }
        }
        let blocked = day
            .iter()
            .filter(|t| t.kind == Kind::Decision && t.verdict == "blocked");
        for t in blocked {
            for code in t.reasons.split_whitespace() {
                *counts
                    .blocked_by_reason
                    .entry(code.to_string())
                    .or_default() += t.count;
            }
        }
        counts
    }
}

fn tally(
    index: &Index,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<Vec<Tally>, String> {
    let q = Query {
        from,
        to: Some(to),
        ..Query::default()
    };
    index.tally(&q).map_err(|e| e.to_string())
}

fn readiness(app: &App) -> Markup {
    html! {
        div.card {
            @match app.not_ready() {
                None => p.ok { strong { "Ready." } " Calls are being decided with every list in service." },
                Some(why) => p.bad role="alert" { "Not ready: " (why) },
            }
        }
    }
}

fn alarms(app: &App, counts: &Counts) -> Markup {
    let m = &app.metrics;
    let mut alarms: Vec<String> = vec![];
    let write_errors = m.audit_write_errors.get();
    if write_errors > 0 {
        alarms.push(format!(
            "{write_errors} audit log write failure(s) since start: see callgate's log"
        ));
    }
    if m.audit_writable.get() == 0 {
        alarms.push("The audit log cannot be written.".into());
    }
    let free = m.audit_disk_free_bytes.get();
    let used = m.audit_disk_bytes.get();
    if free > 0 && free < used / 10 {
        alarms.push(format!(
            "Disk: {} MB free for the audit log, less than a tenth of what it holds ({} MB).",
            free >> 20,
            used >> 20
        ));
    }
    let lists = app.lists.current();
    let now = app.clock.now();
    let policy = &app.gate.rules().policy;
    for l in lists.lists.iter().filter(|l| !policy.list_fresh(l, now)) {
        alarms.push(format!("List {} is stale.", l.meta.id));
    }
    for u in &lists.unavailable {
        alarms.push(format!("List {} is unavailable: {}", u.id, u.error));
    }
    if let Some(p) = &counts.problem {
        alarms.push(format!("The records index cannot answer: {p}"));
    }
    html! {
        @if !alarms.is_empty() {
            div.card {
                h2 { "Alarms" }
                ul { @for a in &alarms { li.bad { (a) } } }
            }
        }
    }
}

pub(super) fn lists(app: &App) -> Markup {
    let lists = app.lists.current();
    let now = app.clock.now();
    let policy = &app.gate.rules().policy;
    html! {
        table {
            thead { tr {
                th { "List" } th { "Kind" } th { "Entries" } th { "Version" } th { "Downloaded" }
                th { "Age (days)" } th { "Days left" }
            } }
            tbody {
                @for l in lists.lists.iter() {
                    @let age = l.meta.age(now).map(|a| a.num_days());
                    @let max = policy.max_age_days(l);
                    @let fresh = policy.list_fresh(l, now);
                    tr {
                        td { (l.meta.id) @if l.meta.sample { span.muted { " (sample data)" } } }
                        td { (format!("{:?}", l.meta.kind).to_lowercase()) }
                        td.n { (l.meta.entries) }
                        td.mono { (l.meta.version()) }
                        td { (l.meta.downloaded.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "-".into())) }
                        td.n { (age.map(|a| a.to_string()).unwrap_or_else(|| "-".into())) }
                        td.n class=[(!fresh).then_some("bad")] {
                            @match age {
                                Some(age) => (i64::from(max) - age),
                                None => "-",
                            }
                            @if !fresh { " stale" }
                        }
                    }
                }
            }
        }
        p.muted { "Opt-outs held: " (app.lists.optouts.len()) }
    }
}

fn today(c: &Counts) -> Markup {
    html! {
        @if c.verdicts.is_empty() && c.dispositions.is_empty() {
            p.muted { "No decision yet today." }
        } @else {
            table.narrow {
                thead { tr { th { "Verdict" } th { "Decisions" } } }
                tbody {
                    @for (v, n) in &c.verdicts { tr { td { (v) } td.n { (n) } } }
                }
            }
            @if !c.dispositions.is_empty() {
                h2 { "Today's calls, by disposition" }
                table.narrow {
                    thead { tr { th { "Disposition" } th { "Calls" } } }
                    tbody {
                        @for (d, n) in &c.dispositions {
                            tr { td { (if d.is_empty() { "-" } else { d }) } td.n { (n) } }
                        }
                    }
                }
            }
        }
    }
}
