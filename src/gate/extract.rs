//! What the policy needs from an INVITE: the called number (Request-URI, or To when the
//! Request-URI has no user part) and the call's context (campaign, call type, caller ID); and
//! what a call record takes from the messages (caller-ID name, script, Reason, disposition,
//! Refer-To).

use crate::config::CallsConfig;
use crate::number::{Called, Normalizer, NumberProblem};
use crate::policy::context::{CallContext, CallerId};
use crate::policy::Policy;
use crate::records::{Disposition, Facts};
use crate::sip::gate::NewCall;
use crate::sip::parse::{name_addr_uri, trim_slice, HeaderName, Message, Span};
use crate::sip::uri::{Scheme, Uri};

/// The number of a URI: its user part normalized (a URI of another scheme has none). The one
/// path from a URI to a number.
pub fn number_of(normalizer: &Normalizer, uri: &Uri<'_>) -> Result<Called, NumberProblem> {
    if uri.scheme == Scheme::Other {
        return Err(NumberProblem::Dial(crate::number::DialError::Scheme));
    }
    normalizer.called(uri.user)
}

/// The called number and the span of the URI it was taken from.
pub(super) fn called_number(
    normalizer: &Normalizer,
    call: &NewCall<'_>,
) -> (Result<Called, NumberProblem>, Span) {
    let (msg, ruri) = (call.req.msg, call.ruri);
    if ruri.user.is_some() || ruri.scheme == Scheme::Tel {
        return (number_of(normalizer, ruri), call.req.uri);
    }
    let Some(to) = msg.header(HeaderName::To) else {
        return (Err(NumberProblem::NoRequestUri), call.req.uri);
    };
    let to_uri = name_addr_uri(msg.bytes(to.value));
    let start = to_uri.as_ptr() as usize - msg.buf.as_ptr() as usize;
    let span = Span::new(start, start + to_uri.len());
    let r = Uri::parse(to_uri)
        .ok_or(NumberProblem::NoRequestUri)
        .and_then(|u| number_of(normalizer, &u));
    (r, span)
}

/// Campaign, call type and caller ID of a new call from a dialer.
pub(super) fn call_context(
    normalizer: &Normalizer,
    call: &NewCall<'_>,
    policy: &Policy,
) -> CallContext {
    let msg = call.req.msg;
    let campaigns = &policy.campaigns;
    campaigns.classify(
        Some(call.src.ip()),
        msg.other_header(campaigns.campaign_header.as_bytes()),
        msg.other_header(campaigns.call_type_header.as_bytes()),
        caller_id(normalizer, msg),
    )
}

/// The caller ID presented: P-Asserted-Identity, else From; withheld by `Privacy: id`.
fn caller_id(normalizer: &Normalizer, msg: &Message) -> CallerId {
    let withheld = msg.other_header(b"privacy").is_some_and(|p| {
        p.split(|c| *c == b';' || *c == b',')
            .any(|t| trim_slice(t).eq_ignore_ascii_case(b"id"))
    });
    if withheld {
        return CallerId::Anonymous;
    }
    let header = msg
        .header(HeaderName::PAssertedIdentity)
        .or_else(|| msg.header(HeaderName::From));
    match header
        .map(|h| name_addr_uri(msg.bytes(h.value)))
        .and_then(Uri::parse)
    {
        Some(u)
            if u.user.is_some_and(|x| x.eq_ignore_ascii_case(b"anonymous"))
                || u.host.eq_ignore_ascii_case(b"anonymous.invalid") =>
        {
            CallerId::Anonymous
        }
        Some(u) => match number_of(normalizer, &u) {
            Ok(Called::Number(n)) => CallerId::Number(n),
            _ => CallerId::Missing,
        },
        None => CallerId::Missing,
    }
}

/// The longest text a call keeps from a header (Call-ID, caller name, script, transfer
/// target, an unreadable Request-URI): a 32 KB header costs an open call 256 bytes, not 32 KB.
pub(crate) const MAX_FIELD_BYTES: usize = 256;

/// Header text as a call keeps it: lossy UTF-8, at most `MAX_FIELD_BYTES` bytes (cut on a
/// character boundary).
pub(super) fn field(v: &[u8]) -> Box<str> {
    let s = String::from_utf8_lossy(&v[..v.len().min(MAX_FIELD_BYTES)]);
    let mut end = s.len().min(MAX_FIELD_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

/// The script or message a dialer names in its script header.
pub(super) fn script(msg: &Message, calls: &CallsConfig) -> Option<Box<str>> {
    let v = msg.other_header(calls.script_header.as_bytes())?;
    let v = trim_slice(v);
    (!v.is_empty()).then(|| field(v))
}

/// The display name of From (`"Acme Sales" <sip:...>`), the caller-ID name presented.
pub(super) fn caller_name(msg: &Message) -> Option<Box<str>> {
    let from = msg.header_value(HeaderName::From)?;
    let lt = from.iter().position(|c| *c == b'<')?;
    let name = trim_slice(&from[..lt]);
    let name = name
        .strip_prefix(b"\"")
        .and_then(|n| n.strip_suffix(b"\""))
        .unwrap_or(name);
    (!name.is_empty()).then(|| field(name))
}

/// What a message that ended or transferred a call says of it: the Q.850 cause of its
/// `Reason` header (RFC 3326), the dialer's disposition header, a REFER's target.
pub(super) fn facts(msg: &Message, calls: &CallsConfig) -> Facts {
    Facts {
        q850: msg.other_header(b"reason").and_then(q850_cause),
        dialer_says: msg
            .other_header(calls.disposition_header.as_bytes())
            .and_then(|v| match trim_slice(v).to_ascii_lowercase().as_slice() {
                b"abandoned" => Some(Disposition::Abandoned),
                b"transferred" => Some(Disposition::Transferred),
                b"answered" => Some(Disposition::Answered),
                _ => None,
            }),
        refer_to: msg
            .other_header(b"refer-to")
            .or_else(|| msg.other_header(b"r"))
            .map(|v| field(name_addr_uri(v))),
    }
}

/// `Q.850;cause=16;text="..."` among the Reason values.
fn q850_cause(v: &[u8]) -> Option<u16> {
    v.split(|c| *c == b',').find_map(|value| {
        let mut params = value.split(|c| *c == b';');
        let protocol = trim_slice(params.next()?);
        if !protocol.eq_ignore_ascii_case(b"q.850") {
            return None;
        }
        params.find_map(|p| {
            let (k, v) = p.split_at(p.iter().position(|c| *c == b'=')?);
            let n = std::str::from_utf8(trim_slice(&v[1..]))
                .ok()?
                .parse()
                .ok()?;
            trim_slice(k).eq_ignore_ascii_case(b"cause").then_some(n)
        })
    })
}
