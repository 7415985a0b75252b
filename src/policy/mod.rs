//! Where a call is decided: `Policy::decide`. Input: the called number as extracted, the lists
//! in service, the time. Output: a `Decision` carrying the verdict, every reason that applied,
//! and the list snapshot it was made against (for the audit record).

pub mod abandon;
pub mod calendar;
pub mod caps;
pub mod consent;
pub mod context;
mod decide;
pub mod emergency;
pub mod rules;

pub mod explain;
pub mod hours;

pub use decide::Against;

use crate::call::{Reason, Reasons, Verdict};
use crate::config::{FailMode, PolicyConfig};
use crate::lists::{ListKind, ListSet, LoadedList, OptOuts, StaleTimes};
use crate::number::geo::{Country, NpaTable, State, Zone, Zones};
use crate::number::{Called, NumberProblem, E164};
use caps::{CapAnswer, CapStore, CapsDue};
use consent::{ConsentRecord, ConsentStore};
use context::{CallContext, CallerId, Campaigns};
use emergency::Emergency;
use rules::{RuleBook, RuleKind};

enum Stale {
    Never,
    At(DateTime<Utc>),
    Always,
}
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The reason a hit on a list of this kind gives.
fn dnc_for(kind: ListKind) -> Reason {
    match kind {
        ListKind::National => Reason::NationalDnc,
        ListKind::State => Reason::StateDnc,
        ListKind::Internal => Reason::InternalDnc,
        ListKind::Custom | ListKind::Wireless => Reason::CustomDnc,
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
    Abandonment,
    Emergency,
    Location,
    /// The Reassigned Numbers Database's answers.
    Reassigned,
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
    /// A cap counted in the shared database, not counted: the call was decided without it
    /// (blocked by another check, or only a "what if"), or is still being counted.
    NotCounted,
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

    /// Settle the outcome check `c` left open (`Outcome::NotCounted`).
    fn settle(&mut self, c: Check, o: Outcome) {
        let items = &mut self.items[..self.len as usize];
        if let Some(item) = items
            .iter_mut()
            .find(|(ic, io)| *ic == c && *io == Outcome::NotCounted)
        {
            item.1 = o;
        }
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
    /// The country of the number (by its area code for +1; None outside the NANP).
    pub country: Option<Country>,
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
    /// The Reassigned Numbers Database answer the decision rests on: the `yes` that voided a
    /// consent the call would have been placed under, else the `no` that met the safe harbor.
    pub rnd_used: Option<Arc<ConsentRecord>>,
    pub consent_seq: u64,
    pub trace: Trace,
    /// Outside hours only: seconds until the calling window opens.
    pub retry_after: Option<u32>,
    /// The caps this call must still be counted against in the shared database before it
    /// goes ahead (`settle_caps`); empty without `[shared]`.
    pub caps_due: CapsDue,
}

impl Decision {
    /// The shared database's answer for `caps_due`: a cap already reached blocks the call (a
    /// shadow campaign's would-block); no answer fails as `on_unknown` says. Only a call the
    /// rest of the policy let through is counted, so only its verdict can change here.
    pub fn settle_caps(&mut self, answer: CapAnswer, on_unknown: crate::config::FailMode) {
        use crate::config::FailMode;
        let due = std::mem::take(&mut self.caps_due);
        let (mut block, mut fail_open) = (false, false);
        for (i, cap) in due.iter().enumerate() {
            let outcome = match &answer {
                Ok(reached) if *reached == Some(i) => Outcome::Block(Reason::FrequencyCap),
                Ok(Some(r)) if i > *r => continue, // not counted: an earlier cap was reached
                Ok(_) => Outcome::Pass,
                Err(_) if on_unknown == FailMode::Allow => {
                    Outcome::FailOpen(Reason::FrequencyCapUnknown)
                }
                Err(_) => Outcome::Block(Reason::FrequencyCapUnknown),
            };
            match outcome {
                Outcome::Block(r) => {
                    self.reasons.insert(r);
                    block = true;
                }
                Outcome::FailOpen(r) => {
                    self.reasons.insert(r);
                    fail_open = true;
                }
                _ => {}
            }
            self.trace.settle(cap.check, outcome);
        }
        let shadow = self.context.as_ref().is_some_and(|c| c.campaign.shadow);
        if block {
            self.verdict = if shadow {
                Verdict::WouldBlock
            } else {
                Verdict::Blocked
            };
            self.fail_open = false;
        } else if fail_open && self.verdict == Verdict::Allowed {
            self.fail_open = true;
        }
    }

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
    pub abandonment: abandon::Abandonment,
    /// Whether the state shared with other instances is known to be current.
    pub currency: Currency,
}

/// Whether the changes other instances made (opt-outs, consent, emergency closures) are known
/// to be here: how long ago the shared database last confirmed it, on the monotonic clock (a
/// wall clock stepped back or forth neither extends nor cuts a confirmation). A standalone
/// instance is always current.
pub struct Currency {
    /// None: standalone. Else the longest a confirmation holds, and what to do past it.
    shared: Option<(std::time::Duration, crate::config::FailMode)>,
    /// What confirmations are measured from.
    base: std::time::Instant,
    /// Milliseconds after `base` of the last confirmation, plus one; 0 for none yet.
    confirmed_ms: std::sync::atomic::AtomicU64,
}

impl Currency {
    pub fn standalone() -> Currency {
        Currency {
            shared: None,
            base: std::time::Instant::now(),
            confirmed_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Current only while confirmed within `max_lag`; not current before the first time.
    pub fn shared(max_lag: std::time::Duration, on_stale: crate::config::FailMode) -> Currency {
        Currency {
            shared: Some((max_lag, on_stale)),
            ..Currency::standalone()
        }
    }

    /// Everything the database held at `asked` (taken before the read) has been applied.
    pub fn confirm(&self, asked: std::time::Instant) {
        let ms = asked.saturating_duration_since(self.base).as_millis() as u64 + 1;
        self.confirmed_ms
            .fetch_max(ms, std::sync::atomic::Ordering::AcqRel);
    }

    /// How long ago the state was last confirmed current (None: never, or standalone).
    pub fn since_confirmed(&self) -> Option<std::time::Duration> {
        let ms = self.confirmed_ms.load(std::sync::atomic::Ordering::Acquire);
        let at = self.base + std::time::Duration::from_millis(ms.checked_sub(1)?);
        Some(at.elapsed())
    }

    /// Shared: what to do when the shared database cannot answer. None when standalone.
    pub fn on_unavailable(&self) -> Option<crate::config::FailMode> {
        self.shared.map(|(_, mode)| mode)
    }

    /// None when current; else what to do with a marketing call.
    pub fn stale(&self) -> Option<crate::config::FailMode> {
        let (max_lag, on_stale) = self.shared?;
        match self.since_confirmed() {
            Some(ago) if ago <= max_lag => None,
            _ => Some(on_stale),
        }
    }
}

impl PolicyState {
    pub fn in_memory() -> PolicyState {
        PolicyState {
            consent: ConsentStore::in_memory(),
            caps: CapStore::in_memory(),
            emergency: Emergency::in_memory(),
            abandonment: abandon::Abandonment::in_memory(),
            currency: Currency::standalone(),
        }
    }
}

pub struct Policy {
    cfg: PolicyConfig,
    pub rules: Arc<RuleBook>,
    pub campaigns: Campaigns,
    pub npas: Arc<NpaTable>,
    /// `numbers.allowed_countries` as numbers (empty: any country).
    allowed_countries: Vec<u64>,
}

/// The shipped area-code table, parsed once.
pub(crate) fn npa_table() -> Arc<NpaTable> {
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
            allowed_countries: cfg
                .numbers
                .allowed_countries
                .iter()
                .filter_map(|c| c.trim_start_matches('+').parse().ok())
                .collect(),
        })
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Whether `numbers.allowed_countries` lets calls go to `n`'s country. Country codes are
    /// prefix-free (ITU-T E.164): a code is the number's country when its digits begin it.
    pub(crate) fn country_allowed(&self, n: E164) -> bool {
        self.allowed_countries.is_empty()
            || self
                .allowed_countries
                .iter()
                .any(|&code| n.has_calling_code(code))
    }

    /// The longest cap window of the rules (how long counters must be kept).
    pub(crate) fn longest_cap_secs(&self) -> u32 {
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
            rnd_used: None,
            consent_seq: 0,
            trace: Trace::default(),
            retry_after: None,
            caps_due: CapsDue::default(),
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
    pub(crate) fn list_fresh(&self, l: &LoadedList, now: DateTime<Utc>) -> bool {
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
    pub(crate) fn stale_times(&self, lists: &ListSet) -> StaleTimes {
        let key = self.cfg.national_max_age_days;
        if let Some((k, t)) = lists.stale_cache.get() {
            if *k == key {
                return *t;
            }
        }
        let national = self.national_stale_at(lists, Country::US);
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

    /// When `country`'s national list goes stale (None: it is missing, or has no date).
    pub(crate) fn national_stale_at(
        &self,
        lists: &ListSet,
        country: Country,
    ) -> Option<DateTime<Utc>> {
        lists
            .national_of(country)
            .and_then(|l| match self.stale_at(l) {
                Stale::At(t) => Some(t),
                Stale::Never => Some(DateTime::<Utc>::MAX_UTC),
                Stale::Always => None,
            })
    }

    /// Freshness of the national list right now: (is fresh, age in seconds if known, why not).
    pub(crate) fn national_status(
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
    normalizer: &crate::number::Normalizer,
    policy: &Policy,
    lists: &crate::lists::ListStore,
    state: &PolicyState,
    req: &CheckRequest,
    now: DateTime<Utc>,
) -> Result<Decision, String> {
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
                    .map(|g| g.number)
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
    let against = Against {
        lists: lists.snapshot(),
        optouts: &lists.optouts,
        state,
        now: at,
    };
    let called = normalizer.called(Some(req.number.trim().as_bytes()));
    Ok(policy.decide(ctx, called, against, false))
}
