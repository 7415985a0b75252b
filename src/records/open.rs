//! The calls forwarded and not yet ended, with what their record will say. An entry is made
//! when the gate forwards a call and taken out when the SIP core says it ended; nothing of the
//! INVITE's buffer is kept (a slice would pin the whole message for hours).

use super::line::{CallRecord, End};
use super::{Direction, Disposition, EndedBy};
use crate::call::{Reasons, Verdict};
use crate::number::E164;
use crate::policy::context::Campaign;
use crate::sip::gate::{CallEvent, CallKey, EndedBy as SipEnd};
use crate::sip::peer::Side;
use chrono::{DateTime, Utc};
use dashmap::DashMap;
use std::sync::Arc;

/// A call between its decision and its end.
pub(crate) struct OpenCall {
    /// The decision record's sequence number (its id is `instance-seq`).
    pub(crate) decision: u64,
    pub(crate) call_id: Box<str>,
    pub(crate) direction: Direction,
    pub(crate) verdict: Verdict,
    pub(crate) telemarketer: Telemarketer,
    /// None for inbound calls.
    pub(crate) campaign: Option<Arc<Campaign>>,
    pub(crate) call_type: Option<(crate::call::Purpose, crate::call::CallMethod)>,
    pub(crate) script: Option<Box<str>>,
    /// The called number in E.164, or as dialled when it is none.
    pub(crate) called: Box<str>,
    pub(crate) caller_id: Option<E164>,
    pub(crate) caller_name: Option<Box<str>>,
    pub(crate) invite_at: DateTime<Utc>,
    pub(crate) ringing_at: Option<DateTime<Utc>>,
    pub(crate) answered_at: Option<DateTime<Utc>>,
    /// Who cancelled the call before its answer (CANCEL, or BYE on the early dialog).
    pub(crate) cancelled: Option<Side>,
    /// A REFER's target, until its 2xx makes it the transfer.
    pub(crate) refer_to: Option<Box<str>>,
    pub(crate) transfer_to: Option<Box<str>>,
    /// The side whose REFER was accepted.
    pub(crate) transfer_by: Option<Side>,
}

/// Who placed the call, named when the record is written (not on the call's path).
pub(crate) enum Telemarketer {
    /// `[dialers.names]`.
    Named(Arc<str>),
    /// The verified TLS client certificate's names (the first is recorded).
    Certificate(Arc<[String]>),
    Address(std::net::IpAddr),
}

impl std::fmt::Display for Telemarketer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Telemarketer::Named(n) => f.write_str(n),
            Telemarketer::Certificate(names) => f.write_str(names.first().map_or("", |n| n)),
            Telemarketer::Address(ip) => write!(f, "{ip}"),
        }
    }
}

/// What the gate read from the message that brought the news.
#[derive(Default)]
pub(crate) struct Facts {
    /// The Q.850 cause of a `Reason` header.
    pub(crate) q850: Option<u16>,
    /// What the dialer's disposition header said, when it names one.
    pub(crate) dialer_says: Option<Disposition>,
    /// A REFER's `Refer-To`.
    pub(crate) refer_to: Option<Box<str>>,
}

#[derive(Default)]
pub(crate) struct OpenCalls {
    open: DashMap<CallKey, OpenCall>,
}

impl OpenCalls {
    pub(crate) fn open(&self, key: CallKey, call: OpenCall) {
        self.open.insert(key, call);
    }

    /// Apply news of a call; when the call is over, its record.
    pub(crate) fn on_news(
        &self,
        key: CallKey,
        event: CallEvent,
        facts: Facts,
        now: DateTime<Utc>,
        abandon_secs: Option<u64>,
    ) -> Option<(OpenCall, End)> {
        let mut call = self.open.get_mut(&key)?;
        let end = match event {
            CallEvent::Ringing(_) => {
                call.ringing_at.get_or_insert(now);
                return None;
            }
            CallEvent::Answered(_) => {
                call.answered_at.get_or_insert(now);
                return None;
            }
            CallEvent::Cancelled(side) => {
                call.cancelled.get_or_insert(side);
                return None;
            }
            CallEvent::Refer(_) => {
                call.refer_to = facts.refer_to;
                return None;
            }
            CallEvent::Transferred(side) => {
                call.transfer_to = call.refer_to.take().or(call.transfer_to.take());
                call.transfer_by = Some(side);
                return None;
            }
            CallEvent::Failed { status, by } => End {
                at: Some(now),
                disposition: Disposition::of_failure(status, call.cancelled.is_some()),
                ended_by: side_ended(call.cancelled.unwrap_or(by)),
                sip_status: Some(status),
                q850: facts.q850,
                reasons: Reasons::default(),
            },
            CallEvent::Ended(by) => End {
                at: Some(now),
                disposition: ended_disposition(&call, facts.dialer_says, by, now, abandon_secs),
                ended_by: ended_by(by),
                sip_status: None,
                q850: facts.q850,
                reasons: Reasons::default(),
            },
        };
        drop(call);
        let (_, call) = self.open.remove(&key)?;
        Some((call, end))
    }
}

/// An answered call is answered, transferred or abandoned (the dialer says so, or hung up
/// within `abandon_secs` of the answer); one that reached Timer C without an answer is
/// no_answer; one stopped before an answer is unknown.
fn ended_disposition(
    call: &OpenCall,
    dialer_says: Option<Disposition>,
    by: SipEnd,
    now: DateTime<Utc>,
    abandon_secs: Option<u64>,
) -> Disposition {
    let Some(answered) = call.answered_at else {
        return match by {
            SipEnd::Timeout => Disposition::NoAnswer,
            _ => Disposition::Unknown,
        };
    };
    let quick = abandon_secs.is_some_and(|s| {
        by == SipEnd::Bye(Side::Dialer) && (now - answered).num_milliseconds() < s as i64 * 1000
    });
    match dialer_says {
        Some(d) => d,
        None if call.transfer_to.is_some() => Disposition::Transferred,
        None if quick => Disposition::Abandoned,
        None => Disposition::Answered,
    }
}

/// The dialers' side is the `Dialer` side for outbound and inbound calls alike.
fn side_ended(side: Side) -> EndedBy {
    match side {
        Side::Dialer => EndedBy::Dialer,
        Side::Upstream => EndedBy::Carrier,
    }
}

fn ended_by(by: SipEnd) -> EndedBy {
    match by {
        SipEnd::Bye(side) => side_ended(side),
        SipEnd::Timeout => EndedBy::Timeout,
        SipEnd::Stopped => EndedBy::CallgateStopped,
    }
}

impl OpenCall {
    /// The record of a call that ended.
    pub(crate) fn into_record(self, end: End, instance: Arc<str>) -> CallRecord {
        CallRecord {
            call: self,
            end,
            instance,
        }
    }
}
