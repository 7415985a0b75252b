//! The report as one printable HTML page: SVG charts, no script, no outside resource, a
//! print stylesheet so the browser's "print to PDF" gives a clean document.

use super::Report;
use crate::call::Reason;
use maud::{html, Markup, DOCTYPE};
use std::collections::BTreeMap;

const STYLE: &str = "body{font:11pt/1.4 system-ui,sans-serif;margin:2em;color:#111;max-width:60em}
h1{font-size:17pt}h2{font-size:13pt;margin-top:1.6em;border-bottom:1px solid #999}
table{border-collapse:collapse;margin:.5em 0;min-width:24em}
td,th{border:1px solid #bbb;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#a00;font-weight:bold}.ok{color:#060}.muted{color:#666}
.mono{font-family:monospace;font-size:9pt}
svg text{font-size:10px}svg rect{fill:#1f4f99}
section{page-break-inside:avoid}
@media print{body{margin:0}}";

pub fn render(r: &Report) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "callgate compliance report " (day(&r.from)) " to " (day(&r.to)) }
                style { (STYLE) }
            }
            body {
                h1 { "Compliance report" }
                p {
                    "Period: from " (r.from) " up to " (r.to)
                    @if let Some(c) = &r.campaign { ", campaign " strong { (c) } }
                    ". Generated " (r.generated_at) " by callgate from its hash-chained records."
                }
                (summary(r))
                section { h2 { "Decisions by verdict" } (table("Verdict", &r.decisions)) }
                section {
                    h2 { "Blocked calls by reason" }
                    (bars("Blocked calls by reason", &r.blocked_by_reason))
                }
                @if !r.would_block_by_reason.is_empty() {
                    section {
                        h2 { "Shadow mode: what would have been blocked" }
                        (bars("Would-blocks by reason", &r.would_block_by_reason))
                    }
                }
                section { h2 { "Blocked calls by state" } (table("State", &r.blocked_by_state)) }
                section { h2 { "Calls by disposition" } (table("Disposition", &r.calls)) }
                section {
                    h2 { "Consent the calls were made under" }
                    p.muted {
                        "Decisions a consent or business-relationship record exempted from a \
                         rule, by the record's type."
                    }
                    (table("Type of record", &r.consent_used))
                }
                section { h2 { "Abandonment by campaign" } (campaigns(r)) }
                section { h2 { "Opt-outs received, and the first call blocked after each" } (optouts(r)) }
                section { h2 { "Lists in service each day" } (days(r)) }
            }
        }
    }
    .into_string()
}

fn day(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

fn summary(r: &Report) -> Markup {
    let decisions: u64 = r.decisions.values().sum();
    let blocked = r.decisions.get("blocked").copied().unwrap_or(0);
    let calls: u64 = r.calls.values().sum();
    html! {
        table {
            tr { th { "Decisions" } td.n { (decisions) } }
            tr { th { "Blocked" } td.n { (blocked) } }
            tr { th { "Call records" } td.n { (calls) } }
            tr { th { "Opt-outs received" } td.n { (r.optouts_received) } }
            tr { th { "Consent entries" } td.n { (r.consent_entries) } }
            tr { th { "Calls stopped by a frequency cap" } td.n { (r.caps_reached) } }
            tr {
                th { "Days with a stale national list" }
                td.n class=[(!r.stale_days.is_empty()).then_some("bad")] { (r.stale_days.len()) }
            }
        }
    }
}

fn table(what: &str, counts: &BTreeMap<String, u64>) -> Markup {
    html! {
        @if counts.is_empty() { p.muted { "None in the period." } }
        @else {
            table {
                tr { th { (what) } th { "Count" } }
                @for (k, n) in counts {
                    tr { td { (if k.is_empty() { "-" } else { k }) } td.n { (n) } }
                }
            }
        }
    }
}

/// Horizontal bars, one per reason (its text, the code as the tooltip), as inline SVG.
pub(crate) fn bars(label: &str, by_reason: &BTreeMap<String, u64>) -> Markup {
    if by_reason.is_empty() {
        return html! { p.muted { "None." } };
    }
    let mut rows: Vec<(&String, u64)> = by_reason.iter().map(|(k, v)| (k, *v)).collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let max = rows.first().map(|r| r.1).unwrap_or(1).max(1);
    let (label_w, bar_w, row_h) = (300u64, 380u64, 22u64);
    let height = row_h * rows.len() as u64 + 4;
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(label_w + bar_w + 80) height=(height)
            role="img" aria-label=(label) {
            @for (i, (code, n)) in rows.iter().enumerate() {
                @let y = i as u64 * row_h;
                @let w = (n * bar_w / max).max(1);
                @let text = Reason::from_code(code).map(|r| r.text()).unwrap_or(code.as_str());
                text x="0" y=(y + 15) { title { (code) } (text) }
                rect.bar x=(label_w) y=(y + 3) width=(w) height=(row_h - 6) {}
                text x=(label_w + w + 6) y=(y + 15) { (n) }
            }
        }
    }
}

fn campaigns(r: &Report) -> Markup {
    html! {
        @if r.campaigns.is_empty() { p.muted { "No call in the period." } }
        @else {
            table {
                tr { th { "Campaign" } th { "Calls" } th { "Answered" } th { "Abandoned" } th { "Abandonment" } }
                @for c in &r.campaigns {
                    tr {
                        td { (c.campaign) }
                        td.n { (c.calls) } td.n { (c.answered) } td.n { (c.abandoned) }
                        td.n class=[c.abandonment_percent.is_some_and(|p| p > 3.0).then_some("bad")] {
                            @match c.abandonment_percent {
                                Some(p) => (format!("{p:.2}%")),
                                None => "-",
                            }
                        }
                    }
                }
            }
            p.muted { "Abandoned over answered by a person (abandoned included), over the report's \
                period; the TSR allows 3% per campaign over 30 days: measure it over 30 days." }
        }
    }
}

fn optouts(r: &Report) -> Markup {
    html! {
        @if r.optouts.is_empty() { p.muted { "No opt-out received in the period." } }
        @else {
            @if r.optouts.len() as u64 != r.optouts_received {
                p.muted { "The newest " (r.optouts.len()) " of " (r.optouts_received) "." }
            }
            table {
                tr { th { "Number" } th { "Received (UTC)" } th { "Source" } th { "First call blocked after it" } th { "Hours" } }
                @for o in &r.optouts {
                    tr {
                        td { (o.number) }
                        td { (o.received) }
                        td { (o.source.as_deref().unwrap_or("-")) }
                        td { (o.first_blocked.as_deref().unwrap_or("none in the period")) }
                        td.n { (o.hours.map(|h| format!("{h:.1}")).unwrap_or_else(|| "-".into())) }
                    }
                }
            }
            p.muted { "An opt-out is in force from the moment it is recorded: a call after it is \
                blocked for the company's list (internal_dnc), never forwarded." }
        }
    }
}

fn days(r: &Report) -> Markup {
    html! {
        @if r.days.is_empty() { p.muted { "No decision in the period." } }
        @else {
            @if r.stale_days.is_empty() {
                p.ok { "On every day with calls, the national list in service at the day's first and \
                    last decision was within its allowed age." }
            } @else {
                p.bad { "Not proven (a national list older than allowed, none, or a record that \
                    could not be read) on: " (r.stale_days.join(", ")) "." }
            }
            p.muted { "Read from each day's first and last decision; a version in service only \
                between them (a reload during the day) is not shown." }
            table {
                tr { th { "Day" } th { "List" } th { "Version" } th { "Downloaded" } th { "Age (days)" } }
                @for d in &r.days {
                    @if let Some(p) = &d.problem {
                        tr { td { (d.label()) } td.bad colspan="4" { (p) } }
                    }
                    @for (i, l) in d.lists.iter().enumerate() {
                        tr {
                            td { @if i == 0 && d.problem.is_none() { (d.label()) } }
                            td { (l.id) " " span.muted { "(" (l.kind) ")" } }
                            td.mono { (l.version) }
                            td { (l.downloaded.as_deref().map(day).unwrap_or("-")) }
                            td.n class=[(l.fresh == Some(false)).then_some("bad")] {
                                (l.age_days.map(|a| a.to_string()).unwrap_or_else(|| "-".into()))
                            }
                        }
                    }
                }
            }
        }
    }
}
