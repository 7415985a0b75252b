//! The compliance side of the one door: `Compliance` implements the SIP core's `CallGate`.
//! For a new call it takes the called number and the call's context from the INVITE
//! (`extract`), asks the policy for a decision, counts it, writes its record (`record`), and
//! answers forward or a rejection (`reject`).

mod extract;
mod record;
mod reject;

pub use extract::number_of;
pub use record::Telemarketers;

use crate::audit::{AuditSink, Backlog};
use crate::call::Verdict;
use crate::clock::SharedClock;
use crate::config::{CallsConfig, FailMode, RejectConfig};
use crate::lists::ListStore;
use crate::metrics::Metrics;
use crate::number::{Called, Normalizer, NumberProblem};
use crate::policy::caps::{CapCounter, CapsUnknown};
use crate::policy::{Against, CheckRequest, Decision, Policy, PolicyState};
use crate::records::{OpenCalls, RecordMetrics};
use crate::sip::gate::{Admission, CallEvent, CallGate, CallNews, Later, NewCall};
use crate::sip::peer::Side;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use reject::Unrecordable;
use std::sync::Arc;
use std::time::Instant;

/// What a configuration reload swaps in on the compliance side.
#[derive(Clone)]
pub struct Rules {
    pub reject: RejectConfig,
    pub policy: Arc<Policy>,
    /// The headers a dialer tells a call's script and disposition in.
    pub calls: CallsConfig,
    pub telemarketers: Telemarketers,
}

pub struct Compliance {
    normalizer: Normalizer,
    lists: Arc<ListStore>,
    /// Consent, frequency-cap counters and emergency closures.
    pub state: Arc<PolicyState>,
    audit: AuditSink,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    rules: ArcSwap<Rules>,
    /// Our host, named in the `Warning` of a rejection.
    host: String,
    /// `audit.durability = "before-forward"`: a forwarded new INVITE waits for its record.
    before_forward: bool,
    /// `audit.on_write_error = "reject"`.
    refuse_unrecorded: bool,
    /// Forwarded calls not yet ended, and what their records will say.
    calls: OpenCalls,
    record_metrics: RecordMetrics,
    /// The audit backlog as last seen by `admit` (0 clear, 1 behind, 2 full): its changes
    /// are logged once each.
    backlog_seen: std::sync::atomic::AtomicU8,
    /// Where frequency caps are counted across instances (`[shared]`).
    caps: Option<Arc<dyn CapCounter>>,
    /// This gate, for the answers that come after `admit` returned.
    me: std::sync::Weak<Compliance>,
}

/// A decision made, not yet recorded: what its record and its call's record take.
struct Decided {
    heard: record::Heard,
    open: crate::records::OpenCall,
    decision: Decision,
    rules: Arc<Rules>,
    ts: DateTime<Utc>,
    received: Instant,
    key: crate::sip::gate::CallKey,
}

/// What `Compliance` is built from (everything but the rules is fixed for the process).
pub struct Parts {
    pub normalizer: Normalizer,
    pub lists: Arc<ListStore>,
    pub state: Arc<PolicyState>,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
    pub host: String,
    pub before_forward: bool,
    pub refuse_unrecorded: bool,
    /// With `[shared]`: the count of frequency caps across instances.
    pub caps: Option<Arc<dyn CapCounter>>,
}

impl Compliance {
    pub fn new(p: Parts, rules: Rules) -> Arc<Compliance> {
        p.state
            .caps
            .set_retain_secs(rules.policy.longest_cap_secs());
        Arc::new_cyclic(|me| Compliance {
            normalizer: p.normalizer,
            lists: p.lists,
            state: p.state,
            audit: p.audit,
            metrics: p.metrics.clone(),
            clock: p.clock,
            rules: ArcSwap::from_pointee(rules),
            host: p.host,
            before_forward: p.before_forward,
            refuse_unrecorded: p.refuse_unrecorded,
            calls: OpenCalls::default(),
            record_metrics: RecordMetrics::register(&p.metrics.registry),
            backlog_seen: Default::default(),
            caps: p.caps,
            me: me.clone(),
        })
    }

    /// The rules in force (they change on a configuration reload).
    pub fn rules(&self) -> Arc<Rules> {
        self.rules.load_full()
    }

    /// Swap in reloaded rules; calls being decided finish with the old ones. The policy says
    /// how long frequency-cap counters must be kept, so the store learns it here.
    pub(crate) fn set_rules(&self, rules: Rules) {
        self.state
            .caps
            .set_retain_secs(rules.policy.longest_cap_secs());
        self.rules.store(Arc::new(rules));
    }

    /// What would happen to a call (admin API and CLI). Counts nothing.
    pub fn check(&self, req: &CheckRequest) -> Result<Decision, String> {
        crate::policy::check_number(
            &self.normalizer,
            &self.rules.load().policy,
            &self.lists,
            &self.state,
            req,
            self.clock.now(),
        )
    }

    fn decide(
        &self,
        call: &NewCall<'_>,
        called: Result<Called, NumberProblem>,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Decision {
        let (snapshot, optouts) = (self.lists.snapshot(), &self.lists.optouts);
        match call.side {
            Side::Dialer => {
                let ctx = extract::call_context(&self.normalizer, call, &rules.policy);
                let at = Against {
                    lists: snapshot,
                    optouts,
                    state: &self.state,
                    now,
                };
                rules.policy.decide(ctx, called, at, true)
            }
            Side::Upstream => rules.policy.inbound(called, snapshot, optouts),
        }
    }
}

impl CallGate for Compliance {
    fn admit(&self, call: &NewCall<'_>) -> Admission {
        let ts = self.received_at(Some(call.received));
        let backlog = self.audit_backlog();
        if backlog == Backlog::Full {
            self.metrics
                .backlog_refusals
                .with_label_values(&["full"])
                .inc();
            return Admission::Reject(reject::unrecordable(
                None,
                &self.host,
                Unrecordable::Backlog,
            ));
        }
        let rules = self.rules.load_full();
        let (called, called_span) = extract::called_number(&self.normalizer, call);
        let decision = self.decide(call, called, &rules, ts);
        let open = record::open_call(call, &decision, ts, &rules);
        let decided = Decided {
            heard: record::heard(call, called_span),
            open,
            decision,
            rules,
            ts,
            received: call.received,
            key: call.key,
        };
        // A call refused for its records is not counted either.
        if decided.decision.caps_due.is_empty()
            || self
                .refuses_unrecorded(&decided.decision, backlog)
                .is_some()
        {
            self.conclude(decided, backlog)
        } else {
            self.count_then_conclude(decided, call.later.clone())
        }
    }

    fn on_event(&self, news: &CallNews<'_>) {
        let calls = &self.rules.load().calls;
        let mut facts = match (news.event, news.msg) {
            (CallEvent::Failed { .. } | CallEvent::Ended(_) | CallEvent::Refer(_), Some(msg)) => {
                extract::facts(msg, calls)
            }
            _ => Default::default(),
        };
        if news.event.sender() != Some(Side::Dialer) {
            facts.dialer_says = None; // the carrier cannot mark a call abandoned
        }
        let ended = self.calls.on_news(
            news.key,
            news.event,
            facts,
            self.received_at(news.received),
            calls.abandon_secs,
        );
        if let Some((call, end)) = ended {
            self.end_call(call, end);
        }
    }
}

impl Compliance {
    /// The verdict made final: counted, recorded (with the call's record when it ends here),
    /// and answered.
    fn conclude(&self, d: Decided, backlog: Backlog) -> Admission {
        let Decided {
            heard,
            mut open,
            decision,
            rules,
            ts,
            received,
            key,
        } = d;
        let latency = received.elapsed();
        self.metrics.decision_seconds.observe(latency.as_secs_f64());
        self.metrics
            .count_decision(decision.verdict, decision.reasons);
        // Held until the record is queued: another worker's decision cannot slip in between,
        // so the log stays in number order (see `AuditSink::number`).
        let numbered = self.audit.number();
        let seq = numbered.seq();
        open.decision = seq;
        open.verdict = decision.verdict;
        let unrecordable = self.refuses_unrecorded(&decision, backlog);
        // A rejected call ends here: its record follows its decision's in the log.
        let (admission, ended) = if let Some(why) = unrecordable {
            self.count_unrecordable(why);
            let id = self.audit.decision_id(seq);
            let r = reject::unrecordable(Some(&id), &self.host, why);
            (
                Admission::Reject(r),
                Some(record::rejected(503, Default::default(), ts)),
            )
        } else if decision.verdict.forwards() {
            let hold_until = self.before_forward.then_some(seq);
            (Admission::Forward { hold_until }, None)
        } else {
            let id = self.audit.decision_id(seq);
            let r = reject::rejection(&rules.reject, &decision, &id, &self.host);
            let end = record::rejected(r.status, decision.reasons, ts);
            (Admission::Reject(r), Some(end))
        };
        let outcome = record::Outcome {
            seq,
            ts,
            latency,
            sip_status: ended.as_ref().and_then(|e| e.sip_status),
            refused: unrecordable.map(Unrecordable::code),
        };
        record::submit(numbered, heard, decision, outcome);
        match ended {
            Some(end) => self.end_call(open, end),
            None => self.calls.open(key, open),
        }
        admission
    }

    fn count_unrecordable(&self, why: Unrecordable) {
        match why {
            Unrecordable::Backlog => self
                .metrics
                .backlog_refusals
                .with_label_values(&["behind"])
                .inc(),
            Unrecordable::Unwritable => self.metrics.unrecordable_refusals.inc(),
        }
    }

    /// The call's caps are counted in the shared database first (`[shared]`): the SIP core
    /// holds the call meanwhile, and gets the answer through `later`. Without a counter (it
    /// could not be started) the count is unknown and the call fails as configured.
    fn count_then_conclude(&self, d: Decided, later: Later) -> Admission {
        let on_unknown = self
            .state
            .currency
            .on_unavailable()
            .unwrap_or(FailMode::Reject);
        let (Some(counter), Some(me)) = (&self.caps, self.me.upgrade()) else {
            let mut d = d;
            let unknown = CapsUnknown("the shared frequency-cap count is not running".into());
            d.decision.settle_caps(Err(unknown), on_unknown);
            return self.conclude(d, self.audit_backlog());
        };
        let (due, at, key) = (d.decision.caps_due, d.ts.timestamp(), d.key);
        let done = move |answer| {
            let mut d = d;
            d.decision.settle_caps(answer, on_unknown);
            let admission = me.conclude(d, me.audit_backlog());
            later.answer(key, admission);
        };
        counter.count(due, at, Box::new(done));
        Admission::Later
    }

    /// A marketing call the policy lets through is refused while its records cannot be
    /// written, or are queued faster than the writer keeps up (`audit.on_write_error =
    /// "reject"`): why it is refused. Emergency, informational and inbound
    /// calls still go.
    fn refuses_unrecorded(&self, d: &Decision, backlog: Backlog) -> Option<Unrecordable> {
        let marketing = d
            .context
            .as_ref()
            .is_some_and(|c| c.purpose == crate::call::Purpose::Marketing);
        if !(self.refuse_unrecorded
            && matches!(d.verdict, Verdict::Allowed | Verdict::WouldBlock)
            && marketing)
        {
            return None;
        }
        if !self.audit.writable() {
            Some(Unrecordable::Unwritable)
        } else if backlog != Backlog::Clear {
            Some(Unrecordable::Backlog)
        } else {
            None
        }
    }

    /// The wall-clock time of a message received at `received` (now, without one): a step's
    /// time is when its message arrived, however long it waited to be handled.
    fn received_at(&self, received: Option<Instant>) -> DateTime<Utc> {
        let now = self.clock.now();
        let waited = received.map(|r| r.elapsed()).unwrap_or_default();
        now - chrono::Duration::from_std(waited).unwrap_or_default()
    }

    /// The writer's backlog, its changes said once in the log.
    fn audit_backlog(&self) -> Backlog {
        use std::sync::atomic::Ordering;
        let now = self.audit.backlog();
        let level = now as u8;
        let before = self.backlog_seen.swap(level, Ordering::Relaxed);
        if before != level {
            match now {
                Backlog::Clear => tracing::warn!("audit writer caught up: new calls are taken again"),
                Backlog::Behind => tracing::error!(
                    "audit writer is behind (audit.queue_capacity lines waiting): new marketing calls are refused with 503 records_backlog"
                ),
                Backlog::Full => tracing::error!(
                    "audit writer is stalled (twice audit.queue_capacity lines waiting): every new call is refused with 503 records_backlog"
                ),
            }
        }
        now
    }

    /// A call is over: count it and write its record.
    fn end_call(&self, call: crate::records::OpenCall, end: crate::records::End) {
        let rec = call.into_record(end, self.audit.instance_arc());
        self.record_metrics.count(&rec);
        self.count_abandonment(&rec);
        self.audit.entry(Box::new(rec));
    }

    /// An answered call counts toward its campaign's abandonment rate; crossing 3% is said.
    fn count_abandonment(&self, rec: &crate::records::CallRecord) {
        let (Some(campaign), Some(at)) = (&rec.call.campaign, rec.call.answered_at) else {
            return;
        };
        let abandoned = rec.disposition() == crate::records::Disposition::Abandoned;
        let t = self
            .state
            .abandonment
            .count(&campaign.id, at.date_naive(), abandoned);
        let before = crate::policy::abandon::Tally {
            answered: t.answered - 1,
            abandoned: t.abandoned - u64::from(abandoned),
        };
        let warn = crate::policy::abandon::WARN_RATE;
        if abandoned
            && before.rate().is_none_or(|r| r <= warn)
            && t.rate().is_some_and(|r| r > warn)
        {
            tracing::warn!(campaign = %campaign.id, answered = t.answered, abandoned = t.abandoned,
                "campaign's 30-day abandonment rate is above 3% (TSR 310.4(b)(4), 47 CFR 64.1200(a)(7))");
        }
    }
}
