//! Where a call is decided: `Policy::decide`. Input: the called number as extracted, the lists
//! in service, the time. Output: a `Decision` carrying the verdict, every reason that applied,
//! and the list snapshot it was made against (for the audit record).

pub mod calendar;
pub mod caps;
pub mod consent;
pub mod context;
pub mod emergency;
pub mod geo;
pub mod normalize;
pub mod rules;

pub mod explain;
pub mod hours;

use crate::config::{FailMode, PolicyConfig};
use crate::lists::{ListKind, ListSet, LoadedList, OptOuts, StaleTimes};
use caps::{CapKey, CapStore};
use consent::{ConsentRecord, ConsentStore};
use context::{CallContext, CallerId, Campaigns};
use emergency::Emergency;
use geo::{NpaTable, State, StateSet, Zone, Zones};
use rules::{Purpose, RuleBook, RuleKind};

enum Stale {
    Never,
    At(DateTime<Utc>),
    Always,
}
use chrono::{DateTime, Utc};
use normalize::{Called, E164};
use serde::Serialize;
use std::sync::Arc;

/// Why a call was blocked, or what was noted about it. The code is what appears in the
/// `Warning` header, the audit log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Reason {
    // Declared in precedence order: `r as usize` is the index into `Reason::ALL`.
    UnparseableNumber = 0,
    InternalDnc,
    NationalDnc,
    StateDnc,
    CustomDnc,
    ListUnavailable,
    StaleList,
    UnknownCampaign,
    CallTypeNotAllowed,
    StateOfEmergency,
    OptoutNoContact,
    WirelessNoCall,
    NoCallRule,
    ConsentRequired,
    CallerIdMissing,
    CallerIdUnlisted,
    FrequencyCap,
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
    pub const ALL: [Reason; 24] = [
        Reason::UnparseableNumber,
        Reason::InternalDnc,
        Reason::NationalDnc,
        Reason::StateDnc,
        Reason::CustomDnc,
        Reason::ListUnavailable,
        Reason::StaleList,
        Reason::UnknownCampaign,
        Reason::CallTypeNotAllowed,
        Reason::StateOfEmergency,
        Reason::OptoutNoContact,
        Reason::WirelessNoCall,
        Reason::NoCallRule,
        Reason::ConsentRequired,
        Reason::CallerIdMissing,
        Reason::CallerIdUnlisted,
        Reason::FrequencyCap,
        Reason::Holiday,
        Reason::OutsideHours,
        Reason::UnknownLocation,
        Reason::LineTypeUnknown,
        Reason::CalendarMissing,
        Reason::ServiceNumber,
        Reason::Inbound,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Reason::UnparseableNumber => "unparseable_number",
            Reason::InternalDnc => "internal_dnc",
            Reason::NationalDnc => "national_dnc",
            Reason::StateDnc => "state_dnc",
            Reason::CustomDnc => "custom_dnc",
            Reason::StaleList => "stale_list",
            Reason::ListUnavailable => "list_unavailable",
            Reason::UnknownCampaign => "unknown_campaign",
            Reason::CallTypeNotAllowed => "call_type_not_allowed",
            Reason::StateOfEmergency => "state_of_emergency",
            Reason::OptoutNoContact => "optout_no_contact",
            Reason::WirelessNoCall => "wireless_no_call",
            Reason::NoCallRule => "no_call_rule",
            Reason::ConsentRequired => "consent_required",
            Reason::CallerIdMissing => "caller_id_missing",
            Reason::CallerIdUnlisted => "caller_id_unlisted",
            Reason::FrequencyCap => "frequency_cap",
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
            Reason::InternalDnc => "number is on the company do-not-call list",
            Reason::NationalDnc => "number is on the National Do-Not-Call Registry",
            Reason::StateDnc => "number is on a state do-not-call list",
            Reason::CustomDnc => "number is on a suppression list",
            Reason::StaleList => "National DNC list missing or older than allowed",
            Reason::ListUnavailable => "a configured list could not be loaded",
            Reason::UnknownCampaign => "the campaign named by the dialer is not configured",
            Reason::CallTypeNotAllowed => "call type not allowed for this campaign",
            Reason::StateOfEmergency => "telephone solicitation suspended (state of emergency)",
            Reason::OptoutNoContact => "no contact allowed so soon after an opt-out",
            Reason::WirelessNoCall => "sales calls to wireless numbers are banned in this state",
            Reason::NoCallRule => "calls of this type are banned by a state rule",
            Reason::ConsentRequired => "call type requires consent and none is on record",
            Reason::CallerIdMissing => "no caller ID presented (anonymous or missing)",
            Reason::CallerIdUnlisted => "caller ID not allowed for this campaign",
            Reason::FrequencyCap => "too many calls to this number in the rolling window",
            Reason::Holiday => "no calls on this holiday in the called party's state",
            Reason::OutsideHours => "outside the legal calling hours at the called party",
            Reason::UnknownLocation => "area code has no known place or time zone",
            Reason::LineTypeUnknown => "a wireless rule applies but no wireless list is loaded",
            Reason::CalendarMissing => "no holiday calendar for this year",
            Reason::ServiceNumber => "emergency or service number",
            Reason::Inbound => "inbound call from the upstream",
        }
    }

    fn dnc_for(kind: ListKind) -> Reason {
        match kind {
            ListKind::National => Reason::NationalDnc,
            ListKind::State => Reason::StateDnc,
            ListKind::Internal => Reason::InternalDnc,
            ListKind::Custom | ListKind::Wireless => Reason::CustomDnc,
        }
    }
}

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
    pub fn primary(self) -> Option<Reason> {
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
}

/// Why the number could not be used, kept for the audit record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberProblem {
    Dial(crate::sip::uri::DialError),
    Normalize(normalize::NormalizeError),
    NoRequestUri,
}

impl std::fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NumberProblem::Dial(e) => e.fmt(f),
            NumberProblem::Normalize(e) => e.fmt(f),
            NumberProblem::NoRequestUri => f.write_str("no usable Request-URI or To"),
        }
    }
}

/// What one evaluated rule or list concluded (the "explain" of a decision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `RuleBook::rules[i]`.
    Rule(u8),
    /// `ListSet::lists[i]`.
    List(u8),
    OptOuts,
    Campaign,
    CallerId,
    Emergency,
    Location,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Block(Reason),
    /// A consent / EBR record in force exempted the call from this check.
    Exempt,
    /// A list entry not yet in force (e.g. MA: 60 days after it first appears).
    Pending,
    /// A state list for another state than the number's.
    OutOfScope,
    /// Failed, but the configuration says to fail open.
    FailOpen(Reason),
}

/// Every check a decision evaluated, in order; fixed capacity so deciding does not allocate.
#[derive(Clone, Copy)]
pub struct Trace {
    items: [(Check, Outcome); 48],
    len: u8,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            items: [(Check::Location, Outcome::Pass); 48],
            len: 0,
        }
    }
}

impl Trace {
    fn push(&mut self, c: Check, o: Outcome) {
        if (self.len as usize) < self.items.len() {
            self.items[self.len as usize] = (c, o);
            self.len += 1;
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = (Check, Outcome)> + '_ {
        self.items[..self.len as usize].iter().copied()
    }
}

#[derive(Default)]
struct Flags {
    block: bool,
    fail_open: bool,
}

impl Flags {
    /// A check that blocks the call.
    fn block(&mut self, d: &mut Decision, c: Check, r: Reason) {
        d.reasons.insert(r);
        d.trace.push(c, Outcome::Block(r));
        self.block = true;
    }

    /// A check that could not be made: fail closed or open as configured.
    fn fail(&mut self, d: &mut Decision, c: Check, r: Reason, mode: FailMode) {
        d.reasons.insert(r);
        match mode {
            FailMode::Reject => {
                self.block = true;
                d.trace.push(c, Outcome::Block(r));
            }
            FailMode::Allow => {
                self.fail_open = true;
                d.trace.push(c, Outcome::FailOpen(r));
            }
        }
    }
}

/// Where the called party is taken to be, and the local time that bound the decision.
#[derive(Clone, Copy, Debug, Default)]
pub struct Place {
    pub npa_state: Option<State>,
    pub address_state: Option<State>,
    pub zones: Zones,
    /// The zone whose local time decided the calling-hours checks (the one outside the window,
    /// or the one closest to closing) and that local time.
    pub binding: Option<(Zone, chrono::NaiveDateTime)>,
}

pub struct Decision {
    pub verdict: Verdict,
    pub reasons: Reasons,
    pub called: Result<Called, NumberProblem>,
    /// Set when a failure reason (stale or unavailable list, unparseable number) was noted but
    /// the configuration said to forward anyway.
    pub fail_open: bool,
    /// The list generation the decision was made against.
    pub lists: Arc<ListSet>,
    /// Bit i: `lists.lists[i]` matched.
    pub list_hits: u64,
    /// Opt-out journal sequence at decision time (the internal list's live version).
    pub optouts_seq: u64,
    /// The call's campaign and type (None for inbound calls).
    pub context: Option<CallContext>,
    pub rules: Arc<RuleBook>,
    pub place: Place,
    pub wireless: Option<bool>,
    /// The consent / EBR record that exempted the call from a check.
    pub consent: Option<Arc<ConsentRecord>>,
    pub consent_seq: u64,
    pub trace: Trace,
    /// Outside hours only: seconds until the calling window opens.
    pub retry_after: Option<u32>,
}

impl Decision {
    pub fn number(&self) -> Option<E164> {
        match self.called {
            Ok(Called::Number(n)) => Some(n),
            _ => None,
        }
    }
}

/// The durable per-number state the policy reads (and, for caps, writes).
pub struct PolicyState {
    pub consent: ConsentStore,
    pub caps: CapStore,
    pub emergency: Emergency,
}

impl PolicyState {
    pub fn in_memory() -> PolicyState {
        PolicyState {
            consent: ConsentStore::in_memory(),
            caps: CapStore::in_memory(),
            emergency: Emergency::in_memory(),
        }
    }
}

pub struct Policy {
    cfg: PolicyConfig,
    pub rules: Arc<RuleBook>,
    pub campaigns: Campaigns,
    pub npas: Arc<NpaTable>,
}

/// The shipped area-code table, parsed once.
pub fn npa_table() -> Arc<NpaTable> {
    static T: std::sync::OnceLock<Arc<NpaTable>> = std::sync::OnceLock::new();
    T.get_or_init(|| Arc::new(NpaTable::embedded())).clone()
}

impl Policy {
    /// Build from the configuration: reads the rules file and the holiday calendars.
    pub fn new(cfg: &crate::config::Config) -> Result<Policy, crate::config::ConfigError> {
        let rules = RuleBook::load(&cfg.policy.rules, &cfg.policy.holidays_dir)?;
        let (file, src) = &cfg.origin;
        let campaigns = Campaigns::from_config(file, src, &cfg.campaigns, &cfg.campaign)?;
        Ok(Policy {
            cfg: cfg.policy.clone(),
            rules: Arc::new(rules),
            campaigns,
            npas: npa_table(),
        })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The longest cap window of the rules (how long counters must be kept).
    pub fn longest_cap_secs(&self) -> u32 {
        self.rules
            .rules
            .iter()
            .filter_map(|r| match r.kind {
                RuleKind::Cap { window_secs, .. } => Some(window_secs),
                _ => None,
            })
            .max()
            .unwrap_or(86_400)
    }

    fn base(
        &self,
        called: Result<Called, NumberProblem>,
        lists: Arc<ListSet>,
        optouts: &OptOuts,
    ) -> Decision {
        Decision {
            verdict: Verdict::Allowed,
            reasons: Reasons::default(),
            called,
            fail_open: false,
            lists,
            list_hits: 0,
            optouts_seq: optouts.seq(),
            context: None,
            rules: self.rules.clone(),
            place: Place::default(),
            wireless: None,
            consent: None,
            consent_seq: 0,
            trace: Trace::default(),
            retry_after: None,
        }
    }

    /// A request from the upstream toward the dialers: the outbound policy does not apply, but
    /// the record still says what was called and which lists were in service.
    pub fn inbound(
        &self,
        called: Result<Called, NumberProblem>,
        lists: Arc<ListSet>,
        optouts: &OptOuts,
    ) -> Decision {
        let mut d = self.base(called, lists, optouts);
        d.reasons.insert(Reason::Inbound);
        d.verdict = Verdict::Inbound;
        d
    }

    /// Decide an outbound call. The caller passes the time; `commit` counts an allowed call
    /// toward frequency caps (false for "what if" checks).
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &self,
        ctx: CallContext,
        called: Result<Called, NumberProblem>,
        lists: Arc<ListSet>,
        optouts: &OptOuts,
        state: &PolicyState,
        now: DateTime<Utc>,
        commit: bool,
    ) -> Decision {
        let mut d = self.base(called, lists, optouts);
        d.consent_seq = state.consent.seq();
        let mut st = Flags::default();
        let n = match d.called {
            Ok(Called::Service(_)) => {
                d.reasons.insert(Reason::ServiceNumber);
                d.verdict = Verdict::Emergency;
                d.context = Some(ctx);
                return d;
            }
            Err(_) => {
                st.fail(
                    &mut d,
                    Check::Location,
                    Reason::UnparseableNumber,
                    self.cfg.on_unparseable_number,
                );
                None
            }
            Ok(Called::Number(n)) => Some(n),
        };
        if let Some(r) = ctx.problem {
            st.block(&mut d, Check::Campaign, r);
        }
        let marketing = ctx.purpose == Purpose::Marketing;
        // Caller ID (F10).
        if marketing && ctx.campaign.require_caller_id {
            let r = match ctx.caller_id {
                CallerId::Anonymous | CallerId::Missing => Some(Reason::CallerIdMissing),
                CallerId::Number(c)
                    if !ctx.campaign.caller_ids.is_empty()
                        && ctx.campaign.caller_ids.binary_search(&c).is_err() =>
                {
                    Some(Reason::CallerIdUnlisted)
                }
                CallerId::Number(_) => None,
            };
            match r {
                Some(r) => st.block(&mut d, Check::CallerId, r),
                None => d.trace.push(Check::CallerId, Outcome::Pass),
            }
        }
        let mut cap_keys: [(CapKey, bool); 4] = [((0, 0), false); 4];
        if let Some(n) = n {
            let lists = d.lists.clone();
            d.list_hits = lists.lookup(n);
            let records = state.consent.get(n);
            let day = now.date_naive();
            let seller = ctx.campaign.seller.as_deref();
            let campaign_id = &*ctx.campaign.id;
            let consent_defaults = &self.rules.consent;
            let find_consent = |kinds: rules::Bits| -> Option<Arc<ConsentRecord>> {
                records
                    .as_ref()?
                    .iter()
                    .rev()
                    .find(|r| {
                        kinds.has(r.kind as u8)
                            && r.covers(day, seller, campaign_id, consent_defaults)
                    })
                    .cloned()
            };
            // Place: area-code state and zones, plus the address a CRM import gave.
            let npa = n.nanp_national().map(|nat| (nat / 10_000_000) as u16);
            let info = npa.map(|a| *self.npas.get(a));
            let mut place = Place {
                npa_state: info.and_then(|i| i.state),
                zones: info.map(|i| i.zones).unwrap_or_default(),
                ..Place::default()
            };
            if let Some(rs) = &records {
                if let Some(r) = rs
                    .iter()
                    .rev()
                    .find(|r| r.address_state.is_some() || r.time_zone.is_some())
                {
                    place.address_state = r.address_state;
                    // Both places count: the call must be legal at either.
                    if let Some(z) = r.time_zone {
                        place.zones = place.zones.union(Zones::single(z));
                    }
                }
            }
            // The states whose rules apply: the area code's and the known address's.
            let mut states = StateSet::default();
            for s in [place.npa_state, place.address_state].into_iter().flatten() {
                states.insert(s);
            }
            // Lists.
            let on_optouts = optouts.contains(n);
            let mut opted_out = on_optouts;
            let mut bits = d.list_hits;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let l = &lists.lists[i];
                let c = Check::List(i as u8);
                let r = Reason::dnc_for(l.meta.kind);
                match l.meta.kind {
                    ListKind::National | ListKind::State => {
                        if !marketing {
                            continue;
                        }
                        if l.meta.kind == ListKind::State
                            && l.meta.state_code.is_some_and(|s| !states.contains(s))
                        {
                            d.trace.push(c, Outcome::OutOfScope);
                            continue;
                        }
                        if l.pending(n, now) {
                            d.trace.push(c, Outcome::Pending);
                            continue;
                        }
                        match find_consent(self.rules.consent.registry_exemptions) {
                            Some(rec) if !opted_out => {
                                d.trace.push(c, Outcome::Exempt);
                                d.consent.get_or_insert(rec);
                            }
                            _ => st.block(&mut d, c, r),
                        }
                    }
                    ListKind::Internal => {
                        opted_out = true;
                        st.block(&mut d, c, r);
                    }
                    ListKind::Custom => st.block(&mut d, c, r),
                    // Line type, not a ban: read below.
                    ListKind::Wireless => {}
                }
            }
            if on_optouts {
                st.block(&mut d, Check::OptOuts, Reason::InternalDnc);
            }
            d.wireless =
                (lists.wireless_mask != 0).then_some(d.list_hits & lists.wireless_mask != 0);
            // An opt-out revokes consent and ends an EBR (F4, F5): no record counts after one.
            let find_consent =
                |kinds: rules::Bits| if opted_out { None } else { find_consent(kinds) };
            // Freshness of the data the decision relies on.
            let stale = self.stale_times(&lists);
            if marketing && stale.national.is_none_or(|t| now > t) {
                st.fail(
                    &mut d,
                    Check::Location,
                    Reason::StaleList,
                    self.cfg.on_stale_national_list,
                );
            }
            if stale.others.is_some_and(|t| now > t) {
                st.fail(
                    &mut d,
                    Check::Location,
                    Reason::StaleList,
                    self.cfg.on_stale_list,
                );
            }
            if lists
                .unavailable
                .iter()
                .any(|u| u.kind != ListKind::National)
            {
                st.fail(
                    &mut d,
                    Check::Location,
                    Reason::ListUnavailable,
                    self.cfg.on_unavailable_list,
                );
            }
            // Place-based rules.
            if npa.is_some() && !info.is_some_and(|i| i.assigned) && marketing {
                st.fail(
                    &mut d,
                    Check::Location,
                    Reason::UnknownLocation,
                    self.cfg.on_unknown_location,
                );
            }
            if marketing
                && (npa.is_some_and(|a| state.emergency.npa_closed(a))
                    || state.emergency.any_closed(states))
            {
                st.block(&mut d, Check::Emergency, Reason::StateOfEmergency);
            }
            let mut mask = self.rules.mask_for(states);
            let mut hours_block = false;
            let mut ncap = 0;
            // Local times in the candidate zones, computed at the first hours rule (a call no
            // hours rule concerns never converts a time).
            let mut local: Option<([(Zone, chrono::NaiveDateTime); 11], usize)> = None;
            let mut best_slack = i32::MAX;
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let rule = &self.rules.rules[i];
                if !rule.applies_to(ctx.purpose, ctx.method) {
                    continue;
                }
                let c = Check::Rule(i as u8);
                if rule.wireless_only {
                    match d.wireless {
                        Some(false) => continue,
                        Some(true) => {}
                        None => {
                            st.fail(
                                &mut d,
                                c,
                                Reason::LineTypeUnknown,
                                self.cfg.on_unknown_line_type,
                            );
                            continue;
                        }
                    }
                }
                if rule.unless_consent.0 != 0 {
                    if let Some(rec) = find_consent(rule.unless_consent) {
                        d.trace.push(c, Outcome::Exempt);
                        d.consent.get_or_insert(rec);
                        continue;
                    }
                }
                let outcome = match &rule.kind {
                    RuleKind::Hours(h) => {
                        let rule_states = if rule.states.is_empty() {
                            states
                        } else {
                            StateSet(rule.states.0 & states.0)
                        };
                        let (times, nz) = local.get_or_insert_with(|| {
                            let mut a = [(Zone::Eastern, chrono::NaiveDateTime::default()); 11];
                            let mut n = 0;
                            for z in place.zones.iter() {
                                a[n] = (z, z.local(now));
                                n += 1;
                            }
                            (a, n)
                        });
                        let mut out = Outcome::Pass;
                        for &(z, t) in &times[..*nz] {
                            match hours::check(h, &self.rules.calendar, rule_states, t) {
                                hours::HoursCheck::Inside { slack } => {
                                    if out == Outcome::Pass
                                        && (slack as i32) < best_slack
                                        && !hours_block
                                    {
                                        best_slack = slack as i32;
                                        place.binding = Some((z, t));
                                    }
                                }
                                hours::HoursCheck::Outside { holiday } => {
                                    if !hours_block {
                                        place.binding = Some((z, t));
                                    }
                                    hours_block = true;
                                    out = Outcome::Block(if holiday {
                                        Reason::Holiday
                                    } else {
                                        Reason::OutsideHours
                                    });
                                    break;
                                }
                                hours::HoursCheck::NoCalendar => {
                                    out = Outcome::Block(Reason::CalendarMissing);
                                    break;
                                }
                            }
                        }
                        if out == Outcome::Block(Reason::CalendarMissing) {
                            st.fail(
                                &mut d,
                                c,
                                Reason::CalendarMissing,
                                self.cfg.on_missing_calendar,
                            );
                            continue;
                        }
                        out
                    }
                    RuleKind::ConsentRequired { consent } => match find_consent(*consent) {
                        Some(rec) => {
                            d.consent.get_or_insert(rec);
                            Outcome::Exempt
                        }
                        None => Outcome::Block(Reason::ConsentRequired),
                    },
                    RuleKind::NoCall => Outcome::Block(if rule.wireless_only {
                        Reason::WirelessNoCall
                    } else {
                        Reason::NoCallRule
                    }),
                    RuleKind::Cap {
                        calls,
                        window_secs,
                        per_subject,
                    } => {
                        let key = (
                            n.as_u64(),
                            if *per_subject {
                                ctx.campaign.subject_key
                            } else {
                                0
                            },
                        );
                        if ncap < cap_keys.len() && !cap_keys[..ncap].iter().any(|k| k.0 == key) {
                            cap_keys[ncap] = (key, true);
                            ncap += 1;
                        }
                        if state.caps.count(key, *window_secs, now.timestamp()) >= *calls {
                            Outcome::Block(Reason::FrequencyCap)
                        } else {
                            Outcome::Pass
                        }
                    }
                    RuleKind::OptoutNoContact { days } => match optouts.when(n) {
                        Some(t) if now < t + chrono::Duration::days(*days as i64) => {
                            Outcome::Block(Reason::OptoutNoContact)
                        }
                        None if opted_out => Outcome::Block(Reason::OptoutNoContact),
                        _ => Outcome::Pass,
                    },
                };
                match outcome {
                    Outcome::Block(r) => st.block(&mut d, c, r),
                    o => d.trace.push(c, o),
                }
            }
            d.place = place;
            if hours_block && self.cfg.retry_after_hours {
                d.retry_after =
                    hours::next_open(&self.rules, &place, states, ctx.purpose, ctx.method, now)
                        .map(|t| (t - now).num_seconds().clamp(1, u32::MAX as i64) as u32);
            }
        }
        d.verdict = match (st.block, ctx.campaign.shadow) {
            (false, _) => Verdict::Allowed,
            (true, true) => Verdict::WouldBlock,
            (true, false) => Verdict::Blocked,
        };
        if commit && d.verdict.forwards() {
            for (key, used) in &cap_keys {
                if *used {
                    state.caps.record(*key, now.timestamp());
                }
            }
        }
        d.fail_open = st.fail_open && d.verdict == Verdict::Allowed;
        d.context = Some(ctx);
        d
    }

    /// Days after its download date at which a list is stale: its own `max_age_days`, else the
    /// FTC's 31-day rule (`policy.national_max_age_days`).
    pub fn max_age_days(&self, l: &LoadedList) -> u32 {
        let own = l
            .meta
            .max_age_days
            .unwrap_or(self.cfg.national_max_age_days);
        match l.meta.kind {
            // The federal rule is a ceiling a manifest cannot raise.
            ListKind::National => own.min(self.cfg.national_max_age_days),
            _ => own,
        }
    }

    /// A list without a download date (an internal list) is never stale; one with a date is
    /// fresh for `max_age_days` after it.
    pub fn list_fresh(&self, l: &LoadedList, now: DateTime<Utc>) -> bool {
        match self.stale_at(l) {
            Stale::Never => true,
            Stale::At(t) => now <= t,
            Stale::Always => false,
        }
    }

    fn stale_at(&self, l: &LoadedList) -> Stale {
        if l.meta.downloaded.is_none() && !l.meta.sample {
            return if l.meta.kind == ListKind::National {
                Stale::Always
            } else {
                Stale::Never
            };
        }
        let from = if l.meta.sample {
            l.meta.loaded_at
        } else {
            l.meta.downloaded.expect("checked above")
        };
        Stale::At(from + chrono::Duration::days(self.max_age_days(l) as i64))
    }

    /// When the national list and the earliest other list go stale, cached per list generation.
    pub fn stale_times(&self, lists: &ListSet) -> StaleTimes {
        let key = self.cfg.national_max_age_days;
        if let Some((k, t)) = lists.stale_cache.get() {
            if *k == key {
                return *t;
            }
        }
        let national = lists.national().and_then(|l| match self.stale_at(l) {
            Stale::At(t) => Some(t),
            Stale::Never => Some(DateTime::<Utc>::MAX_UTC),
            Stale::Always => None,
        });
        let others = lists
            .lists
            .iter()
            .filter(|l| l.meta.kind != ListKind::National)
            .filter_map(|l| match self.stale_at(l) {
                Stale::At(t) => Some(t),
                Stale::Never => None,
                Stale::Always => Some(DateTime::<Utc>::MIN_UTC),
            })
            .min();
        let t = StaleTimes { national, others };
        let _ = lists.stale_cache.set((key, t));
        t
    }

    /// Freshness of the national list right now: (is fresh, age in seconds if known, why not).
    pub fn national_status(
        &self,
        lists: &ListSet,
        now: DateTime<Utc>,
    ) -> (bool, Option<i64>, &'static str) {
        match lists.national() {
            None if lists.national_unavailable() => (false, None, "national list failed to load"),
            None => (false, None, "no national list configured"),
            Some(l) => match l.meta.age(now) {
                None => (false, None, "national list has no download date"),
                Some(a) if a > chrono::Duration::days(self.max_age_days(l) as i64) => (
                    false,
                    Some(a.num_seconds()),
                    "national list is older than policy.national_max_age_days",
                ),
                Some(a) => (true, Some(a.num_seconds()), "fresh"),
            },
        }
    }
}

/// A "what if" question: the same context the SIP path derives from an INVITE.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct CheckRequest {
    pub number: String,
    /// RFC 3339; default now.
    pub at: Option<String>,
    pub campaign: Option<String>,
    /// Purpose and/or method, as in `X-Callgate-Call-Type`.
    pub call_type: Option<String>,
    /// Default: the campaign's first allowed caller ID (or "presented").
    pub caller_id: Option<String>,
}

/// What would happen to a call (as an operator types it): the admin check endpoint and
/// `callgate check` share this with the SIP path's normalization and policy. Counts nothing.
pub fn check_number(
    normalizer: &normalize::Normalizer,
    policy: &Policy,
    lists: &crate::lists::ListStore,
    state: &PolicyState,
    req: &CheckRequest,
    now: DateTime<Utc>,
) -> Result<Decision, String> {
    use crate::sip::uri::{Scheme, Uri};
    let at = match &req.at {
        Some(t) => DateTime::parse_from_rfc3339(t.trim())
            .map_err(|e| format!("at `{t}`: {e} (RFC 3339, e.g. 2026-11-24T15:00:00Z)"))?
            .with_timezone(&Utc),
        None => now,
    };
    let campaign = match req.campaign.as_deref() {
        Some(c) => Some(
            policy
                .campaigns
                .get(c)
                .ok_or_else(|| format!("no campaign `{c}`"))?,
        ),
        None => None,
    };
    let caller_id = match req.caller_id.as_deref() {
        Some(c) if c.eq_ignore_ascii_case("anonymous") => CallerId::Anonymous,
        Some(c) => CallerId::Number(c.parse().map_err(|e| format!("caller_id `{c}`: {e}"))?),
        None => {
            let c = campaign.unwrap_or(policy.campaigns.default_campaign());
            CallerId::Number(
                c.caller_ids
                    .first()
                    .copied()
                    .unwrap_or(E164::from_digits_unchecked(0)),
            )
        }
    };
    let ctx = policy.campaigns.classify(
        None,
        campaign.map(|c| c.id.as_bytes()),
        req.call_type.as_deref().map(str::as_bytes),
        caller_id,
    );
    if let Some(r) = ctx.problem {
        return Err(format!("{}: {}", r.code(), r.text()));
    }
    let uri = Uri {
        scheme: Scheme::Tel,
        user: Some(req.number.trim().as_bytes()),
        host: b"",
        port: None,
        params: b"",
        headers: None,
    };
    Ok(policy.decide(
        ctx,
        normalizer.called(&uri),
        lists.snapshot(),
        &lists.optouts,
        state,
        at,
        false,
    ))
}
