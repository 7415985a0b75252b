//! Where a call is decided: `Policy::decide`. Input: the called number as extracted, the lists
//! in service, the time. Output: a `Decision` carrying the verdict, every reason that applied,
//! and the list snapshot it was made against (for the audit record).

pub mod normalize;

use crate::config::{FailMode, PolicyConfig};
use crate::lists::{ListKind, ListSet, LoadedList, OptOuts, StaleTimes};

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
    ServiceNumber,
    Inbound,
}

impl Reason {
    /// In precedence order: the first one present is the "primary" reason of a decision.
    pub const ALL: [Reason; 9] = [
        Reason::UnparseableNumber,
        Reason::InternalDnc,
        Reason::NationalDnc,
        Reason::StateDnc,
        Reason::CustomDnc,
        Reason::ListUnavailable,
        Reason::StaleList,
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
            Reason::ServiceNumber => "emergency or service number",
            Reason::Inbound => "inbound call from the upstream",
        }
    }

    fn dnc_for(kind: ListKind) -> Reason {
        match kind {
            ListKind::National => Reason::NationalDnc,
            ListKind::State => Reason::StateDnc,
            ListKind::Internal => Reason::InternalDnc,
            ListKind::Custom => Reason::CustomDnc,
        }
    }
}

/// A small set of reasons (a bitset, so deciding allocates nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reasons(u16);

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
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Blocked => "blocked",
            Verdict::Emergency => "emergency",
            Verdict::Inbound => "inbound",
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
}

impl Decision {
    pub fn number(&self) -> Option<E164> {
        match self.called {
            Ok(Called::Number(n)) => Some(n),
            _ => None,
        }
    }
}

pub struct Policy {
    cfg: PolicyConfig,
}

impl Policy {
    pub fn new(cfg: PolicyConfig) -> Policy {
        Policy { cfg }
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// A request from the upstream toward the dialers: the outbound policy does not apply, but
    /// the record still says what was called and which lists were in service.
    pub fn inbound(
        &self,
        called: Result<Called, NumberProblem>,
        lists: Arc<ListSet>,
        optouts: &OptOuts,
    ) -> Decision {
        let mut reasons = Reasons::default();
        reasons.insert(Reason::Inbound);
        Decision {
            verdict: Verdict::Inbound,
            reasons,
            called,
            fail_open: false,
            lists,
            list_hits: 0,
            optouts_seq: optouts.seq(),
        }
    }

    /// Decide an outbound call. Pure apart from reading the lists: the caller passes the time.
    pub fn decide(
        &self,
        called: Result<Called, NumberProblem>,
        lists: Arc<ListSet>,
        optouts: &OptOuts,
        now: DateTime<Utc>,
    ) -> Decision {
        let mut reasons = Reasons::default();
        let mut block = false;
        let mut fail_open = false;
        let mut list_hits = 0;
        let mut apply_failure = |reasons: &mut Reasons, r: Reason, mode: FailMode| {
            reasons.insert(r);
            match mode {
                FailMode::Reject => block = true,
                FailMode::Allow => fail_open = true,
            }
        };
        let verdict = match called {
            Ok(Called::Service(_)) => {
                reasons.insert(Reason::ServiceNumber);
                Verdict::Emergency
            }
            Err(_) => {
                apply_failure(
                    &mut reasons,
                    Reason::UnparseableNumber,
                    self.cfg.on_unparseable_number,
                );
                if block {
                    Verdict::Blocked
                } else {
                    Verdict::Allowed
                }
            }
            Ok(Called::Number(n)) => {
                list_hits = lists.lookup(n);
                let mut dnc = false;
                let mut bits = list_hits;
                while bits != 0 {
                    let i = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    reasons.insert(Reason::dnc_for(lists.lists[i].meta.kind));
                    dnc = true;
                }
                if optouts.contains(n) {
                    reasons.insert(Reason::InternalDnc);
                    dnc = true;
                }
                let stale = self.stale_times(&lists);
                let national_fresh = stale.national.is_some_and(|t| now <= t);
                if !national_fresh {
                    apply_failure(
                        &mut reasons,
                        Reason::StaleList,
                        self.cfg.on_stale_national_list,
                    );
                }
                if stale.others.is_some_and(|t| now > t) {
                    apply_failure(&mut reasons, Reason::StaleList, self.cfg.on_stale_list);
                }
                if lists
                    .unavailable
                    .iter()
                    .any(|u| u.kind != ListKind::National)
                {
                    apply_failure(
                        &mut reasons,
                        Reason::ListUnavailable,
                        self.cfg.on_unavailable_list,
                    );
                }
                if dnc || block {
                    Verdict::Blocked
                } else {
                    Verdict::Allowed
                }
            }
        };
        Decision {
            verdict,
            reasons,
            called,
            fail_open: fail_open && verdict == Verdict::Allowed,
            lists,
            list_hits,
            optouts_seq: optouts.seq(),
        }
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

/// What would happen to a call to `number` (as an operator types it) at `now`: the admin
/// check endpoint and `callgate check` share this with the SIP path's normalization.
pub fn check_number(
    normalizer: &normalize::Normalizer,
    policy: &Policy,
    lists: &crate::lists::ListStore,
    number: &str,
    now: DateTime<Utc>,
) -> Decision {
    use crate::sip::uri::{Scheme, Uri};
    let uri = Uri {
        scheme: Scheme::Tel,
        user: Some(number.trim().as_bytes()),
        host: b"",
        port: None,
        params: b"",
        headers: None,
    };
    policy.decide(
        normalizer.called(&uri),
        lists.snapshot(),
        &lists.optouts,
        now,
    )
}
