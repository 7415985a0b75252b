//! The words of a call decision, named where both the configuration and the policy can use
//! them: what kind of call it is (`Purpose`, `CallMethod`) and what was concluded (`Verdict`,
//! `Reason`). Each reads from the configuration by the same parser the policy uses, so a typo
//! is a configuration error naming file, line and key.

use serde::{Deserialize, Deserializer, Serialize};

/// Why a call was blocked, or what was noted about it. The code is what appears in the
/// `Warning` header, the audit log and the metrics.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Reason {
    // Declared in precedence order: `r as usize` is the index into `Reason::ALL`.
    UnparseableNumber = 0,
    CountryNotAllowed,
    InternalDnc,
    NationalDnc,
    StateDnc,
    CustomDnc,
    ListUnavailable,
    StaleList,
    SharedStateStale,
    CountryNotConfigured,
    UnknownCampaign,
    CallTypeNotAllowed,
    StateOfEmergency,
    OptoutNoContact,
    WirelessNoCall,
    NoCallRule,
    ConsentRequired,
    NumberReassigned,
    RndCheckMissing,
    CallerIdMissing,
    CallerIdUnlisted,
    AbandonmentRate,
    FrequencyCap,
    FrequencyCapUnknown,
    Holiday,
    OutsideHours,
    UnknownLocation,
    LineTypeUnknown,
    CalendarMissing,
    ServiceNumber,
    Inbound,
}

impl Reason {
    /// In precedence order: the first one present is the "primary" reason of a decision.
    pub(crate) const ALL: [Reason; 31] = [
        Reason::UnparseableNumber,
        Reason::CountryNotAllowed,
        Reason::InternalDnc,
        Reason::NationalDnc,
        Reason::StateDnc,
        Reason::CustomDnc,
        Reason::ListUnavailable,
        Reason::StaleList,
        Reason::SharedStateStale,
        Reason::CountryNotConfigured,
        Reason::UnknownCampaign,
        Reason::CallTypeNotAllowed,
        Reason::StateOfEmergency,
        Reason::OptoutNoContact,
        Reason::WirelessNoCall,
        Reason::NoCallRule,
        Reason::ConsentRequired,
        Reason::NumberReassigned,
        Reason::RndCheckMissing,
        Reason::CallerIdMissing,
        Reason::CallerIdUnlisted,
        Reason::AbandonmentRate,
        Reason::FrequencyCap,
        Reason::FrequencyCapUnknown,
        Reason::Holiday,
        Reason::OutsideHours,
        Reason::UnknownLocation,
        Reason::LineTypeUnknown,
        Reason::CalendarMissing,
        Reason::ServiceNumber,
        Reason::Inbound,
    ];

    /// The reason with this code (as in `Warning`, the records and the metrics).
    pub(crate) fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn code(self) -> &'static str {
        match self {
            Reason::UnparseableNumber => "unparseable_number",
            Reason::CountryNotAllowed => "country_not_allowed",
            Reason::CountryNotConfigured => "country_not_configured",
            Reason::InternalDnc => "internal_dnc",
            Reason::NationalDnc => "national_dnc",
            Reason::StateDnc => "state_dnc",
            Reason::CustomDnc => "custom_dnc",
            Reason::StaleList => "stale_list",
            Reason::SharedStateStale => "shared_state_stale",
            Reason::ListUnavailable => "list_unavailable",
            Reason::UnknownCampaign => "unknown_campaign",
            Reason::CallTypeNotAllowed => "call_type_not_allowed",
            Reason::StateOfEmergency => "state_of_emergency",
            Reason::OptoutNoContact => "optout_no_contact",
            Reason::WirelessNoCall => "wireless_no_call",
            Reason::NoCallRule => "no_call_rule",
            Reason::ConsentRequired => "consent_required",
            Reason::NumberReassigned => "number_reassigned",
            Reason::RndCheckMissing => "rnd_check_missing",
            Reason::CallerIdMissing => "caller_id_missing",
            Reason::CallerIdUnlisted => "caller_id_unlisted",
            Reason::AbandonmentRate => "abandonment_rate",
            Reason::FrequencyCap => "frequency_cap",
            Reason::FrequencyCapUnknown => "frequency_cap_unknown",
            Reason::Holiday => "holiday",
            Reason::OutsideHours => "outside_hours",
            Reason::UnknownLocation => "unknown_location",
            Reason::LineTypeUnknown => "line_type_unknown",
            Reason::CalendarMissing => "calendar_missing",
            Reason::ServiceNumber => "service_number",
            Reason::Inbound => "inbound",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Reason::UnparseableNumber => "called number could not be extracted or normalized",
            Reason::CountryNotAllowed => "calls to this country are not allowed here",
            Reason::CountryNotConfigured => {
                "no policy for the called country: its consent, hours and lists are not known"
            }
            Reason::InternalDnc => "number is on the company do-not-call list",
            Reason::NationalDnc => "number is on the National Do-Not-Call Registry",
            Reason::StateDnc => "number is on a state do-not-call list",
            Reason::CustomDnc => "number is on a suppression list",
            Reason::StaleList => "National DNC list missing or older than allowed",
            Reason::SharedStateStale => {
                "the opt-outs, consent and closures shared by the instances could not be confirmed current"
            }
            Reason::ListUnavailable => "a configured list could not be loaded",
            Reason::UnknownCampaign => "the campaign named by the dialer is not configured",
            Reason::CallTypeNotAllowed => "call type not allowed for this campaign",
            Reason::StateOfEmergency => "telephone solicitation suspended (state of emergency)",
            Reason::OptoutNoContact => "no contact allowed so soon after an opt-out",
            Reason::WirelessNoCall => "sales calls to wireless numbers are banned in this state",
            Reason::NoCallRule => "calls of this type are banned by a state rule",
            Reason::ConsentRequired => "call type requires consent and none is on record",
            Reason::RndCheckMissing => {
                "an automated call under consent needs a recent Reassigned Numbers Database answer"
            }
            Reason::NumberReassigned => {
                "the consent on record predates the number's permanent disconnection (Reassigned Numbers Database)"
            }
            Reason::CallerIdMissing => "no caller ID presented (anonymous or missing)",
            Reason::CallerIdUnlisted => "caller ID not allowed for this campaign",
            Reason::AbandonmentRate => {
                "the campaign abandoned more answered calls than its limit (30 days)"
            }
            Reason::FrequencyCap => "too many calls to this number in the rolling window",
            Reason::FrequencyCapUnknown => {
                "the calls to this number could not be counted in the shared database in time"
            }
            Reason::Holiday => "no calls on this holiday in the called party's state",
            Reason::OutsideHours => "outside the legal calling hours at the called party",
            Reason::UnknownLocation => "area code has no known place or time zone",
            Reason::LineTypeUnknown => "a wireless rule applies but no wireless list is loaded",
            Reason::CalendarMissing => "no holiday calendar for this year",
            Reason::ServiceNumber => "emergency or service number",
            Reason::Inbound => "inbound call from the upstream",
        }
    }
}

// Every reason is a bit of `Reasons`.
const _: () = assert!(Reason::ALL.len() <= 32);

/// A small set of reasons (a bitset, so deciding allocates nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reasons(u32);

impl Reasons {
    pub fn insert(&mut self, r: Reason) {
        self.0 |= 1 << r as u8;
    }
    pub fn contains(self, r: Reason) -> bool {
        self.0 & (1 << r as u8) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// In precedence order.
    pub fn iter(self) -> impl Iterator<Item = Reason> {
        Reason::ALL.into_iter().filter(move |r| self.contains(*r))
    }
    pub(crate) fn primary(self) -> Option<Reason> {
        self.iter().next()
    }
}

impl Serialize for Reasons {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|r| r.code()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Blocked,
    /// Emergency and service numbers: forwarded without checks.
    Emergency,
    /// Requests from the upstream toward the dialers: the outbound policy does not apply.
    Inbound,
    /// Shadow mode: the policy would have blocked the call; forwarded anyway.
    WouldBlock,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Blocked => "blocked",
            Verdict::Emergency => "emergency",
            Verdict::Inbound => "inbound",
            Verdict::WouldBlock => "would_block",
        }
    }
    pub fn forwards(self) -> bool {
        self != Verdict::Blocked
    }

    pub const ALL: [Verdict; 5] = [
        Verdict::Allowed,
        Verdict::Blocked,
        Verdict::Emergency,
        Verdict::Inbound,
        Verdict::WouldBlock,
    ];

    /// The verdict named as in the records (`allowed`, `would_block`...).
    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
        let s = String::deserialize(d)?;
        Reason::from_code(&s).ok_or_else(|| {
            let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
            serde::de::Error::custom(format!(
                "unknown reason code `{s}` (one of: {})",
                codes.join(", ")
            ))
        })
    }
}

/// Why a call is placed (what the law cares about first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Marketing = 0,
    Informational,
    DebtCollection,
}

/// How it is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallMethod {
    Manual = 0,
    Autodialed,
    Prerecorded,
}

impl Purpose {
    pub fn parse(s: &str) -> Option<Purpose> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "marketing" | "sales" | "telemarketing" => Some(Purpose::Marketing),
            "informational" => Some(Purpose::Informational),
            "debt_collection" => Some(Purpose::DebtCollection),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Marketing => "marketing",
            Purpose::Informational => "informational",
            Purpose::DebtCollection => "debt_collection",
        }
    }
}

impl CallMethod {
    pub fn parse(s: &str) -> Option<CallMethod> {
        match s.trim().to_ascii_lowercase().as_str() {
            "manual" => Some(CallMethod::Manual),
            "autodialed" | "autodialer" | "predictive" => Some(CallMethod::Autodialed),
            "prerecorded" | "artificial_voice" | "ai_voice" => Some(CallMethod::Prerecorded),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CallMethod::Manual => "manual",
            CallMethod::Autodialed => "autodialed",
            CallMethod::Prerecorded => "prerecorded",
        }
    }
}

/// One entry of a campaign's `allowed_call_types`: a purpose or a method.
/// In the configuration, a purpose or a method by name (`marketing`, `autodialed`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub enum CallType {
    Purpose(Purpose),
    Method(CallMethod),
}

impl CallType {
    pub fn parse(s: &str) -> Option<CallType> {
        Purpose::parse(s)
            .map(CallType::Purpose)
            .or_else(|| CallMethod::parse(s).map(CallType::Method))
    }
}

/// Deserialize through a type's own `parse`, naming what was expected when it fails.
fn parsed<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not {expected}")))
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Purpose, D::Error> {
        parsed(
            d,
            Purpose::parse,
            "marketing, informational or debt_collection",
        )
    }
}

impl<'de> Deserialize<'de> for CallMethod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CallMethod, D::Error> {
        parsed(d, CallMethod::parse, "manual, autodialed or prerecorded")
    }
}

impl<'de> Deserialize<'de> for CallType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CallType, D::Error> {
        parsed(
            d,
            CallType::parse,
            "a call type (marketing, informational, debt_collection, manual, autodialed or prerecorded)",
        )
    }
}

/// Whom a campaign calls (TSR 310.5(a)(2): whether the call reached a consumer or a business).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    Consumer,
    Business,
}

impl Audience {
    pub fn parse(s: &str) -> Option<Audience> {
        match s.trim().to_ascii_lowercase().as_str() {
            "consumer" | "consumers" => Some(Audience::Consumer),
            "business" | "businesses" | "b2b" => Some(Audience::Business),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Consumer => "consumer",
            Audience::Business => "business",
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Audience, D::Error> {
        parsed(d, Audience::parse, "consumer or business")
    }
}

impl Serialize for CallType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            CallType::Purpose(p) => p.as_str(),
            CallType::Method(m) => m.as_str(),
        })
    }
}
