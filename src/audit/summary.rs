//! What a line of the log is about, in the terms people look it up by: its kind, the numbers
//! it names, its time, campaign, verdict, reasons, disposition, Call-ID and decision. The
//! writer tells it with each line it commits (the records index takes it from there, without
//! reading the line back); a line read back from the log gives the same
//! (`records::index::rows`), and `records check-index` compares the two.

use super::{AdminEvent, AuditEvent};
use chrono::{DateTime, Utc};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

/// The three kinds of record (seals are not records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The gate's decision on an INVITE.
    Decision,
    /// The call record written when the call ended (TSR 310.5(a)(2)).
    Call,
    /// A change made through the admin API or a signal: opt-outs, consent, reloads...
    Admin,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Decision, Kind::Call, Kind::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Decision => "decision",
            Kind::Call => "call",
            Kind::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Text that is most often one of a few fixed words (a verdict, a disposition, a reason): no
/// allocation for those.
pub type Text = Cow<'static, str>;

/// A decision's id, `<instance>-<seq>`: as the writer knows it (no formatting on its thread),
/// or as read back.
#[derive(Clone, Debug, PartialEq)]
pub enum DecisionId {
    Parts(Arc<str>, u64),
    Whole(String),
}

/// One line's summary.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub kind: Kind,
    /// The number it is about, as digits (0: none); `more`, the others of a batch of consents.
    /// Together sorted, none twice.
    pub number: i64,
    pub more: Vec<i64>,
    /// A decision's or an admin record's time; a call's INVITE.
    pub ts_ms: Option<i64>,
    pub campaign: Option<Arc<str>>,
    pub verdict: Option<Text>,
    /// Reason codes, space-separated.
    pub reasons: Option<Text>,
    pub disposition: Option<Text>,
    /// A decision's consent or EBR record that exempted it from a check: its type (`pewc`...).
    pub consent: Option<Text>,
    /// The Call-ID as its hash (`call_key`): what the index keeps of it.
    pub call_key: Option<i64>,
    pub decision: Option<DecisionId>,
    /// Admin records: what was done and by whom.
    pub action: Option<String>,
    pub who: Option<String>,
}

impl Summary {
    pub(crate) fn new(kind: Kind) -> Summary {
        Summary {
            kind,
            number: 0,
            more: Vec::new(),
            ts_ms: None,
            campaign: None,
            verdict: None,
            reasons: None,
            disposition: None,
            consent: None,
            call_key: None,
            decision: None,
            action: None,
            who: None,
        }
    }

    /// The numbers named (as text; what is not an E.164 number names none).
    pub(crate) fn with_numbers<'a>(mut self, named: impl Iterator<Item = &'a str>) -> Summary {
        let mut all: Vec<i64> = named.map(digits).filter(|n| *n != 0).collect();
        all.sort_unstable();
        all.dedup();
        let mut all = all.into_iter();
        self.number = all.next().unwrap_or(0);
        self.more = all.collect();
        self
    }
}

/// An E.164 number (`+14155550100`) as its digits; 0 for none (or what is not a number).
pub fn digits(n: &str) -> i64 {
    n.strip_prefix('+')
        .filter(|d| !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// A Call-ID as the index keeps it: its 64-bit FNV-1a hash. Two Call-IDs may share one (by
/// chance, or made to by whoever chooses Call-IDs): what reads the lines found checks the
/// Call-ID itself.
pub fn call_key(call_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in call_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// Reason codes as the index keeps them: space-separated, None for none.
pub(crate) fn joined<'a>(mut codes: impl Iterator<Item = &'a str>) -> Option<Text> {
    let first = codes.next()?;
    Some(match codes.next() {
        None => Cow::Owned(first.to_string()),
        Some(second) => {
            let mut s = format!("{first} {second}");
            for c in codes {
                s.push(' ');
                s.push_str(c);
            }
            Cow::Owned(s)
        }
    })
}

/// A set of reasons, as `joined` gives them (one reason: no allocation).
pub(crate) fn reasons(r: crate::call::Reasons) -> Option<Text> {
    let mut codes = r.iter().map(|r| r.code());
    let first = codes.next()?;
    match codes.next() {
        None => Some(Cow::Borrowed(first)),
        Some(second) => joined([first, second].into_iter().chain(codes)),
    }
}

/// A decision line's summary, from what `write_record` writes.
pub(crate) fn of_decision(ev: &AuditEvent) -> Summary {
    let d = &ev.decision;
    Summary {
        number: d.number().map_or(0, |n| n.as_u64() as i64),
        ts_ms: Some(ev.ts.timestamp_millis()),
        campaign: d.context.as_ref().map(|c| c.campaign.id.clone()),
        verdict: Some(Cow::Borrowed(d.verdict.as_str())),
        reasons: reasons(d.reasons),
        // As the line has it: within the policy context, written for outbound calls only.
        consent: d
            .context
            .as_ref()
            .and(d.consent.as_ref())
            .map(|c| Cow::Borrowed(c.kind.as_str())),
        call_key: Some(call_key(&String::from_utf8_lossy(&ev.call_id))),
        decision: Some(DecisionId::Parts(ev.instance.clone(), ev.seq)),
        ..Summary::new(Kind::Decision)
    }
}

/// An admin line's summary: the number an opt-out names, or each of a batch of consents'.
pub(crate) fn of_admin(ev: &AdminEvent) -> Summary {
    admin(
        Some(ev.ts.timestamp_millis()),
        ev.action,
        &ev.who,
        &ev.detail,
    )
}

pub(crate) fn admin(
    ts_ms: Option<i64>,
    action: &str,
    who: &str,
    detail: &serde_json::Value,
) -> Summary {
    use serde_json::Value;
    let named: Vec<&str> = match (detail.get("number"), detail.get("consents")) {
        (Some(Value::String(n)), _) => vec![n],
        (_, Some(Value::Array(cs))) => cs
            .iter()
            .filter_map(|c| c.get("number").and_then(Value::as_str))
            .collect(),
        _ => vec![],
    };
    Summary {
        ts_ms,
        action: Some(action.to_string()),
        who: Some(who.to_string()),
        ..Summary::new(Kind::Admin)
    }
    .with_numbers(named.into_iter())
}

/// A call record's time in the index: its INVITE's, else the line's.
pub(crate) fn call_time(invite: Option<DateTime<Utc>>, ts: DateTime<Utc>) -> i64 {
    invite.unwrap_or(ts).timestamp_millis()
}

/// What the writer committed to one day's file since its last batch: the lines from byte
/// `from` to `end`, the summaries of those that are records, and the last line's offset and
/// hash (what the index checks the file still holds after a power loss).
#[derive(Debug)]
pub struct Batch {
    pub file: PathBuf,
    pub from: u64,
    pub end: u64,
    pub lines: Vec<(u64, Summary)>,
    pub last: Option<(u64, String)>,
}

/// Where the writer sends its batches: bounded, never waited on (a full queue drops the batch,
/// and the index, finding a gap, reads those lines from the file).
pub type FeedSender = std::sync::mpsc::SyncSender<Batch>;

/// Batches the index may be behind by before the writer drops them.
pub const FEED_BATCHES: usize = 1024;

/// The writer's side of the feed: the batch of the open file since its last commit.
pub(crate) struct Feed {
    tx: FeedSender,
    /// None before a file is open, and after a failed write (where the file ends is unknown):
    /// nothing more of that file is fed.
    batch: Option<Batch>,
}

impl Feed {
    pub(crate) fn new(tx: FeedSender) -> Feed {
        Feed { tx, batch: None }
    }

    /// `file` was opened to append at `len` (None: its length is unknown, nothing of it is
    /// fed).
    pub(crate) fn opened(&mut self, file: &std::path::Path, len: Option<u64>) {
        self.batch = len.map(|len| Batch {
            file: file.to_path_buf(),
            from: len,
            end: len,
            lines: Vec::new(),
            last: None,
        });
    }

    /// A line of `len` bytes (its newline included) was handed to the file.
    pub(crate) fn wrote(&mut self, len: usize, summarize: impl FnOnce() -> Option<Summary>) {
        if let Some(b) = &mut self.batch {
            if let Some(s) = summarize() {
                b.lines.push((b.end, s));
            }
            b.last = Some((b.end, String::new()));
            b.end += len as u64;
        }
    }

    pub(crate) fn lost(&mut self) {
        self.batch = None;
    }

    /// What was handed to the file is on disk; `head` is the hash of its last line.
    pub(crate) fn committed(&mut self, head: &str) {
        let Some(b) = &mut self.batch else { return };
        if b.end == b.from {
            return;
        }
        if let Some(last) = &mut b.last {
            last.1 = head.to_string();
        }
        let next = Batch {
            file: b.file.clone(),
            from: b.end,
            end: b.end,
            lines: Vec::with_capacity(b.lines.len()),
            last: None,
        };
        let _ = self.tx.try_send(std::mem::replace(b, next));
    }
}
