//! Call records (TSR, 16 CFR 310.5(a)(2)): every call the gate decided, followed from its
//! INVITE to its end and written, when it ends, as one line of the hash-chained audit log,
//! linked to its decision record. A blocked call's record is written with its decision; a
//! forwarded call is kept open (`open`) until the SIP core says it ended. `recover` closes the
//! calls a crash left open. Nothing here reads SIP: the gate hands over what it took from the
//! messages.

pub mod cluster;
pub mod dossier;
pub mod export;
pub mod index;
mod line;
pub(crate) mod metrics;
mod open;
pub mod recover;
pub mod report;

/// A period's bound as people write it: RFC 3339, or a day (UTC). A day as the period's end
/// includes it (its end is the next midnight).
pub fn period_bound(s: &str, end: bool) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = crate::lists::load::parse_date(s)?;
    Some(match end && s.trim().len() == 10 {
        true => t + chrono::Duration::days(1),
        false => t,
    })
}

pub use line::CallRecord;
pub(crate) use line::End;
pub(crate) use metrics::RecordMetrics;
pub(crate) use open::{Facts, OpenCall, OpenCalls, Telemarketer};

/// How a call ended, as the TSR asks ("answered, connected, dropped, transferred").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Cancelled,
    /// Blocked by callgate (the record carries the reasons).
    Rejected,
    /// Another final failure (the record carries the SIP status).
    Failed,
    Transferred,
    /// The dialer said so (TSR 310.4(b)(4)): answered, no agent within two seconds.
    Abandoned,
    Unknown,
}

impl Disposition {
    pub const ALL: [Disposition; 9] = [
        Disposition::Answered,
        Disposition::Busy,
        Disposition::NoAnswer,
        Disposition::Cancelled,
        Disposition::Rejected,
        Disposition::Failed,
        Disposition::Transferred,
        Disposition::Abandoned,
        Disposition::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Cancelled => "cancelled",
            Disposition::Rejected => "rejected",
            Disposition::Failed => "failed",
            Disposition::Transferred => "transferred",
            Disposition::Abandoned => "abandoned",
            Disposition::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Disposition> {
        Disposition::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// A final failure's status, read as a disposition.
    pub(crate) fn of_failure(status: u16, cancelled: bool) -> Disposition {
        match status {
            487 if cancelled => Disposition::Cancelled,
            486 | 600 => Disposition::Busy,
            408 | 480 | 487 => Disposition::NoAnswer,
            _ => Disposition::Failed,
        }
    }
}

/// Who or what ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndedBy {
    Dialer,
    Carrier,
    /// callgate itself: it rejected the call.
    Callgate,
    Timeout,
    CallgateStopped,
    /// Closed at the next start after callgate stopped without writing it (a crash).
    Restart,
}

impl EndedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            EndedBy::Dialer => "dialer",
            EndedBy::Carrier => "carrier",
            EndedBy::Callgate => "callgate",
            EndedBy::Timeout => "timeout",
            EndedBy::CallgateStopped => "callgate_stopped",
            EndedBy::Restart => "restart",
        }
    }
}

/// Outbound (from a dialer) or inbound (from the upstream toward the dialers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}
