//! The policy engine's conformance table: one row per case (called number, time in UTC,
//! campaign, call type, caller ID, records present) and the expected verdict and reasons. The
//! rules come from the shipped `config/rules.toml` and `config/holidays/`, so a change there
//! that alters behaviour shows up here. All times are fixed instants (no dependence on when the
//! tests run); the national list's age limit is raised so that fixed dates never go stale.

use callgate::clock::{OffsetClock, SharedClock};
use callgate::config::Config;
use callgate::lists::compact::SetBuilder;
use callgate::lists::{ListKind, ListSet, LoadedList, OptOuts};
use callgate::number::{Normalizer, E164};
use callgate::policy::consent::ConsentInput;
use callgate::policy::context::CallerId;
use callgate::policy::emergency::Closed;
use callgate::policy::{Policy, PolicyState};
use callgate::sip::uri::{Scheme, Uri};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;

const CONFIG: &str = r#"
[policy]
national_max_age_days = 36500

[[campaign]]
id = "default"
seller = "Acme"
purpose = "marketing"
method = "manual"
allowed_call_types = ["autodialed"]

[[campaign]]
id = "robo"
seller = "Acme"
subject = "solar"
method = "autodialed"
allowed_call_types = ["prerecorded"]

[[campaign]]
id = "other"
seller = "Acme"
subject = "roofing"

[[campaign]]
id = "info"
purpose = "informational"
method = "prerecorded"

[[campaign]]
id = "collect"
purpose = "debt_collection"

[[campaign]]
id = "shadow"
seller = "Acme"
shadow = true

[[campaign]]
id = "cid"
seller = "Acme"
caller_ids = ["+12025550100"]
"#;

// number | utc | campaign | call type header | caller ID | records | verdict | reasons
const TABLE: &str = r#"
# --- federal calling hours, in the called party's zone, across DST ---
+12125550100 | 2026-11-24T15:00:00Z | default |  |  |  | allowed |
+12125550100 | 2026-11-24T13:00:00Z | default |  |  |  | allowed |
+12125550100 | 2026-11-24T12:59:00Z | default |  |  |  | blocked | outside_hours
+12125550100 | 2026-11-25T01:59:00Z | default |  |  |  | allowed |
+12125550100 | 2026-11-25T02:00:00Z | default |  |  |  | blocked | outside_hours
+12125550100 | 2026-07-15T12:30:00Z | default |  |  |  | allowed |
+12125550100 | 2026-01-15T12:30:00Z | default |  |  |  | blocked | outside_hours
+12125550100 | 2026-03-08T12:30:00Z | default |  |  |  | allowed |
+12125550100 | 2026-03-07T12:30:00Z | default |  |  |  | blocked | outside_hours
+12125550100 | 2026-10-31T12:30:00Z | default |  |  |  | allowed |
+12125550100 | 2026-11-01T12:30:00Z | default |  |  |  | blocked | outside_hours
+18085550100 | 2026-11-24T18:30:00Z | default |  |  |  | allowed |
+18085550100 | 2026-11-24T17:30:00Z | default |  |  |  | blocked | outside_hours
# --- multi-zone area codes: inside the window in EVERY candidate zone ---
+18505550100 | 2026-11-24T13:30:00Z | default |  |  |  | blocked | outside_hours
+18505550100 | 2026-11-24T14:30:00Z | default |  |  |  | allowed |
+18505550100 | 2026-11-25T00:30:00Z | default |  |  |  | allowed |
+18505550100 | 2026-11-25T01:00:00Z | default |  |  |  | blocked | outside_hours
+19865550100 | 2026-11-24T15:30:00Z | default |  |  |  | blocked | outside_hours
+19865550100 | 2026-11-24T16:30:00Z | default |  |  |  | allowed |
+19305550100 | 2026-11-24T13:30:00Z | default |  |  |  | blocked | outside_hours
# --- Arizona: no DST, but 928 includes the Navajo Nation (DST) ---
+16025550100 | 2026-07-15T15:30:00Z | default |  |  |  | allowed |
+16025550100 | 2026-07-15T14:30:00Z | default |  |  |  | blocked | outside_hours
+16025550100 | 2026-07-16T03:30:00Z | default |  |  |  | allowed |
+19285550100 | 2026-07-16T03:30:00Z | default |  |  |  | blocked | outside_hours
+19285550100 | 2026-07-15T15:30:00Z | default |  |  |  | allowed |
# --- state hours: weekday / Saturday / Sunday ---
+15125550142 | 2026-11-22T17:30:00Z | default |  |  |  | blocked | outside_hours
+15125550142 | 2026-11-22T18:30:00Z | default |  |  |  | allowed |
+15125550142 | 2026-11-24T14:30:00Z | default |  |  |  | blocked | outside_hours
+14015550100 | 2026-11-21T14:30:00Z | default |  |  |  | blocked | outside_hours
+14015550100 | 2026-11-21T15:30:00Z | default |  |  |  | allowed |
+14015550100 | 2026-11-22T17:00:00Z | default |  |  |  | blocked | outside_hours
+14015550100 | 2026-11-24T23:30:00Z | default |  |  |  | blocked | outside_hours
+13055550100 | 2026-11-25T01:00:00Z | default |  |  |  | blocked | outside_hours
+13055550100 | 2026-11-25T00:30:00Z | default |  |  |  | allowed |
# --- holidays from the per-year calendar ---
+12155550100 | 2026-11-26T16:00:00Z | default |  |  |  | blocked | holiday
+12155550100 | 2026-11-27T16:00:00Z | default |  |  |  | allowed |
+12155550100 | 2026-04-03T16:00:00Z | default |  |  |  | blocked | holiday
+15045550100 | 2026-02-17T16:00:00Z | default |  |  |  | blocked | holiday
+18015550100 | 2026-07-24T16:00:00Z | default |  |  |  | blocked | holiday
+18015550100 | 2026-07-24T16:00:00Z | default |  |  | pec@2026-01-01 | allowed |
+12155550100 | 2099-03-05T16:00:00Z | default |  |  |  | blocked | calendar_missing
# --- countries outside the NANP: a country without a policy fails closed for marketing ---
+81312345678 | 2026-11-24T03:00:00Z | default |  |  |  | blocked | country_not_configured
+81312345678 | 2026-11-24T03:00:00Z | info |  |  |  | allowed | country_not_configured
# Germany: telephone advertising needs prior express consent (an EBR is not enough).
+4915112345678 | 2026-11-24T17:00:00Z | default |  |  |  | blocked | consent_required
+4915112345678 | 2026-11-24T17:00:00Z | default |  |  | ebr_purchase@2026-06-01 | blocked | consent_required
+4915112345678 | 2026-11-24T17:00:00Z | default |  |  | pewc@2026-01-01 | allowed |
+4915112345678 | 2026-11-24T17:00:00Z | info |  |  |  | allowed |
# France, with consent: Tuesday 11:00 and 13:30 (the pause) Paris time, Saturday 11:00;
# without consent; debt collection is not canvassing.
+33612345678 | 2026-11-24T10:00:00Z | default |  |  | pewc@2026-01-01 | allowed |
+33612345678 | 2026-11-24T12:30:00Z | default |  |  | pewc@2026-01-01 | blocked | outside_hours
+33612345678 | 2026-11-28T10:00:00Z | default |  |  | pewc@2026-01-01 | blocked | outside_hours
+33612345678 | 2026-11-24T10:00:00Z | default |  |  |  | blocked | consent_required
# Wednesday 11 November 2026 (Armistice), 11:00 Paris: a public holiday.
+33612345678 | 2026-11-11T10:00:00Z | default |  |  | pewc@2026-01-01 | blocked | holiday
+33612345678 | 2026-11-24T12:30:00Z | collect |  |  |  | allowed |
# United Kingdom: an automated call needs consent; a live one does not (TPS is a list).
+447700900123 | 2026-11-24T15:00:00Z | robo | prerecorded |  |  | blocked | consent_required
+447700900123 | 2026-11-24T15:00:00Z | default |  |  |  | allowed |
+447700900143 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | national_dnc
# --- Canada: the CRTC's hours in the province's time, not the US federal window ---
# Toronto, Tuesday 21:00 and 21:45 EST; Sunday 17:30 and 18:30 EST.
+14165550100 | 2026-11-25T02:00:00Z | default |  |  |  | allowed |
+14165550100 | 2026-11-25T02:45:00Z | default |  |  |  | blocked | outside_hours
+14165550100 | 2026-11-29T22:30:00Z | default |  |  |  | allowed |
+14165550100 | 2026-11-29T23:30:00Z | default |  |  |  | blocked | outside_hours
# St. John's (UTC-3:30, and Labrador's Atlantic time): Tuesday 21:00 and 21:35 NST; Sunday
# 17:45 and 18:10 NST.
+17095550100 | 2026-11-25T00:30:00Z | default |  |  |  | allowed |
+17095550100 | 2026-11-25T01:05:00Z | default |  |  |  | blocked | outside_hours
+17095550100 | 2026-11-29T21:15:00Z | default |  |  |  | allowed |
+17095550100 | 2026-11-29T21:40:00Z | default |  |  |  | blocked | outside_hours
# Regina keeps Central Standard Time all year: 21:15 CST on a July Monday is 03:15Z.
+13065550100 | 2026-07-21T03:15:00Z | default |  |  |  | allowed |
+13065550100 | 2026-07-21T03:45:00Z | default |  |  |  | blocked | outside_hours
# On Canada's National DNCL (blocked; the US registry does not hold it), unless consent.
+14165550143 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | national_dnc
+14165550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01 | allowed |
# A Canadian number with a Pennsylvania address: PA's rules (holidays included) with Canada's.
+14165550100 | 2026-11-24T15:00:00Z | default |  |  | address=PA | allowed |
+14165550100 | 2026-11-26T15:00:00Z | default |  |  | address=PA | blocked | holiday
# An automated (prerecorded) solicitation needs express consent (ADAD rules).
+14165550100 | 2026-11-24T15:00:00Z | robo | prerecorded |  |  | blocked | consent_required
+14165550100 | 2026-11-24T15:00:00Z | robo | prerecorded |  | pewc@2026-01-01 | allowed |
# Another NANP country without a policy (Jamaica) fails closed for marketing.
+18765550100 | 2026-11-24T17:00:00Z | default |  |  |  | blocked | country_not_configured
+18765550100 | 2026-11-24T17:00:00Z | info |  |  |  | allowed | country_not_configured
# --- debt collection: federal hours, no registry ban; informational: neither ---
+12125550143 | 2026-11-24T15:00:00Z | collect |  |  |  | allowed |
+12125550100 | 2026-11-24T12:00:00Z | collect |  |  |  | blocked | outside_hours
+12125550100 | 2026-11-24T05:00:00Z | info |  |  |  | allowed |
# --- national registry and its exemptions (EBR expiry to the day) ---
+12125550143 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | national_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | ebr_purchase@2025-05-25 | allowed |
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | ebr_purchase@2025-05-24 | blocked | national_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | ebr_inquiry@2026-08-25 | allowed |
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | ebr_inquiry@2026-08-24 | blocked | national_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-11-25 | blocked | national_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01 | allowed |
# --- reassigned numbers: consent before a "yes" disconnection no longer counts ---
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01;rnd=yes@2026-01-01/2026-11-01 | blocked | national_dnc number_reassigned
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01;rnd=yes@2026-03-01/2026-11-01 | blocked | national_dnc number_reassigned
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01;rnd=no@2026-01-01/2026-11-01 | allowed |
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01;rnd=no_data@2026-01-01/2026-11-01 | allowed |
# A "yes" about a date before the consent says nothing of it (the new subscriber consented).
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-06-01;rnd=yes@2026-01-01/2026-05-01 | allowed |
+12125550100 | 2026-11-24T15:00:00Z | robo | prerecorded |  | pewc@2026-01-01;rnd=yes@2026-01-01/2026-11-01 | blocked | consent_required number_reassigned
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01/other | blocked | national_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pewc@2026-01-01;optout | blocked | national_dnc internal_dnc
+12125550143 | 2026-11-24T15:00:00Z | default |  |  | pec@2026-01-01 | blocked | national_dnc
# --- state lists apply to their state's numbers (area code, or known address) ---
+13055550111 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | state_dnc
+12125550111 | 2026-11-24T15:00:00Z | default |  |  |  | allowed |
+12125550111 | 2026-11-24T15:00:00Z | default |  |  | address=FL | blocked | state_dnc
+16175550100 | 2026-11-24T15:00:00Z | default |  |  |  | allowed |
+16175550100 | 2027-01-05T15:00:00Z | default |  |  |  | blocked | state_dnc
+16175550101 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | state_dnc
# --- a known address adds its zone: legal at both places ---
+12125550100 | 2026-11-24T14:30:00Z | default |  |  | tz=America/Los_Angeles | blocked | outside_hours
# --- wireless: PEWC for autodialed/prerecorded; no-call states ---
+12125550199 | 2026-11-24T15:00:00Z | robo |  |  |  | blocked | consent_required
+12125550199 | 2026-11-24T15:00:00Z | robo |  |  | pewc@2026-01-01 | allowed |
+12125550199 | 2026-11-24T15:00:00Z | default |  |  |  | allowed |
+12125550100 | 2026-11-24T15:00:00Z | robo |  |  |  | allowed |
+12125550199 | 2026-11-24T15:00:00Z | default | autodialed |  |  | blocked | consent_required
+15125550199 | 2026-11-24T18:00:00Z | default |  |  |  | blocked | wireless_no_call
+15125550142 | 2026-11-24T18:00:00Z | default |  |  |  | allowed |
# --- prerecorded and state automated-call consent ---
+12125550100 | 2026-11-24T15:00:00Z | robo | prerecorded |  |  | blocked | consent_required
+13055550100 | 2026-11-24T15:00:00Z | robo |  |  |  | blocked | consent_required
+13055550100 | 2026-11-24T15:00:00Z | robo |  |  | pewc@2026-01-01 | allowed |
+12035550100 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | consent_required
# --- frequency caps (rolling windows) ---
+13055550100 | 2026-11-24T15:00:00Z | default |  |  | calls=3@-23h | blocked | frequency_cap
+13055550100 | 2026-11-24T15:00:00Z | default |  |  | calls=3@-24h | allowed |
+13055550100 | 2026-11-24T15:00:00Z | default |  |  | calls=2@-1h | allowed |
+13055550100 | 2026-11-24T15:00:00Z | default |  |  | calls=3@-1h/other | allowed |
+12125550100 | 2026-11-24T15:00:00Z | default |  |  | calls=3@-1h | allowed |
+12125550100 | 2026-11-24T15:00:00Z | info |  |  | calls=3@-29d | blocked | frequency_cap
+12125550100 | 2026-11-24T15:00:00Z | info |  |  | calls=3@-30d | allowed |
# --- WA: no contact within a year of an opt-out ---
+12065550100 | 2026-11-24T18:00:00Z | default |  |  | optout | blocked | internal_dnc optout_no_contact
# --- caller ID ---
+12125550100 | 2026-11-24T15:00:00Z | default |  | anonymous |  | blocked | caller_id_missing
+12125550100 | 2026-11-24T15:00:00Z | cid |  | +13125550100 |  | blocked | caller_id_unlisted
+12125550100 | 2026-11-24T15:00:00Z | cid |  | +12025550100 |  | allowed |
+12125550100 | 2026-11-24T05:00:00Z | info |  | anonymous |  | allowed |
# --- campaign and call type from headers ---
+12125550100 | 2026-11-24T15:00:00Z | nope |  |  |  | blocked | unknown_campaign
+12125550100 | 2026-11-24T15:00:00Z | default | prerecorded |  |  | blocked | call_type_not_allowed
# --- shadow mode: evaluate, record, forward ---
+12125550143 | 2026-11-24T15:00:00Z | shadow |  |  |  | would_block | national_dnc
# --- state of emergency (state or area code) ---
+15045550100 | 2026-11-24T16:00:00Z | default |  |  | emergency=LA | blocked | state_of_emergency
+12125550100 | 2026-11-24T15:00:00Z | default |  |  | emergency=212 | blocked | state_of_emergency
+16465550100 | 2026-11-24T15:00:00Z | default |  |  | emergency=212 | allowed |
# --- places callgate cannot time; a Canadian number at midnight (once allowed: no US rule
# covers it); service codes ---
+19995550100 | 2026-11-24T15:00:00Z | default |  |  |  | blocked | unknown_location
+14165550100 | 2026-11-24T05:00:00Z | default |  |  |  | blocked | outside_hours
911 | 2026-11-24T05:00:00Z | default |  |  |  | emergency | service_number
"#;

fn set(numbers: &[u64]) -> callgate::lists::compact::CompactSet {
    let mut b = SetBuilder::new();
    for n in numbers {
        b.insert(*n);
    }
    b.build()
}

/// Another country's national registry.
fn foreign(id: &str, country: &str, numbers: &[u64]) -> LoadedList {
    let mut l = LoadedList::in_memory(id, ListKind::National, set(numbers));
    l.meta.country = callgate::number::geo::Country::parse(country).unwrap();
    l
}

fn lists() -> Arc<ListSet> {
    let mut fl = LoadedList::in_memory("fl", ListKind::State, set(&[13055550111, 12125550111]));
    fl.meta.state = Some("FL".into());
    fl.meta.state_code = callgate::number::geo::State::parse("FL");
    let mut ma = LoadedList::in_memory("ma", ListKind::State, set(&[16175550100, 16175550101]));
    ma.meta.state = Some("MA".into());
    ma.meta.state_code = callgate::number::geo::State::parse("MA");
    ma.meta.effective_after_days = Some(60);
    ma.meta.first_seen = Some(Arc::new(
        [(
            16175550100u64,
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
        )]
        .into(),
    ));
    Arc::new(ListSet::new(
        1,
        vec![
            LoadedList::in_memory(
                "national",
                ListKind::National,
                set(&[12125550143, 15125550100]),
            ),
            fl,
            ma,
            foreign("dncl-ca", "CA", &[14165550143, 17095550143]),
            foreign("tps-gb", "GB", &[447700900143]),
            LoadedList::in_memory(
                "wireless",
                ListKind::Wireless,
                set(&[12125550199, 15125550199]),
            ),
        ],
        vec![],
    ))
}

struct Row<'a> {
    line: usize,
    number: &'a str,
    at: DateTime<Utc>,
    campaign: &'a str,
    call_type: &'a str,
    caller: &'a str,
    records: &'a str,
    verdict: &'a str,
    reasons: BTreeSet<String>,
}

fn rows() -> Vec<Row<'static>> {
    TABLE
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('|').map(str::trim).collect();
            assert_eq!(f.len(), 8, "table line {}: {l}", i + 1);
            Row {
                line: i + 1,
                number: f[0],
                at: f[1].parse().unwrap(),
                campaign: f[2],
                call_type: f[3],
                caller: f[4],
                records: f[5],
                verdict: f[6],
                reasons: f[7].split_whitespace().map(String::from).collect(),
            }
        })
        .collect()
}

fn ago(spec: &str) -> Duration {
    let (n, unit) = spec.trim_start_matches('-').split_at(spec.len() - 2);
    let n: i64 = n.parse().unwrap();
    match unit {
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => panic!("unit in {spec}"),
    }
}

fn evaluate(policy: &Policy, lists: &Arc<ListSet>, row: &Row) -> (String, BTreeSet<String>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(OffsetClock::default());
    clock.advance(row.at - Duration::days(30) - Utc::now());
    let shared: SharedClock = clock.clone();
    let optouts = OptOuts::open(&dir.path().join("optouts.jsonl"), shared).unwrap();
    let state = PolicyState::in_memory();
    let normalizer = Normalizer::new(&[], &["911".into()]);
    let number: Option<E164> = row.number.parse().ok();
    for rec in row
        .records
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        if rec == "optout" {
            optouts.add(number.unwrap(), None).unwrap();
        } else if let Some(s) = rec.strip_prefix("address=") {
            add(
                &state,
                row.number,
                "address",
                "2020-01-01",
                None,
                Some(s),
                None,
            );
        } else if let Some(z) = rec.strip_prefix("tz=") {
            add(
                &state,
                row.number,
                "address",
                "2020-01-01",
                None,
                None,
                Some(z),
            );
        } else if let Some(r) = rec.strip_prefix("rnd=") {
            // `rnd=ANSWER@ASKED_ABOUT/QUERIED`: what the Reassigned Numbers Database said.
            let (answer, dates) = r.split_once('@').unwrap();
            let (asked, queried) = dates.split_once('/').unwrap();
            let input = ConsentInput {
                number: row.number.into(),
                kind: "rnd".into(),
                seller: None,
                campaign: None,
                captured: asked.into(),
                expires: None,
                evidence: Some("rnd-query-1".into()),
                address_state: None,
                time_zone: None,
                answer: Some(answer.into()),
                queried: Some(queried.into()),
            };
            state.consent.add(vec![input], Utc::now()).unwrap();
        } else if let Some(e) = rec.strip_prefix("emergency=") {
            let c = match e.parse::<u16>() {
                Ok(npa) => Closed {
                    states: vec![],
                    npas: vec![npa],
                },
                Err(_) => Closed {
                    states: vec![e.into()],
                    npas: vec![],
                },
            };
            state.emergency.set(&c).unwrap();
        } else if let Some(c) = rec.strip_prefix("calls=") {
            let (n, when) = c.split_once('@').unwrap();
            // `calls=N@-AGE[/campaign]`: N earlier calls under that campaign's subject.
            let (when, campaign) = when.split_once('/').unwrap_or((when, row.campaign));
            let subject = policy
                .campaigns
                .get(campaign)
                .map(|c| c.subject_key)
                .unwrap_or(0);
            let t = (row.at - ago(when)).timestamp();
            for _ in 0..n.parse::<u32>().unwrap() {
                for key in [
                    (number.unwrap().as_u64(), subject),
                    (number.unwrap().as_u64(), 0),
                ] {
                    state.caps.record(key, t);
                }
            }
        } else {
            let (kind, rest) = rec.split_once('@').unwrap();
            let (date, campaign) = match rest.split_once('/') {
                Some((d, c)) => (d, Some(c)),
                None => (rest, None),
            };
            add(&state, row.number, kind, date, campaign, None, None);
        }
    }
    let caller_id = match row.caller {
        "" => CallerId::Number("+12025550100".parse().unwrap()),
        "anonymous" => CallerId::Anonymous,
        n => CallerId::Number(n.parse().unwrap()),
    };
    let header =
        (!row.campaign.is_empty() && row.campaign != "default").then_some(row.campaign.as_bytes());
    let ctx = policy.campaigns.classify(
        None,
        header,
        (!row.call_type.is_empty()).then_some(row.call_type.as_bytes()),
        caller_id,
    );
    let uri = Uri {
        scheme: Scheme::Tel,
        user: Some(row.number.as_bytes()),
        host: b"",
        port: None,
        params: b"",
        headers: None,
    };
    let d = policy.decide(
        ctx,
        callgate::gate::number_of(&normalizer, &uri),
        callgate::policy::Against {
            lists: lists.clone(),
            optouts: &optouts,
            state: &state,
            now: row.at,
        },
        false,
    );
    (
        d.verdict.as_str().to_string(),
        d.reasons.iter().map(|r| r.code().to_string()).collect(),
    )
}

fn add(
    state: &PolicyState,
    number: &str,
    kind: &str,
    captured: &str,
    campaign: Option<&str>,
    address_state: Option<&str>,
    time_zone: Option<&str>,
) {
    state
        .consent
        .add(
            vec![ConsentInput {
                number: number.into(),
                kind: kind.into(),
                seller: Some("Acme".into()),
                campaign: campaign.map(String::from),
                captured: captured.into(),
                expires: None,
                evidence: Some("test".into()),
                address_state: address_state.map(String::from),
                time_zone: time_zone.map(String::from),
                answer: None,
                queried: None,
            }],
            Utc::now(),
        )
        .unwrap();
}

fn policy() -> Policy {
    Policy::new(&Config::from_str_named("conformance.toml", CONFIG).unwrap()).unwrap()
}

#[test]
fn every_row_of_the_table_gets_its_verdict_and_reasons() {
    let policy = policy();
    let lists = lists();
    let mut failures = Vec::new();
    for row in rows() {
        let (verdict, reasons) = evaluate(&policy, &lists, &row);
        if verdict != row.verdict || reasons != row.reasons {
            failures.push(format!(
                "line {}: {} at {} ({}): got {verdict} {reasons:?}, expected {} {:?}",
                row.line, row.number, row.at, row.campaign, row.verdict, row.reasons
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The default campaign's calls against the table's lists, with fresh records.
struct Calls {
    policy: Policy,
    lists: Arc<ListSet>,
    state: PolicyState,
    optouts: OptOuts,
    _dir: tempfile::TempDir,
}

impl Calls {
    fn new() -> Calls {
        let dir = tempfile::tempdir().unwrap();
        let optouts =
            OptOuts::open(&dir.path().join("o.jsonl"), callgate::clock::system()).unwrap();
        Calls {
            policy: policy(),
            lists: lists(),
            state: PolicyState::in_memory(),
            optouts,
            _dir: dir,
        }
    }

    /// `commit`: count an allowed call toward frequency caps, as the SIP path does.
    fn decide(&self, number: &str, at: DateTime<Utc>, commit: bool) -> callgate::policy::Decision {
        let ctx = self.policy.campaigns.classify(
            None,
            None,
            None,
            CallerId::Number("+12025550100".parse().unwrap()),
        );
        let n: E164 = number.parse().unwrap();
        self.policy.decide(
            ctx,
            Ok(callgate::number::Called::Number(n)),
            callgate::policy::Against {
                lists: self.lists.clone(),
                optouts: &self.optouts,
                state: &self.state,
                now: at,
            },
            commit,
        )
    }
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn an_outside_hours_rejection_says_when_the_window_opens() {
    let c = Calls::new();
    // 07:00 EST: opens at 08:00.
    assert_eq!(
        c.decide("+12125550100", t("2026-11-24T12:00:00Z"), false)
            .retry_after,
        Some(3600)
    );
    // Rhode Island, Sunday noon: closed until Monday 09:00 EST.
    assert_eq!(
        c.decide("+14015550100", t("2026-11-22T17:00:00Z"), false)
            .retry_after,
        Some(21 * 3600)
    );
    // 850 spans Eastern and Central: the later opening (08:00 CST = 14:00 UTC) counts.
    let d = c.decide("+18505550100", t("2026-11-24T12:00:00Z"), false);
    assert_eq!(d.retry_after, Some(2 * 3600));
    assert_eq!(d.place.binding.unwrap().0.name(), "America/New_York");
}

#[test]
fn a_rejection_in_a_pause_or_before_a_weekend_says_when_calls_may_start_again() {
    let c = Calls::new();
    // Paris, Tuesday 13:30: the pause ends at 14:00.
    let d = c.decide("+33612345678", t("2026-11-24T12:30:00Z"), false);
    assert_eq!(d.retry_after, Some(30 * 60));
    assert_eq!(d.place.binding.unwrap().0.name(), "Europe/Paris");
    // Friday 20:30: closed until Monday 10:00 (61.5 hours).
    let d = c.decide("+33612345678", t("2026-11-27T19:30:00Z"), false);
    assert_eq!(d.retry_after, Some(61 * 3600 + 1800));
    // St. John's, Tuesday 21:35 NST: Wednesday 09:00 in Labrador's Atlantic time, the later.
    let d = c.decide("+17095550100", t("2026-11-25T01:05:00Z"), false);
    assert_eq!(d.retry_after, Some(11 * 3600 + 55 * 60));
}

#[test]
fn the_binding_zone_and_local_time_are_recorded() {
    // 13:30 UTC: 08:30 in New York, 07:30 in Chicago: Chicago binds.
    let d = Calls::new().decide("+18505550100", t("2026-11-24T13:30:00Z"), false);
    let (zone, local) = d.place.binding.unwrap();
    assert_eq!(zone.name(), "America/Chicago");
    assert_eq!(local.format("%H:%M").to_string(), "07:30");
}

#[test]
fn allowed_calls_are_counted_and_the_fourth_in_24_hours_is_capped() {
    let c = Calls::new();
    let start = t("2026-11-24T14:00:00Z");
    let verdicts: Vec<&str> = [0, 1, 2, 3, 24]
        .into_iter()
        .map(|h| {
            c.decide("+13055550100", start + Duration::hours(h), true)
                .verdict
                .as_str()
        })
        .collect();
    // Calls at 14:00, 15:00, 16:00 allowed; 17:00 capped (and not counted); the next day at
    // 14:00 the first call has left the rolling window.
    assert_eq!(
        verdicts,
        ["allowed", "allowed", "allowed", "blocked", "allowed"]
    );
}

#[test]
fn a_check_counts_nothing() {
    let c = Calls::new();
    let at = t("2026-11-24T14:00:00Z");
    for _ in 0..5 {
        assert_eq!(
            c.decide("+13055550100", at, false).verdict.as_str(),
            "allowed"
        );
    }
}

#[test]
fn a_country_whose_own_national_list_is_missing_fails_closed_and_no_other_country_does() {
    let policy = policy();
    let without_ca = {
        let all = lists();
        let kept = all
            .lists
            .iter()
            .filter(|l| l.meta.id.0.as_ref() != "dncl-ca")
            .map(|l| LoadedList {
                meta: l.meta.clone(),
                set: l.set.clone(),
            })
            .collect();
        Arc::new(ListSet::new(2, kept, vec![]))
    };
    let row = |number: &'static str| Row {
        line: 0,
        number,
        at: "2026-11-24T17:00:00Z".parse().unwrap(),
        campaign: "default",
        call_type: "",
        caller: "",
        records: "",
        verdict: "",
        reasons: BTreeSet::new(),
    };
    let (verdict, reasons) = evaluate(&policy, &without_ca, &row("+14165550100"));
    assert_eq!(verdict, "blocked");
    assert!(reasons.contains("stale_list"), "{reasons:?}");
    for other in ["+12125550100", "+447700900123"] {
        let (verdict, reasons) = evaluate(&policy, &without_ca, &row(other));
        assert_eq!(verdict, "allowed", "{other}: {reasons:?}");
    }
}

#[test]
fn with_the_rnd_safe_harbor_an_automated_call_under_consent_needs_a_recent_no() {
    let config = CONFIG.replacen("[policy]\n", "[policy]\nrnd_max_age_days = 30\n", 1);
    let policy =
        Policy::new(&Config::from_str_named("conformance.toml", &config).unwrap()).unwrap();
    let lists = lists();
    let row = |campaign: &'static str, call_type: &'static str, records: &'static str| Row {
        line: 0,
        number: "+12125550100",
        at: "2026-11-24T15:00:00Z".parse().unwrap(),
        campaign,
        call_type,
        caller: "",
        records,
        verdict: "",
        reasons: BTreeSet::new(),
    };
    let robo = |records| evaluate(&policy, &lists, &row("robo", "prerecorded", records));
    // A "no" about the consent's date or an earlier one: no disconnection since.
    for records in [
        "pewc@2026-01-01;rnd=no@2026-01-01/2026-11-10",
        "pewc@2026-06-01;rnd=no@2026-01-01/2026-11-10",
    ] {
        let (verdict, reasons) = robo(records);
        assert_eq!(verdict, "allowed", "{records}: {reasons:?}");
    }
    for records in [
        "pewc@2026-01-01",
        "pewc@2026-01-01;rnd=no@2026-01-01/2026-09-01",
        // About a date after the consent: the number may have changed hands in between.
        "pewc@2026-01-01;rnd=no@2026-06-01/2026-11-10",
        "pewc@2026-01-01;rnd=no_data@2026-01-01/2026-11-10",
    ] {
        let (verdict, reasons) = robo(records);
        assert_eq!(verdict, "blocked", "{records}");
        assert!(
            reasons.contains("rnd_check_missing"),
            "{records}: {reasons:?}"
        );
    }
    // A manual call is not asked for one; nor is a call abroad (the database is of US numbers).
    let manual = evaluate(&policy, &lists, &row("default", "", "pewc@2026-01-01"));
    assert_eq!(manual.0, "allowed", "{:?}", manual.1);
    let canada = Row {
        number: "+14165550100",
        ..row("robo", "prerecorded", "pewc@2026-01-01")
    };
    let (verdict, reasons) = evaluate(&policy, &lists, &canada);
    assert_eq!(verdict, "allowed", "{reasons:?}");
}

/// An automated call allowed under a written consent, resting on a reassigned-numbers "no".
fn a_decision_resting_on_an_rnd_answer() -> callgate::policy::Decision {
    let config = CONFIG.replacen("[policy]\n", "[policy]\nrnd_max_age_days = 30\n", 1);
    let mut c = Calls::new();
    c.policy = Policy::new(&Config::from_str_named("conformance.toml", &config).unwrap()).unwrap();
    let input = |kind: &str, captured: &str, answer: Option<&str>| ConsentInput {
        number: "+12125550100".into(),
        kind: kind.into(),
        seller: Some("Acme".into()),
        campaign: None,
        captured: captured.into(),
        expires: None,
        evidence: Some("rnd 5".into()),
        address_state: None,
        time_zone: None,
        answer: answer.map(String::from),
        queried: answer.map(|_| "2026-11-20".into()),
    };
    let records = vec![
        input("pewc", "2026-01-01", None),
        input("rnd", "2026-01-01", Some("no")),
    ];
    c.state.consent.add(records, Utc::now()).unwrap();
    let ctx = c.policy.campaigns.classify(
        None,
        Some(b"robo"),
        Some(b"prerecorded"),
        CallerId::Number("+12025550100".parse().unwrap()),
    );
    let d = c.policy.decide(
        ctx,
        Ok(callgate::number::Called::Number(
            "+12125550100".parse().unwrap(),
        )),
        callgate::policy::Against {
            lists: c.lists.clone(),
            optouts: &c.optouts,
            state: &c.state,
            now: t("2026-11-24T15:00:00Z"),
        },
        false,
    );
    assert_eq!(d.verdict.as_str(), "allowed", "{:?}", d.reasons);
    d
}

#[test]
fn the_rnd_answer_a_decision_rests_on_is_in_its_record() {
    let d = a_decision_resting_on_an_rnd_answer();
    let used = d.rnd_used.expect("the 'no' the safe harbor rests on");
    assert_eq!(used.evidence.as_deref(), Some("rnd 5"));
}

/// The audit record's nested objects keep the bytes they have always had (keys in name order),
/// so that records written by one version read the same as another's.
#[test]
fn a_decision_records_its_consent_rnd_answer_and_versions_as_it_always_did() {
    let d = a_decision_resting_on_an_rnd_answer();
    let text = serde_json::to_string(&callgate::policy::explain::Context(&d)).unwrap();
    let fields: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(&text).unwrap();
    assert_eq!(
        fields["consent_used"].get(),
        r#"{"campaign":null,"captured":"2026-01-01","evidence":"rnd 5","expires":null,"seller":"Acme","seq":1,"type":"pewc"}"#
    );
    assert_eq!(
        fields["rnd_used"].get(),
        r#"{"answer":"no","asked_about":"2026-01-01","evidence":"rnd 5","queried":"2026-11-20","seq":2}"#
    );
    let versions = fields["versions"].get();
    let keys = [
        "consent_seq",
        "holiday_years",
        "list_generation",
        "optouts_seq",
        "rules",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| versions.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{versions}");
    // 15:00 UTC in New York.
    assert_eq!(
        fields["local_time"].get(),
        "\"2026-11-24T10:00:00\"",
        "{text}"
    );
}

#[test]
fn a_voided_consent_is_named_only_where_it_was_needed() {
    let policy = policy();
    let lists = lists();
    // A registry number whose valid consent lets the call through.
    let row = Row {
        line: 0,
        number: "+12125550143",
        at: "2026-11-24T15:00:00Z".parse().unwrap(),
        campaign: "default",
        call_type: "",
        caller: "",
        // A newer valid consent covers the call: the voided older one does not count.
        records: "pewc@2025-01-01;rnd=yes@2025-01-01/2025-03-01;pewc@2025-06-01",
        verdict: "",
        reasons: BTreeSet::new(),
    };
    let (verdict, reasons) = evaluate(&policy, &lists, &row);
    assert_eq!(verdict, "allowed", "{reasons:?}");
    let blocked_otherwise = Row {
        caller: "anonymous",
        ..row
    };
    let (verdict, reasons) = evaluate(&policy, &lists, &blocked_otherwise);
    assert_eq!(verdict, "blocked");
    assert!(!reasons.contains("number_reassigned"), "{reasons:?}");
}

#[test]
fn a_country_outside_numbers_allowed_countries_is_refused_for_every_call_type() {
    let config = format!("{CONFIG}\n[numbers]\nallowed_countries = [\"1\"]\n");
    let policy =
        Policy::new(&Config::from_str_named("conformance.toml", &config).unwrap()).unwrap();
    let lists = lists();
    let row = |number: &'static str, campaign: &'static str| Row {
        line: 0,
        number,
        at: "2026-11-24T17:00:00Z".parse().unwrap(),
        campaign,
        call_type: "",
        caller: "",
        records: "",
        verdict: "",
        reasons: BTreeSet::new(),
    };
    let (verdict, reasons) = evaluate(&policy, &lists, &row("+4915112345678", "info"));
    assert_eq!(verdict, "blocked");
    assert!(reasons.contains("country_not_allowed"), "{reasons:?}");
    let (verdict, reasons) = evaluate(&policy, &lists, &row("+12125550100", "default"));
    assert_eq!(
        (verdict.as_str(), reasons.len()),
        ("allowed", 0),
        "{reasons:?}"
    );
}
