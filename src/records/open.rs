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
    pub(crate) cancelled: bool,
    pub(crate) transfer_to: Option<Box<str>>,
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
            CallEvent::Cancelled => {
                call.cancelled = true;
                return None;
            }
            CallEvent::Transferred => {
                call.transfer_to = facts.refer_to.or(call.transfer_to.take());
                return None;
            }
            CallEvent::Failed(status) => End {
                at: Some(now),
                disposition: Disposition::of_failure(status, call.cancelled),
                ended_by: if call.cancelled {
                    EndedBy::Dialer
                } else {
                    EndedBy::Carrier
                },
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
/// within `abandon_secs` of the answer); one that ended without an answer (a timeout, a stop)
/// is unknown.
fn ended_disposition(
    call: &OpenCall,
    dialer_says: Option<Disposition>,
    by: SipEnd,
    now: DateTime<Utc>,
    abandon_secs: Option<u64>,
) -> Disposition {
    let Some(answered) = call.answered_at else {
        return Disposition::Unknown;
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
fn ended_by(by: SipEnd) -> EndedBy {
    match by {
        SipEnd::Bye(Side::Dialer) => EndedBy::Dialer,
        SipEnd::Bye(Side::Upstream) => EndedBy::Carrier,
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
