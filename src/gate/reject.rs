//! The final response for a blocked call: the configured status, a Q.850 `Reason` and a
//! `Warning: 399` naming the reason code, the decision's id, and `Retry-After` when the call
//! would be legal later.

use crate::call::Reason;
use crate::config::RejectConfig;
use crate::policy::Decision;
use crate::sip::gate::Rejection;
use crate::sip::proxy::status_phrase;
use std::io::Write;

/// Q.850 cause 28, "invalid number format", for a number that could not be read.
const CAUSE_INVALID_NUMBER: u16 = 28;

pub(super) fn rejection(
    reject: &RejectConfig,
    d: &Decision,
    decision_id: &str,
    host: &str,
) -> Rejection {
    let primary = d.reasons.primary().unwrap_or(Reason::NationalDnc);
    let status = reject.status_for(Some(primary));
    let phrase = if status == reject.status {
        reject.reason_phrase.clone()
    } else {
        status_phrase(status).to_string()
    };
    let mut headers = Vec::with_capacity(4);
    if reject.reason_header {
        let cause = if primary == Reason::UnparseableNumber {
            CAUSE_INVALID_NUMBER
        } else {
            reject.q850_cause
        };
        let mut v = Vec::with_capacity(64);
        let _ = write!(v, "Q.850;cause={cause};text=\"{}\"", primary.code());
        headers.push(("Reason", v));
    }
    if reject.warning_header {
        let mut v = Vec::with_capacity(96);
        let _ = write!(v, "399 {host} \"{}: {}\"", primary.code(), primary.text());
        headers.push(("Warning", v));
    }
    headers.push(("X-Callgate-Decision", decision_id.as_bytes().to_vec()));
    if let Some(secs) = d.retry_after {
        headers.push(("Retry-After", secs.to_string().into_bytes()));
    }
    Rejection {
        status,
        phrase,
        headers,
    }
}

/// Seconds a dialer is asked to wait when callgate cannot write records.
const UNRECORDABLE_RETRY_SECS: &[u8] = b"5";

/// Why a call callgate would forward cannot be recorded now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unrecordable {
    /// The audit log cannot be written (disk full, I/O error).
    Unwritable,
    /// The audit writer is behind (`audit.queue_capacity` lines waiting).
    Backlog,
}

impl Unrecordable {
    /// The code in the `Warning` and in the decision record's `refused`.
    pub(super) fn code(self) -> &'static str {
        match self {
            Unrecordable::Unwritable => "records_unwritable",
            Unrecordable::Backlog => "records_backlog",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Unrecordable::Unwritable => "call records cannot be written",
            Unrecordable::Backlog => "call records are queued faster than they can be written",
        }
    }
}

/// 503 for a call callgate would forward but cannot record now: the dialer retries later or
/// elsewhere. `decision_id` is absent when the call was refused before a decision.
pub(super) fn unrecordable(decision_id: Option<&str>, host: &str, why: Unrecordable) -> Rejection {
    let warning = format!("399 {host} \"{}: {}\"", why.code(), why.text());
    let mut headers = vec![
        ("Warning", warning.into_bytes()),
        ("Retry-After", UNRECORDABLE_RETRY_SECS.to_vec()),
    ];
    if let Some(id) = decision_id {
        headers.push(("X-Callgate-Decision", id.as_bytes().to_vec()));
    }
    Rejection {
        status: 503,
        phrase: status_phrase(503).to_string(),
        headers,
    }
}
