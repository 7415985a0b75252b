//! The dossier as one printable HTML page: no script, no outside resource, every value from
//! the log escaped.

use super::{Dossier, Entry};
use crate::records::index::Kind;
use serde_json::Value;
use std::fmt::Write;

const STYLE: &str = "body{font:11pt/1.4 sans-serif;margin:2em;color:#111}
h1{font-size:16pt}h2{font-size:13pt;margin-top:1.6em;border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;margin:.5em 0}
td,th{border:1px solid #bbb;padding:2px 6px;vertical-align:top;text-align:left}
th{background:#eee}.mono{font-family:monospace;font-size:9pt;word-break:break-all}
.bad{color:#a00;font-weight:bold}.ok{color:#060}
section{page-break-inside:avoid;margin-bottom:1em}
@media print{body{margin:0}a{color:inherit}}";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.iter().all(|x| !x.is_object()) => {
            a.iter().map(text).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

fn s<'v>(r: &'v Value, k: &str) -> &'v str {
    r.get(k).and_then(Value::as_str).unwrap_or("-")
}

/// One line saying what the record is.
pub(crate) fn headline(e: &Entry) -> String {
    let r = &e.record;
    match e.kind {
        Kind::Decision => {
            let reasons = r.get("reasons").map(text).unwrap_or_default();
            let mut line = match reasons.is_empty() {
                true => format!("Decision: {}", s(r, "verdict")),
                false => format!("Decision: {} ({reasons})", s(r, "verdict")),
            };
            // The consent a call went ahead under is what a complaint asks about first.
            if let Some(c) = r.pointer("/policy/consent_used") {
                let _ = write!(line, ", under {} record {}", s(c, "type"), text(&c["seq"]));
            }
            line
        }
        Kind::Call => {
            let secs = r
                .get("duration_ms")
                .and_then(Value::as_u64)
                .map(|ms| format!(", {}.{:03} s", ms / 1000, ms % 1000))
                .unwrap_or_default();
            format!("Call: {}{secs}", s(r, "disposition"))
        }
        Kind::Admin => format!("{} by {}", s(r, "action"), s(r, "who")),
    }
}

/// The campaign a decision or call was of ("-" for none).
pub(crate) fn campaign_of(e: &Entry) -> String {
    e.record
        .get("campaign")
        .or_else(|| e.record.get("policy").and_then(|p| p.get("campaign")))
        .map(text)
        .unwrap_or_else(|| "-".into())
}

/// A record's fields, one row each; nested objects by dotted names.
fn fields(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let name = match prefix.is_empty() {
                    true => k.clone(),
                    false => format!("{prefix}.{k}"),
                };
                match x {
                    Value::Object(_) => fields(&name, x, rows),
                    Value::Array(items) if items.iter().any(Value::is_object) => {
                        for (i, item) in items.iter().enumerate() {
                            fields(&format!("{name}[{i}]"), item, rows);
                        }
                    }
                    _ => rows.push((name, text(x))),
                }
            }
        }
        other => rows.push((prefix.to_string(), text(other))),
    }
}

fn verified(ok: bool) -> &'static str {
    match ok {
        true => "<span class=ok>verified</span>",
        false => "<span class=bad>NOT VERIFIED</span>",
    }
}

fn state(e: &Entry) -> String {
    match (e.verified, e.newest) {
        (true, true) => format!(
            "{} (the newest line of the log: the next line written vouches for it)",
            verified(true)
        ),
        (ok, _) => verified(ok).to_string(),
    }
}

/// The dossier as a complete HTML document.
pub fn render(d: &Dossier) -> String {
    let mut h = String::with_capacity(16 * 1024 + d.entries.len() * 4096);
    let period = format!(
        "{} to {}",
        d.from.as_deref().unwrap_or("the start of the log"),
        d.to.as_deref().unwrap_or("now")
    );
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <title>Records for {n}</title><style>{STYLE}</style></head><body>\
         <h1>Records for {n}</h1><p>Period: {p}. Generated {g} by {b} from the hash-chained \
         audit log.</p>",
        n = esc(&d.number),
        p = esc(&period),
        g = esc(&d.generated_at),
        b = esc(&d.generated_by),
    );
    summary(&mut h, d);
    timeline(&mut h, d);
    details(&mut h, d);
    chain(&mut h, d);
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, d: &Dossier) {
    let c = &d.counts;
    let chain = match (c.not_verified, c.days_not_verified) {
        (0, 0) => format!(
            "{} through every line of the {} day files of the period.",
            verified(true),
            c.days_walked
        ),
        (n, days) => format!(
            "{}: {n} of the lines below; {days} of the {} day files of the period break \
             (see the last section).",
            verified(false),
            c.days_walked
        ),
    };
    let _ = write!(
        h,
        "<h2>Summary</h2><table><tr><th>Decisions</th><th>Blocked</th><th>Calls</th>\
         <th>Answered</th><th>Opt-outs</th><th>Consent records</th></tr><tr><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table><p>Hash chain: {chain}</p>",
        c.decisions, c.blocked, c.calls, c.answered, c.optouts, c.consents
    );
}

fn timeline(h: &mut String, d: &Dossier) {
    h.push_str(
        "<h2>Timeline (UTC)</h2><table><tr><th>#</th><th>Time</th><th>Record</th>\
         <th>Campaign</th><th>Line hash (SHA-256)</th><th>Chain</th></tr>",
    );
    for (i, e) in d.entries.iter().enumerate() {
        let campaign = campaign_of(e);
        let _ = write!(
            h,
            "<tr><td><a href=\"#e{n}\">{n}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=mono>{}</td><td>{}</td></tr>",
            esc(e.ts.as_deref().unwrap_or("-")),
            esc(&headline(e)),
            esc(&campaign),
            esc(&e.hash),
            state(e),
            n = i + 1,
        );
    }
    if d.entries.is_empty() {
        h.push_str("<tr><td colspan=6>No record of this number in the period.</td></tr>");
    }
    h.push_str("</table>");
}

fn details(h: &mut String, d: &Dossier) {
    h.push_str("<h2>Records in full</h2>");
    for (i, e) in d.entries.iter().enumerate() {
        let _ = write!(
            h,
            "<section id=e{n}><h3>{n}. {}</h3><p class=mono>{} at byte {}; hash {}; {}</p><table>",
            esc(&headline(e)),
            esc(&e.file),
            e.offset,
            esc(&e.hash),
            state(e),
            n = i + 1,
        );
        let mut rows = vec![];
        fields("", &e.record, &mut rows);
        for (k, v) in rows {
            let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
        }
        h.push_str("</table></section>");
    }
}

fn chain(h: &mut String, d: &Dossier) {
    h.push_str(
        "<h2>Hash chain</h2><p>Every line of the audit log names the SHA-256 of the line \
         before it; each day's file ends with a seal that the next day's first line names. A \
         changed, removed or inserted line breaks the chain from that line on. Check the whole \
         log with <code>callgate audit verify</code>.</p><table><tr><th>File</th>\
         <th>First line names</th><th>Linked to the previous file</th><th>Chain</th></tr>",
    );
    // A long period lists the day files that break; the others are counted.
    let listed = d
        .days
        .iter()
        .filter(|day| d.days.len() <= 62 || !day.verified);
    for day in listed {
        let linked = match day.linked_to_previous {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not known",
        };
        let state = match &day.why {
            None => verified(true).to_string(),
            Some(why) => format!(
                "{} from byte {}: {}",
                verified(false),
                day.broken_at.unwrap_or(0),
                esc(why)
            ),
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=mono>{}</td><td>{linked}</td><td>{state}</td></tr>",
            esc(&day.file),
            esc(day.starts_from.as_deref().unwrap_or("-")),
        );
    }
    if d.days.len() > 62 {
        let ok = d.days.iter().filter(|day| day.verified).count();
        let _ = write!(
            h,
            "<tr><td colspan=4>{ok} other day files: {}</td></tr>",
            verified(true)
        );
    }
    h.push_str("</table>");
}
