//! `Policy::decide`: an outbound call, checked step by step. Every step adds to one `Decision`
//! (reasons, the trace of what each list and rule concluded, the consent record that exempted
//! the call); the verdict comes from whether any step blocked it.

use super::caps::{CapDue, CapKey};
use super::consent::{ConsentRecord, Records, RndAnswer};
use super::context::{CallContext, CallerId};
use super::hours;
use super::rules::{Bits, CountryPolicy, Rule, RuleKind};
use super::{dnc_for, Check, Decision, Flags, Outcome, Place, Policy, PolicyState};
use crate::call::{CallMethod, Purpose};
use crate::call::{Reason, Verdict};
use crate::config::FailMode;
use crate::lists::{ListKind, ListSet, OptOuts};
use crate::number::geo::{Country, NpaInfo, StateSet, Zone, Zones};
use crate::number::{Called, NumberProblem, E164};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::sync::Arc;

/// What a decision is made against: the lists and opt-outs in service, the consent, cap and
/// emergency state, and the time of the call.
pub struct Against<'a> {
    pub lists: Arc<ListSet>,
    pub optouts: &'a OptOuts,
    pub state: &'a PolicyState,
    pub now: DateTime<Utc>,
}

impl Policy {
    /// Decide an outbound call. `commit` counts an allowed call toward frequency caps (false
    /// for "what if" checks).
    pub fn decide(
        &self,
        ctx: CallContext,
        called: Result<Called, NumberProblem>,
        at: Against<'_>,
        commit: bool,
    ) -> Decision {
        // The decision is built in place: the steps borrow it, so it is never copied.
        let mut d = self.base(called, at.lists, at.optouts);
        d.consent_seq = at.state.consent.seq();
        let env = Env {
            optouts: at.optouts,
            state: at.state,
            now: at.now,
        };
        Run {
            p: self,
            ctx: &ctx,
            env,
            d: &mut d,
            flags: Flags::default(),
            marketing: ctx.purpose == Purpose::Marketing,
            caps: CapKeys::default(),
            commit,
            caps_held: None,
        }
        .checks();
        d.context = Some(ctx);
        d
    }
}

/// `Against` without the lists, which the decision holds.
#[derive(Clone, Copy)]
struct Env<'a> {
    optouts: &'a OptOuts,
    state: &'a PolicyState,
    now: DateTime<Utc>,
}

/// One decision being made.
struct Run<'a> {
    p: &'a Policy,
    ctx: &'a CallContext,
    env: Env<'a>,
    d: &'a mut Decision,
    flags: Flags,
    marketing: bool,
    /// The cap counters the rules consulted: counted when the call is allowed.
    caps: CapKeys,
    /// Count an allowed call toward frequency caps (false for "what if" checks).
    commit: bool,
    /// The called number's cap counters, held from the first count until the call is
    /// recorded in them (`finish`), when committing.
    caps_held: Option<std::sync::MutexGuard<'a, ()>>,
}

impl<'a> Run<'a> {
    /// The checks, in order.
    fn checks(mut self) {
        match self.d.called {
            Ok(Called::Service(_)) => return self.emergency_number(),
            Ok(Called::Number(n)) => {
                self.check_campaign();
                self.check_caller_id();
                self.check_abandonment();
                self.check_number(n);
            }
            Err(_) => {
                let mode = self.p.cfg.on_unparseable_number;
                self.fail(Check::Location, Reason::UnparseableNumber, mode);
                self.check_campaign();
                self.check_caller_id();
            }
        }
        self.finish()
    }

    fn block(&mut self, c: Check, r: Reason) {
        self.flags.block(self.d, c, r);
    }

    fn fail(&mut self, c: Check, r: Reason, mode: FailMode) {
        self.flags.fail(self.d, c, r, mode);
    }

    fn note(&mut self, c: Check, outcome: Outcome) {
        match outcome {
            Outcome::Block(r) => self.block(c, r),
            o => self.d.trace.push(c, o),
        }
    }

    /// Emergency and service numbers are forwarded without any check.
    fn emergency_number(self) {
        self.d.reasons.insert(Reason::ServiceNumber);
        self.d.verdict = Verdict::Emergency;
    }

    /// An unknown campaign or a call type the campaign may not place.
    fn check_campaign(&mut self) {
        if let Some(r) = self.ctx.problem {
            self.block(Check::Campaign, r);
        }
    }

    /// Marketing calls present a caller ID, one of the campaign's when it lists them, within the
    /// period it is authorized for (F10; TSR 310.5(a)(2)).
    fn check_caller_id(&mut self) {
        let campaign = &self.ctx.campaign;
        if !self.marketing || !campaign.require_caller_id {
            return;
        }
        match self.ctx.caller_id {
            CallerId::Anonymous | CallerId::Missing => {
                self.block(Check::CallerId, Reason::CallerIdMissing)
            }
            CallerId::Number(c)
                if !campaign.caller_ids.is_empty()
                    && !campaign
                        .caller_id_grant(c)
                        .is_some_and(|g| g.covers(self.env.now.date_naive())) =>
            {
                self.block(Check::CallerId, Reason::CallerIdUnlisted)
            }
            CallerId::Number(_) => self.d.trace.push(Check::CallerId, Outcome::Pass),
        }
    }

    /// A campaign with `max_abandonment_rate` places no marketing call while its last 30 days
    /// abandoned more than that share of its answered calls (once it has enough of them).
    fn check_abandonment(&mut self) {
        let campaign = &self.ctx.campaign;
        let Some(limit) = campaign.max_abandonment_rate else {
            return;
        };
        if !self.marketing {
            return;
        }
        let t = self
            .env
            .state
            .abandonment
            .tally(&campaign.id, self.env.now.date_naive());
        let over =
            t.answered >= campaign.abandonment_min_answered && t.rate().is_some_and(|r| r > limit);
        match over {
            true => self.block(Check::Abandonment, Reason::AbandonmentRate),
            false => self.d.trace.push(Check::Abandonment, Outcome::Pass),
        }
    }

    /// Everything that depends on the number: lists, data freshness, place, rules.
    fn check_number(&mut self, n: E164) {
        let (npa, info) = self.area_code(n);
        let country = self.check_country(n, info);
        self.d.list_hits = self.d.lists.lookup(n);
        let mut consents = Consents::of(self, n);
        let mut place = place_of(info, &consents);
        if let Some(policy) = country {
            place.country = Some(policy.code);
            place.zones = place.zones.union(policy.zones);
        }
        // The states whose rules apply: the area code's and the known address's.
        let mut states = StateSet::default();
        for s in [place.npa_state, place.address_state].into_iter().flatten() {
            states.insert(s);
        }
        self.check_lists(n, place.country, states, &mut consents);
        self.check_freshness(place.country);
        self.check_location(npa, info);
        self.check_emergency_closures(npa, states);
        let hours_blocked = self.apply_rules(n, states, &mut place, &consents);
        self.check_rnd_safe_harbor(&consents, place.country);
        self.d.place = place;
        if hours_blocked && self.p.cfg.retry_after_hours {
            self.d.retry_after = self.seconds_until_open(&place, states);
        }
    }

    /// A check a consent would have let through, had the number not been disconnected since
    /// (47 CFR 64.1200(m)), blocked: said once, with the RND answer that voided the consent.
    fn reassigned(&mut self, answer: Arc<ConsentRecord>) {
        if !self.d.reasons.contains(Reason::NumberReassigned) {
            self.d.rnd_used = Some(answer);
            self.block(Check::Reassigned, Reason::NumberReassigned);
        }
    }

    /// With `policy.rnd_max_age_days`, an automated call to a US number placed under consent
    /// needs the database's `no` about a date no later than the earliest consent relied on
    /// (no disconnection since then), queried recently enough. The database holds US numbers.
    fn check_rnd_safe_harbor(&mut self, consents: &Consents<'_>, country: Option<Country>) {
        let (Some(days), Some(since_consent)) =
            (self.p.cfg.rnd_max_age_days, consents.relied_since.get())
        else {
            return;
        };
        if self.ctx.method == CallMethod::Manual || country != Some(Country::US) {
            return;
        }
        let fresh_from = self.env.now.date_naive() - chrono::Duration::days(i64::from(days));
        let no = consents.records.iter().flat_map(|r| r.iter()).find(|r| {
            r.rnd
                .is_some_and(|a| a.answer == RndAnswer::No && a.queried >= fresh_from)
                && r.captured <= since_consent
        });
        match no {
            Some(answer) => {
                self.d.rnd_used.get_or_insert_with(|| answer.clone());
            }
            None => self.block(Check::Reassigned, Reason::RndCheckMissing),
        }
    }

    /// The called country. Outside `numbers.allowed_countries` every call is blocked.
    /// A country without a policy in the rules (`[[country]]`; every country outside the NANP
    /// for now) leaves its law unknown (consent, hours, lists): the call fails as configured,
    /// closed for marketing by default.
    /// Returns the policy of a country outside the NANP that has one.
    fn check_country(&mut self, n: E164, info: Option<NpaInfo>) -> Option<&'a CountryPolicy> {
        if !self.p.country_allowed(n) {
            self.block(Check::Location, Reason::CountryNotAllowed);
        }
        let p: &'a Policy = self.p;
        let (foreign, has_policy) = match (n.nanp_national(), info) {
            (None, _) => {
                let foreign = p.rules.policy_for(n);
                (foreign, foreign.is_some())
            }
            (Some(_), Some(i)) if i.assigned => {
                (None, i.country.is_some_and(|c| p.rules.has_policy(c)))
            }
            // An unassigned area code is `unknown_location`'s.
            (Some(_), _) => (None, true),
        };
        if !has_policy {
            let cfg = &self.p.cfg;
            let mode = match self.marketing {
                true => cfg.on_country_not_configured,
                false => cfg.country_not_configured_other,
            };
            self.fail(Check::Location, Reason::CountryNotConfigured, mode);
        }
        foreign
    }

    fn area_code(&self, n: E164) -> (Option<u16>, Option<NpaInfo>) {
        let npa = n.nanp_national().map(|nat| (nat / 10_000_000) as u16);
        (npa, npa.map(|a| *self.p.npas.get(a)))
    }

    /// The lists the number is on. Registry lists (national, state) concern marketing calls
    /// within their scope and effective date, and consent exempts from them; internal and
    /// custom lists always block. An opt-out (on the internal list or in the journal) revokes
    /// consent for everything after it.
    fn check_lists(
        &mut self,
        n: E164,
        country: Option<Country>,
        states: StateSet,
        consents: &mut Consents<'_>,
    ) {
        let lists = self.d.lists.clone();
        let on_optouts = self.env.optouts.contains(n);
        consents.revoked = on_optouts;
        let mut bits = self.d.list_hits;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let l = &lists.lists[i];
            let c = Check::List(i as u8);
            let r = dnc_for(l.meta.kind);
            match l.meta.kind {
                ListKind::National | ListKind::State => {
                    if !self.marketing {
                        continue;
                    }
                    let out_of_scope = match l.meta.kind {
                        ListKind::State => l.meta.state_code.is_some_and(|s| !states.contains(s)),
                        // Another country's registry: its numbers only.
                        _ => country.is_some_and(|c| c != l.meta.country),
                    };
                    if out_of_scope {
                        self.d.trace.push(c, Outcome::OutOfScope);
                    } else if l.pending(n, self.env.now) {
                        self.d.trace.push(c, Outcome::Pending);
                    } else {
                        match consents.find(self.p.rules.consent.registry_exemptions) {
                            Lookup::Covered(rec) => self.exempt(c, rec),
                            Lookup::Voided(answer) => {
                                self.block(c, r);
                                self.reassigned(answer);
                            }
                            Lookup::None => self.block(c, r),
                        }
                    }
                }
                ListKind::Internal => {
                    consents.revoked = true;
                    self.block(c, r);
                }
                ListKind::Custom => self.block(c, r),
                // Line type, not a ban: read by the wireless rules.
                ListKind::Wireless => {}
            }
        }
        if on_optouts {
            self.block(Check::OptOuts, Reason::InternalDnc);
        }
        self.d.wireless =
            (lists.wireless_mask != 0).then_some(self.d.list_hits & lists.wireless_mask != 0);
    }

    /// A consent or EBR record exempted the call from check `c`; the first one is recorded.
    fn exempt(&mut self, c: Check, rec: Arc<ConsentRecord>) {
        self.d.trace.push(c, Outcome::Exempt);
        self.d.consent.get_or_insert(rec);
    }

    /// The decision relies on lists that are fresh and loaded.
    /// The national list checked is the called country's: the US registry for a US number
    /// (or one of no known country), a country's own when its policy asks for one.
    fn check_freshness(&mut self, country: Option<Country>) {
        let (now, cfg) = (self.env.now, &self.p.cfg);
        let stale = self.p.stale_times(&self.d.lists);
        let national = match country {
            None | Some(Country::US) => Some(stale.national),
            Some(c) => match self.p.rules.country(c) {
                Some(policy) if policy.national_list => {
                    Some(self.p.national_stale_at(&self.d.lists, c))
                }
                _ => None,
            },
        };
        if self.marketing && national.is_some_and(|n| n.is_none_or(|t| now > t)) {
            self.fail(
                Check::Location,
                Reason::StaleList,
                cfg.on_stale_national_list,
            );
        }
        if stale.others.is_some_and(|t| now > t) {
            self.fail(Check::Location, Reason::StaleList, cfg.on_stale_list);
        }
        if let Some(mode) = self.env.state.currency.stale().filter(|_| self.marketing) {
            self.fail(Check::OptOuts, Reason::SharedStateStale, mode);
        }
        let unavailable = &self.d.lists.unavailable;
        if unavailable.iter().any(|u| u.kind != ListKind::National) {
            self.fail(
                Check::Location,
                Reason::ListUnavailable,
                cfg.on_unavailable_list,
            );
        }
    }

    /// A NANP number whose area code is not in service has no known place or time.
    fn check_location(&mut self, npa: Option<u16>, info: Option<NpaInfo>) {
        if npa.is_some() && !info.is_some_and(|i| i.assigned) && self.marketing {
            let mode = self.p.cfg.on_unknown_location;
            self.fail(Check::Location, Reason::UnknownLocation, mode);
        }
    }

    /// A state of emergency closes marketing calls to its area codes or states.
    fn check_emergency_closures(&mut self, npa: Option<u16>, states: StateSet) {
        let e = &self.env.state.emergency;
        if self.marketing && (npa.is_some_and(|a| e.npa_closed(a)) || e.any_closed(states)) {
            self.block(Check::Emergency, Reason::StateOfEmergency);
        }
    }

    /// The rules of the federal level and of `states` that concern this call type, in file
    /// order. Returns whether a calling-hours rule blocked the call.
    fn apply_rules(
        &mut self,
        n: E164,
        states: StateSet,
        place: &mut Place,
        consents: &Consents<'_>,
    ) -> bool {
        let p: &'a Policy = self.p;
        let rules = &p.rules;
        let mut hours = HoursRun::default();
        let mut mask = rules.mask_for(place.country, states);
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let rule = &rules.rules[i];
            let c = Check::Rule(i as u8);
            if !rule.applies_to(self.ctx.purpose, self.ctx.method) || !self.line_type_fits(rule, c)
            {
                continue;
            }
            let mut voided = None;
            if rule.unless_consent.0 != 0 {
                match consents.find(rule.unless_consent) {
                    Lookup::Covered(rec) => {
                        self.exempt(c, rec);
                        continue;
                    }
                    Lookup::Voided(answer) => voided = Some(answer),
                    Lookup::None => {}
                }
            }
            let outcome = match &rule.kind {
                RuleKind::Hours(h) => {
                    match hours.check(self, h, hours::Where::for_rule(rule, states), place) {
                        Ok(o) => o,
                        Err(Untimed::NoCalendar) => {
                            let mode = self.p.cfg.on_missing_calendar;
                            self.fail(c, Reason::CalendarMissing, mode);
                            continue;
                        }
                        Err(Untimed::NoZone) => {
                            let mode = self.p.cfg.on_unknown_location;
                            self.fail(c, Reason::UnknownLocation, mode);
                            continue;
                        }
                    }
                }
                RuleKind::ConsentRequired { consent } => match consents.find(*consent) {
                    Lookup::Covered(rec) => {
                        self.d.consent.get_or_insert(rec);
                        Outcome::Exempt
                    }
                    Lookup::Voided(answer) => {
                        voided = Some(answer);
                        Outcome::Block(Reason::ConsentRequired)
                    }
                    Lookup::None => Outcome::Block(Reason::ConsentRequired),
                },
                RuleKind::NoCall if rule.wireless_only => Outcome::Block(Reason::WirelessNoCall),
                RuleKind::NoCall => Outcome::Block(Reason::NoCallRule),
                RuleKind::Cap {
                    calls,
                    window_secs,
                    per_subject,
                } => self.cap(c, n, *calls, *window_secs, *per_subject),
                RuleKind::OptoutNoContact { days } => {
                    self.optout_no_contact(n, *days, consents.revoked)
                }
            };
            // The consent that would have let this rule pass was given before the number
            // changed hands.
            if let (Outcome::Block(_), Some(answer)) = (outcome, voided) {
                self.reassigned(answer);
            }
            self.note(c, outcome);
        }
        hours.blocked
    }

    /// A wireless-only rule concerns wireless numbers; with no wireless list loaded the line
    /// type is unknown (fail as configured). False when the rule does not apply.
    fn line_type_fits(&mut self, rule: &Rule, c: Check) -> bool {
        if !rule.wireless_only {
            return true;
        }
        match self.d.wireless {
            Some(wireless) => wireless,
            None => {
                let mode = self.p.cfg.on_unknown_line_type;
                self.fail(c, Reason::LineTypeUnknown, mode);
                false
            }
        }
    }

    /// A frequency cap: the calls to this number (per subject, when the rule says so) within
    /// the window. The counter is remembered so an allowed call is counted once. With
    /// `[shared]` the count is every instance's, in the shared database: the cap is left to
    /// count there (`Decision::settle_caps`) if the rest of the policy lets the call through.
    fn cap(
        &mut self,
        c: Check,
        n: E164,
        calls: u8,
        window_secs: u32,
        per_subject: bool,
    ) -> Outcome {
        let subject = if per_subject {
            self.ctx.campaign.subject_key
        } else {
            0
        };
        let key = (n.as_u64(), subject);
        if self.env.state.currency.on_unavailable().is_some() {
            if !self.commit {
                return Outcome::NotCounted;
            }
            let due = CapDue {
                key,
                calls,
                window_secs,
                check: c,
            };
            return match self.d.caps_due.push(due) {
                true => Outcome::NotCounted,
                false => Outcome::Block(Reason::FrequencyCapUnknown),
            };
        }
        self.caps.consulted(key);
        if self.commit && self.caps_held.is_none() {
            self.caps_held = Some(self.env.state.caps.hold(n.as_u64()));
        }
        let now = self.env.now.timestamp();
        if self.env.state.caps.count(key, window_secs, now) >= calls {
            Outcome::Block(Reason::FrequencyCap)
        } else {
            Outcome::Pass
        }
    }

    /// No contact for `days` after an opt-out (dated by the journal; an internal-list entry
    /// has no date and counts as recent).
    fn optout_no_contact(&self, n: E164, days: u32, opted_out: bool) -> Outcome {
        match self.env.optouts.when(n) {
            Some(t) if self.env.now < t + chrono::Duration::days(days as i64) => {
                Outcome::Block(Reason::OptoutNoContact)
            }
            None if opted_out => Outcome::Block(Reason::OptoutNoContact),
            _ => Outcome::Pass,
        }
    }

    /// Outside hours: seconds until the calling window opens at every place.
    fn seconds_until_open(&self, place: &Place, states: StateSet) -> Option<u32> {
        let (ctx, now) = (self.ctx, self.env.now);
        hours::next_open(&self.p.rules, place, states, ctx.purpose, ctx.method, now)
            .map(|t| (t - now).num_seconds().clamp(1, u32::MAX as i64) as u32)
    }

    /// The verdict (shadow campaigns forward what they would block), then the cap counts of
    /// a call that goes ahead.
    fn finish(self) {
        self.d.verdict = match (self.flags.block, self.ctx.campaign.shadow) {
            (false, _) => Verdict::Allowed,
            (true, true) => Verdict::WouldBlock,
            (true, false) => Verdict::Blocked,
        };
        if self.commit && self.d.verdict.forwards() {
            for key in self.caps.keys() {
                self.env.state.caps.record(key, self.env.now.timestamp());
            }
            self.d.caps_due.counted_anyway = self.ctx.campaign.shadow;
        } else {
            // A call that does not go ahead is not counted anywhere.
            self.d.caps_due = Default::default();
        }
        self.d.fail_open = self.flags.fail_open && self.d.verdict == Verdict::Allowed;
    }
}

/// Where the called party is: the area code's state and zones, and the address and zone a
/// consent record (a CRM import) gave; both places count, so the call must be legal at either.
fn place_of(info: Option<NpaInfo>, consents: &Consents<'_>) -> Place {
    let mut place = Place {
        country: info.and_then(|i| i.country),
        npa_state: info.and_then(|i| i.state),
        zones: info.map(|i| i.zones).unwrap_or_default(),
        ..Place::default()
    };
    let with_address = consents.records.as_ref().and_then(|rs| {
        rs.iter()
            .rev()
            .find(|r| r.address_state.is_some() || r.time_zone.is_some())
    });
    if let Some(r) = with_address {
        place.address_state = r.address_state;
        if let Some(z) = r.time_zone {
            place.zones = place.zones.union(Zones::single(z));
        }
    }
    place
}

/// The number's consent and EBR records, as they apply to this call.
struct Consents<'a> {
    records: Option<Records>,
    /// The earliest capture date of the records the call was let through under (the date an
    /// RND answer must speak for).
    relied_since: std::cell::Cell<Option<chrono::NaiveDate>>,
    day: chrono::NaiveDate,
    seller: Option<&'a str>,
    campaign: &'a str,
    defaults: &'a super::rules::ConsentDefaults,
    /// An opt-out revokes consent and ends an EBR (F4, F5): no record counts after one.
    revoked: bool,
}

impl<'a> Consents<'a> {
    fn of(run: &Run<'a>, n: E164) -> Consents<'a> {
        Consents {
            records: run.env.state.consent.get(n),
            relied_since: std::cell::Cell::new(None),
            day: run.env.now.date_naive(),
            seller: run.ctx.campaign.seller.as_deref(),
            campaign: &run.ctx.campaign.id,
            defaults: &run.p.rules.consent,
            revoked: false,
        }
    }

    /// The newest record of one of `kinds` that covers this call. Consent belongs to a
    /// person, not a number: a record the number's permanent disconnection came after (an
    /// RND answer) covers nothing, and the answer is returned to say so when no other record
    /// covers the call.
    fn find(&self, kinds: Bits) -> Lookup {
        if self.revoked {
            return Lookup::None;
        }
        let Some(records) = self.records.as_ref() else {
            return Lookup::None;
        };
        let mut voided = None;
        let covering = records.iter().rev().filter(|r| {
            kinds.has(r.kind as u8) && r.covers(self.day, self.seller, self.campaign, self.defaults)
        });
        for r in covering {
            match records
                .iter()
                .rev()
                .find(|a| a.disconnected_since(r.captured))
            {
                Some(answer) => {
                    voided.get_or_insert_with(|| answer.clone());
                }
                None => {
                    let earliest = self
                        .relied_since
                        .get()
                        .map_or(r.captured, |d| d.min(r.captured));
                    self.relied_since.set(Some(earliest));
                    return Lookup::Covered(r.clone());
                }
            }
        }
        voided.map_or(Lookup::None, Lookup::Voided)
    }
}

/// What a consent lookup found.
enum Lookup {
    Covered(Arc<ConsentRecord>),
    /// Only records the number's disconnection came after: the RND answer that says so.
    Voided(Arc<ConsentRecord>),
    None,
}

/// The calling-hours rules of one decision: local times in the candidate zones (computed at
/// the first hours rule, so a call no hours rule concerns converts no time), and which zone's
/// time binds the decision.
#[derive(Default)]
struct HoursRun {
    local: Option<([(Zone, NaiveDateTime); Zone::ALL.len()], usize)>,
    /// The smallest margin to closing seen so far (minutes), while nothing is outside.
    best_slack: Option<u16>,
    blocked: bool,
}

impl HoursRun {
    /// One hours rule at every candidate zone: the first zone outside the window blocks (a
    /// holiday or the hours). A place without a zone has no local time to check.
    fn check(
        &mut self,
        run: &Run<'_>,
        h: &super::rules::Hours,
        at: hours::Where,
        place: &mut Place,
    ) -> Result<Outcome, Untimed> {
        let now = run.env.now;
        let (times, nz) = self.local.get_or_insert_with(|| {
            let mut a = [(Zone::Eastern, NaiveDateTime::default()); Zone::ALL.len()];
            let mut n = 0;
            for z in place.zones.iter() {
                a[n] = (z, z.local(now));
                n += 1;
            }
            (a, n)
        });
        if *nz == 0 {
            return Err(Untimed::NoZone);
        }
        for &(z, t) in &times[..*nz] {
            match hours::check(h, &run.p.rules.calendar, at, t) {
                hours::HoursCheck::Inside { slack } => {
                    if !self.blocked && self.best_slack.is_none_or(|b| slack < b) {
                        self.best_slack = Some(slack);
                        place.binding = Some((z, t));
                    }
                }
                hours::HoursCheck::Outside { holiday } => {
                    if !self.blocked {
                        place.binding = Some((z, t));
                    }
                    self.blocked = true;
                    return Ok(Outcome::Block(if holiday {
                        Reason::Holiday
                    } else {
                        Reason::OutsideHours
                    }));
                }
                hours::HoursCheck::NoCalendar => return Err(Untimed::NoCalendar),
            }
        }
        Ok(Outcome::Pass)
    }
}

/// Why an hours rule could not be checked.
enum Untimed {
    /// The year has no calendar (the rule has a holiday window).
    NoCalendar,
    /// The number has no known time zone (a non-geographic code).
    NoZone,
}

/// The cap counters a decision consulted (one per cap rule at most).
#[derive(Default)]
struct CapKeys {
    keys: [CapKey; super::caps::MAX_CAP_RULES],
    n: usize,
}

impl CapKeys {
    fn consulted(&mut self, key: CapKey) {
        if self.n < self.keys.len() && !self.keys[..self.n].contains(&key) {
            self.keys[self.n] = key;
            self.n += 1;
        }
    }

    fn keys(&self) -> impl Iterator<Item = CapKey> + '_ {
        self.keys[..self.n].iter().copied()
    }
}
