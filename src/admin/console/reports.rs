//! Reports: the compliance report of a period (as `callgate report` writes it), printable.

use super::page::{notice, page, page_with};
use super::{Console, Session};
use crate::app::App;
use crate::records::report;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize, Default)]
pub(crate) struct Period {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    campaign: String,
}

pub(crate) async fn show(Extension(s): Extension<Session>, Query(p): Query<Period>) -> Response {
    page(&s, "Reports", form(&p, None))
}

fn form(p: &Period, error: Option<&str>) -> Markup {
    html! {
        (notice(None, error))
        form.card.search method="get" action="/console/reports/view" {
            span { label for="from" { "From (UTC)" } input type="date" id="from" name="from" value=(p.from) required; }
            span { label for="to" { "To (UTC, included)" } input type="date" id="to" name="to" value=(p.to) required; }
            span { label for="campaign" { "Campaign (all if empty)" } input type="search" id="campaign" name="campaign" value=(p.campaign); }
            span { button type="submit" { "Make the report" } }
        }
        p.muted { "The report opens as its own page: print it, or save it as PDF from the browser. \
            The same comes from " code { "callgate report --from --to --out FILE.html" } "." }
    }
}

impl Period {
    fn ask(&self, app: &App) -> Result<report::Ask, String> {
        use super::super::records::time;
        let some = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let from = time(&some(&self.from), "from", false)?.ok_or("give the first day")?;
        let to = time(&some(&self.to), "to", true)?.ok_or("give the last day")?;
        if from >= to {
            return Err(format!(
                "from `{}` is not before to `{}`",
                self.from, self.to
            ));
        }
        Ok(report::Ask {
            from,
            to,
            campaign: some(&self.campaign),
            national_max_age_days: app.cfg.policy.national_max_age_days,
        })
    }
}

/// `GET /console/reports/view?from=&to=&campaign=`: the report, a printable page of its own.
pub(crate) async fn view(
    State(c): State<Arc<Console>>,
    Extension(s): Extension<Session>,
    Query(p): Query<Period>,
) -> Response {
    let ask = match p.ask(&c.app) {
        Ok(a) => a,
        Err(e) => {
            return page_with(StatusCode::BAD_REQUEST, &s, "Reports", form(&p, Some(&e)));
        }
    };
    super::document(&c.app, move |app, logs| {
        let r = report::build_all(logs, &ask, app.clock.now())
            .map_err(|e| format!("No report: {e}"))?;
        Ok(report::html(&r))
    })
    .await
}
