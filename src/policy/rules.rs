//! The compliance rules as data (`config/rules.toml`): parsed once per (re)load into a
//! `RuleBook` whose per-state bitmasks let a call find its rules without allocating.

use super::calendar::Calendar;
use crate::call::{CallMethod, Purpose};
use crate::config::{parse_toml, ConfigError};
use crate::number::geo::{Country, State, StateSet, Zone, Zones};
use crate::number::E164;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Prior express written consent.
    Pewc = 0,
    EbrPurchase,
    EbrInquiry,
    /// Prior express (not written) consent.
    Pec,
    /// Not a consent: a known address (state / time zone) from a CRM import.
    Address,
    /// Not a consent: an answer of the FCC's Reassigned Numbers Database for the number and
    /// a date (`captured`: the date asked about).
    Rnd,
}

impl ConsentKind {
    pub fn parse(s: &str) -> Option<ConsentKind> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "pewc" => Some(ConsentKind::Pewc),
            "ebr_purchase" => Some(ConsentKind::EbrPurchase),
            "ebr_inquiry" => Some(ConsentKind::EbrInquiry),
            "pec" => Some(ConsentKind::Pec),
            "address" => Some(ConsentKind::Address),
            "rnd" => Some(ConsentKind::Rnd),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentKind::Pewc => "pewc",
            ConsentKind::EbrPurchase => "ebr_purchase",
            ConsentKind::EbrInquiry => "ebr_inquiry",
            ConsentKind::Pec => "pec",
            ConsentKind::Address => "address",
            ConsentKind::Rnd => "rnd",
        }
    }

    /// A consent or EBR (not an address or an RND answer).
    pub fn is_consent(self) -> bool {
        !matches!(self, ConsentKind::Address | ConsentKind::Rnd)
    }
}

/// A small bitset over one of the enums above (bit = discriminant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bits(pub u8);

impl Bits {
    pub(crate) const ALL: Bits = Bits(0xff);
    pub fn has(self, i: u8) -> bool {
        self.0 & (1 << i) != 0
    }
    pub fn with(self, i: u8) -> Bits {
        Bits(self.0 | (1 << i))
    }
}

/// A day's window in local minutes since midnight, `open..close`; `None` = no calls that day.
pub(crate) type DayWindow = Option<(u16, u16)>;

#[derive(Clone, Debug)]
pub struct Hours {
    pub weekday: DayWindow,
    pub saturday: DayWindow,
    pub sunday: DayWindow,
    /// The window on the rule's states' holidays (from the calendar); `None` in the outer
    /// option: holidays are ordinary days for this rule.
    pub holiday: Option<DayWindow>,
    /// A pause inside every day's window (France's 13:00-14:00): no calls during it.
    pub pause: Option<(u16, u16)>,
}

pub(crate) const WHOLE_DAY: DayWindow = Some((0, 24 * 60));

#[derive(Clone, Debug)]
pub enum RuleKind {
    Hours(Hours),
    ConsentRequired {
        consent: Bits,
    },
    NoCall,
    Cap {
        calls: u8,
        window_secs: u32,
        per_subject: bool,
    },
    OptoutNoContact {
        days: u32,
    },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::Hours(_) => "hours",
            RuleKind::ConsentRequired { .. } => "consent_required",
            RuleKind::NoCall => "no_call",
            RuleKind::Cap { .. } => "cap",
            RuleKind::OptoutNoContact { .. } => "optout_no_contact",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub kind: RuleKind,
    /// The country whose numbers the rule concerns (`country`, default US).
    pub country: Country,
    /// Empty: every number of the country.
    pub states: StateSet,
    pub purposes: Bits,
    pub methods: Bits,
    pub wireless_only: bool,
    pub unless_consent: Bits,
    pub source: String,
    pub confidence: String,
    pub note: Option<String>,
}

impl Rule {
    pub(crate) fn applies_to(&self, purpose: Purpose, method: CallMethod) -> bool {
        self.purposes.has(purpose as u8) && self.methods.has(method as u8)
    }
}

#[derive(Clone, Debug)]
pub struct ConsentDefaults {
    pub ebr_purchase_months: u32,
    pub ebr_inquiry_months: u32,
    pub registry_exemptions: Bits,
    pub source: String,
}

/// At most this many rules (they are indexed by a u128 bitmask).
pub(crate) const MAX_RULES: usize = 128;

/// A country callgate has a policy for (`[[country]]`): calls to its numbers are judged by
/// the rules that name it. The US needs none (its rules are the default).
#[derive(Clone, Debug)]
pub struct CountryPolicy {
    pub code: Country,
    pub name: String,
    /// The country calling code of a country outside the NANP (`49`); None for a +1 country,
    /// whose numbers NANPA's area codes tell apart.
    pub calling_code: Option<u64>,
    /// Where the country's numbers are called (outside the NANP; the NANP's from area codes).
    pub zones: Zones,
    /// Marketing calls need the country's national list (`kind = "national"`, `country`),
    /// fresh: without it they fail as `policy.on_stale_national_list` says.
    pub national_list: bool,
    pub source: String,
    pub confidence: String,
    pub note: Option<String>,
}

pub struct RuleBook {
    pub rules: Vec<Rule>,
    /// Countries besides the US with a policy.
    pub countries: Vec<CountryPolicy>,
    /// Rules for every US number.
    federal: u128,
    /// Rules for every number of another country with a policy.
    by_country: Vec<(Country, u128)>,
    /// Rules per state, by `State::index`.
    by_state: Vec<u128>,
    pub consent: ConsentDefaults,
    pub calendar: Calendar,
    /// SHA-256 prefix of the rules file and the calendar: the policy version in decisions.
    pub version: String,
    pub file: String,
}

impl RuleBook {
    /// When the holiday calendars run out (`Calendar::runs_out`), if any rule has a holiday
    /// window (without one, holidays are ordinary days and the calendars are not needed).
    pub fn holidays_run_out(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let needed = self
            .rules
            .iter()
            .any(|r| matches!(&r.kind, RuleKind::Hours(h) if h.holiday.is_some()));
        needed.then(|| self.calendar.runs_out(now))
    }

    /// The rules that concern a number of `country` (None: no known country, no rules) in
    /// `states` (its area code's and its address's).
    pub(crate) fn mask_for(&self, country: Option<Country>, states: StateSet) -> u128 {
        let national = match country {
            None => 0,
            Some(Country::US) => self.federal,
            Some(c) => self
                .by_country
                .iter()
                .find(|(k, _)| *k == c)
                .map_or(0, |(_, m)| *m),
        };
        // A US state (an address on a consent record) brings the US rules with its own.
        let us = match states.is_empty() {
            true => 0,
            false => self.federal,
        };
        states
            .iter()
            .fold(national | us, |m, s| m | self.by_state[s.index()])
    }

    /// The policy of the country outside the NANP whose calling code `n` starts with.
    pub(crate) fn policy_for(&self, n: E164) -> Option<&CountryPolicy> {
        self.countries
            .iter()
            .filter(|c| c.calling_code.is_some_and(|code| n.has_calling_code(code)))
            .max_by_key(|c| c.calling_code)
    }

    /// The policy of `country` (not the US's: its rules are the default).
    pub fn country(&self, country: Country) -> Option<&CountryPolicy> {
        self.countries.iter().find(|c| c.code == country)
    }

    /// Whether callgate has a policy for calls to `country`'s numbers.
    pub fn has_policy(&self, country: Country) -> bool {
        country == Country::US || self.countries.iter().any(|c| c.code == country)
    }

    pub fn load(rules_path: &Path, holidays_dir: &Path) -> Result<RuleBook, ConfigError> {
        let file = rules_path.display().to_string();
        let src = std::fs::read_to_string(rules_path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let calendar = Calendar::load(holidays_dir)?;
        Self::parse(&file, &src, calendar)
    }

    pub fn parse(file: &str, src: &str, calendar: Calendar) -> Result<RuleBook, ConfigError> {
        let raw: RawBook = parse_toml(file, src)?;
        let fail = |id: &str, key: &str, message: String| {
            crate::config::error_at_key(file, src, Some(&format!("id = \"{id}\"")), key, message)
        };
        let countries = countries(raw.country, &|code: &str, key: &str, m: String| {
            let at = format!("code = \"{code}\"");
            crate::config::error_at_key(file, src, Some(&at), key, m)
        })?;
        let mut rules = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for r in raw.rule {
            if r.id.is_empty() || !seen.insert(r.id.clone()) {
                let why = "rule ids must be unique and not empty".into();
                return Err(fail(&r.id, "id", why));
            }
            let id = r.id.clone();
            let r = rule(r, &|key: &str, m: String| fail(&id, key, m))?;
            if r.country != Country::US && !countries.iter().any(|c| c.code == r.country) {
                let why = format!("no [[country]] with code = \"{}\"", r.country);
                return Err(fail(&id, "country", why));
            }
            rules.push(r);
        }
        if rules.len() > MAX_RULES {
            return Err(fail("", "rule", format!("more than {MAX_RULES} rules")));
        }
        // A decision keeps the caps it consulted in fixed room (it does not allocate).
        let caps = rules
            .iter()
            .filter(|r| matches!(r.kind, RuleKind::Cap { .. }));
        if let Some(past) = caps.clone().nth(super::caps::MAX_CAP_RULES) {
            let why = format!(
                "more than {} rules of kind \"cap\"",
                super::caps::MAX_CAP_RULES
            );
            return Err(fail(&past.id, "kind", why));
        }
        let (federal, by_state, by_country) = index_by_place(&rules);
        let consent = consent_defaults(raw.consent).map_err(|v| {
            let why = format!("unknown consent type `{v}`");
            crate::config::error_at_key(file, src, None, "consent.registry_exemptions", why)
        })?;
        let version = version_of(src, &calendar);
        Ok(RuleBook {
            rules,
            countries,
            federal,
            by_country,
            by_state,
            consent,
            calendar,
            version,
            file: file.into(),
        })
    }
}

/// A config error at `key` of the rule being read.
type Fail<'a> = dyn Fn(&str, String) -> ConfigError + 'a;

/// One `[[rule]]`: whom and what it concerns, and what it does.
fn rule(r: RawRule, f: &Fail<'_>) -> Result<Rule, ConfigError> {
    let country = match r.country.as_deref() {
        None => Country::US,
        Some(c) => Country::parse(c)
            .ok_or_else(|| f("country", format!("`{c}` is not a two-letter country code")))?,
    };
    if country != Country::US && r.states.is_some() {
        let why = "`states` are US states: a rule for another country concerns all of it".into();
        return Err(f("states", why));
    }
    let mut states = StateSet::default();
    for s in r.states.iter().flatten() {
        let state = State::parse(s).ok_or_else(|| f("states", format!("unknown state `{s}`")))?;
        states.insert(state);
    }
    let purposes = bits(r.purposes.as_deref(), Purpose::parse, |p| p as u8)
        .map_err(|v| f("purposes", format!("unknown purpose `{v}`")))?
        .unwrap_or(Bits(1 << Purpose::Marketing as u8));
    let methods = bits(r.methods.as_deref(), CallMethod::parse, |m| m as u8)
        .map_err(|v| f("methods", format!("unknown method `{v}`")))?
        .unwrap_or(Bits::ALL);
    let unless_consent = bits(r.unless_consent.as_deref(), ConsentKind::parse, |c| c as u8)
        .map_err(|v| f("unless_consent", format!("unknown consent type `{v}`")))?
        .unwrap_or_default();
    let wireless_only = match r.line.as_deref() {
        None | Some("any") => false,
        Some("wireless") => true,
        Some(o) => return Err(f("line", format!("`{o}` is not \"any\" or \"wireless\""))),
    };
    let kind = rule_kind(&r, f)?;
    if let RuleKind::Hours(h) = &kind {
        if h.holiday.is_some() && states.is_empty() && country == Country::US {
            let why = "a US holiday window needs `states` (holidays are per state)".into();
            return Err(f("holiday", why));
        }
    }
    Ok(Rule {
        id: r.id,
        kind,
        country,
        states,
        purposes,
        methods,
        wireless_only,
        unless_consent,
        source: r.source.unwrap_or_default(),
        confidence: r.confidence.unwrap_or_default(),
        note: r.note,
    })
}

fn rule_kind(r: &RawRule, f: &Fail<'_>) -> Result<RuleKind, ConfigError> {
    let required = |key: &str| f(key, format!("required for kind = \"{}\"", r.kind));
    Ok(match r.kind.as_str() {
        "hours" => RuleKind::Hours(hours_of(r, f)?),
        "consent_required" => RuleKind::ConsentRequired {
            consent: bits(r.consent.as_deref(), ConsentKind::parse, |c| c as u8)
                .map_err(|v| f("consent", format!("unknown consent type `{v}`")))?
                .ok_or_else(|| required("consent"))?,
        },
        "no_call" => RuleKind::NoCall,
        "cap" => cap_of(r, f)?,
        "optout_no_contact" => RuleKind::OptoutNoContact {
            days: r.days.ok_or_else(|| required("days"))?,
        },
        o => {
            let why =
                format!("`{o}` is not hours, consent_required, no_call, cap or optout_no_contact");
            return Err(f("kind", why));
        }
    })
}

/// The windows of an hours rule: per day type, `all_days` where a day has none of its own.
fn hours_of(r: &RawRule, f: &Fail<'_>) -> Result<Hours, ConfigError> {
    let day = |key: &str, v: &Option<String>| -> Result<Option<DayWindow>, ConfigError> {
        v.as_deref()
            .map(|s| parse_window(s).map_err(|m| f(key, m)))
            .transpose()
    };
    let all = day("all_days", &r.all_days)?;
    let or_all = |d: Option<DayWindow>| d.or(all).unwrap_or(WHOLE_DAY);
    Ok(Hours {
        weekday: or_all(day("weekday", &r.weekday)?),
        saturday: or_all(day("saturday", &r.saturday)?),
        sunday: or_all(day("sunday", &r.sunday)?),
        holiday: day("holiday", &r.holiday)?,
        pause: match day("pause", &r.pause)? {
            Some(None) => return Err(f("pause", "a pause is HH:MM-HH:MM".into())),
            other => other.flatten(),
        },
    })
}

fn cap_of(r: &RawRule, f: &Fail<'_>) -> Result<RuleKind, ConfigError> {
    let max = crate::policy::caps::MAX_CAP;
    let calls = r
        .calls
        .ok_or_else(|| f("calls", "required for kind = \"cap\"".into()))?;
    if !(1..=max as u32).contains(&calls) {
        return Err(f("calls", format!("must be 1-{max}")));
    }
    let hours = r
        .window_hours
        .ok_or_else(|| f("window_hours", "required for kind = \"cap\"".into()))?;
    if hours == 0 || hours > 24 * 366 {
        return Err(f("window_hours", "must be 1-8784".into()));
    }
    let per_subject = match r.per.as_deref() {
        None | Some("number") => false,
        Some("subject") => true,
        Some(o) => return Err(f("per", format!("`{o}` is not \"number\" or \"subject\""))),
    };
    Ok(RuleKind::Cap {
        calls: calls as u8,
        window_secs: hours * 3600,
        per_subject,
    })
}

/// Bit masks of the rules for every US number, for each state, and for every number of each
/// other country.
fn index_by_place(rules: &[Rule]) -> (u128, Vec<u128>, Vec<(Country, u128)>) {
    let mut federal = 0u128;
    let mut by_state = vec![0u128; crate::number::geo::STATES.len()];
    let mut by_country: Vec<(Country, u128)> = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        match (r.country, r.states.is_empty()) {
            (Country::US, true) => federal |= 1 << i,
            (Country::US, false) => {}
            (c, _) => match by_country.iter_mut().find(|(k, _)| *k == c) {
                Some((_, m)) => *m |= 1 << i,
                None => by_country.push((c, 1 << i)),
            },
        }
        for s in r.states.iter() {
            by_state[s.index()] |= 1 << i;
        }
    }
    (federal, by_state, by_country)
}

/// The `[[country]]` tables: each a two-letter code, once, with its name and source.
fn countries(
    raw: Vec<RawCountry>,
    fail: &dyn Fn(&str, &str, String) -> ConfigError,
) -> Result<Vec<CountryPolicy>, ConfigError> {
    let mut out: Vec<CountryPolicy> = Vec::with_capacity(raw.len());
    for c in raw {
        let Some(code) = Country::parse(&c.code) else {
            return Err(fail(
                &c.code,
                "code",
                "not a two-letter country code".into(),
            ));
        };
        if code == Country::US || out.iter().any(|o| o.code == code) {
            let why = "each country once; the US's rules are those without `country`".into();
            return Err(fail(&c.code, "code", why));
        }
        if c.source.as_deref().is_none_or(str::is_empty) {
            return Err(fail(
                &c.code,
                "source",
                "a country's policy cites its source".into(),
            ));
        }
        let (calling_code, zones) =
            calling_code_and_zones(&c).map_err(|(key, why)| fail(&c.code, key, why))?;
        let overlaps = |o: &CountryPolicy| match (o.calling_code, calling_code) {
            (Some(a), Some(b)) => {
                let (a, b) = (a.to_string(), b.to_string());
                a.starts_with(&b) || b.starts_with(&a)
            }
            _ => false,
        };
        if let Some(o) = out.iter().find(|o| overlaps(o)) {
            let why = format!(
                "overlaps {}'s calling code: a number would have two countries",
                o.code
            );
            return Err(fail(&c.code, "calling_code", why));
        }
        out.push(CountryPolicy {
            code,
            name: c.name,
            calling_code,
            zones,
            national_list: c.national_list.unwrap_or(false),
            source: c.source.unwrap_or_default(),
            confidence: c.confidence.unwrap_or_default(),
            note: c.note,
        });
    }
    Ok(out)
}

/// The `[consent]` table; the error is an unknown consent type.
fn consent_defaults(c: RawConsent) -> Result<ConsentDefaults, String> {
    let exemptions = bits(c.registry_exemptions.as_deref(), ConsentKind::parse, |k| {
        k as u8
    })?;
    Ok(ConsentDefaults {
        ebr_purchase_months: c.ebr_purchase_months.unwrap_or(18),
        ebr_inquiry_months: c.ebr_inquiry_months.unwrap_or(3),
        registry_exemptions: exemptions.unwrap_or(Bits(0b111)),
        source: c.source.unwrap_or_default(),
    })
}

/// SHA-256 prefix of the rules file and the calendar: the policy version in decisions.
fn version_of(src: &str, calendar: &Calendar) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(src.as_bytes());
    h.update(calendar.digest.as_bytes());
    format!("sha256:{}", &crate::hashing::hex(&h.finalize())[..16])
}

fn bits<T>(
    v: Option<&[String]>,
    parse: impl Fn(&str) -> Option<T>,
    idx: impl Fn(T) -> u8,
) -> Result<Option<Bits>, String> {
    let Some(v) = v else { return Ok(None) };
    let mut b = Bits::default();
    for s in v {
        b = b.with(idx(parse(s).ok_or_else(|| s.clone())?));
    }
    Ok(Some(b))
}

/// "HH:MM-HH:MM" (24:00 allowed as an end) or "closed".
pub(crate) fn parse_window(s: &str) -> Result<DayWindow, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("closed") {
        return Ok(None);
    }
    let bad = || format!("`{s}` is not HH:MM-HH:MM or \"closed\"");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let hm = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (open, close) = (hm(a).ok_or_else(bad)?, hm(b).ok_or_else(bad)?);
    if open >= close {
        return Err(format!("`{s}`: the window must open before it closes"));
    }
    Ok(Some((open, close)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBook {
    #[serde(default)]
    consent: RawConsent,
    #[serde(default)]
    rule: Vec<RawRule>,
    #[serde(default)]
    country: Vec<RawCountry>,
}

/// A country's calling code and zones: none for a +1 country (area codes say), both for
/// another. The error names the key.
fn calling_code_and_zones(c: &RawCountry) -> Result<(Option<u64>, Zones), (&'static str, String)> {
    let code = match c.calling_code.as_deref().map(str::trim) {
        None | Some("1") => None,
        Some(d) if (1..=3).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => Some(
            d.parse::<u64>()
                .map_err(|e| ("calling_code", e.to_string()))?,
        ),
        Some(d) => return Err(("calling_code", format!("`{d}` is not 1-3 digits"))),
    };
    let mut zones = Zones::default();
    for name in c.zones.iter().flatten() {
        let z = Zone::from_iana(name).ok_or_else(|| {
            (
                "zones",
                format!("`{name}`: no zone callgate knows behaves like it"),
            )
        })?;
        zones.insert(z);
    }
    match (code, zones.is_empty(), c.zones.is_some()) {
        (Some(_), true, _) => Err(("zones", "a country outside the NANP names its zones".into())),
        (None, _, true) => Err((
            "zones",
            "a +1 country's zones come from its area codes".into(),
        )),
        _ => Ok((code, zones)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCountry {
    code: String,
    name: String,
    calling_code: Option<String>,
    zones: Option<Vec<String>>,
    national_list: Option<bool>,
    source: Option<String>,
    confidence: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    ebr_purchase_months: Option<u32>,
    ebr_inquiry_months: Option<u32>,
    registry_exemptions: Option<Vec<String>>,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    kind: String,
    country: Option<String>,
    states: Option<Vec<String>>,
    purposes: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    line: Option<String>,
    unless_consent: Option<Vec<String>>,
    source: Option<String>,
    confidence: Option<String>,
    note: Option<String>,
    all_days: Option<String>,
    weekday: Option<String>,
    saturday: Option<String>,
    sunday: Option<String>,
    holiday: Option<String>,
    pause: Option<String>,
    consent: Option<Vec<String>>,
    calls: Option<u32>,
    window_hours: Option<u32>,
    per: Option<String>,
    days: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(src: &str) -> Result<RuleBook, ConfigError> {
        RuleBook::parse("rules.toml", src, Calendar::default())
    }

    #[test]
    fn the_holiday_calendars_matter_only_when_a_rule_has_a_holiday_window() {
        let now = "2026-12-07T12:00:00Z".parse().unwrap();
        let no_call = "[[rule]]\nid = \"x\"\nkind = \"no_call\"\n";
        assert_eq!(book(no_call).unwrap().holidays_run_out(now), None);
        let shipped =
            RuleBook::load(Path::new("config/rules.toml"), Path::new("config/holidays")).unwrap();
        let runs_out = shipped
            .holidays_run_out(now)
            .expect("the shipped rules use holidays");
        assert!(runs_out > now, "{runs_out}");
    }

    #[test]
    fn a_rule_for_another_country_needs_that_countrys_policy() {
        let rule = "[[rule]]\nid = \"x\"\nkind = \"no_call\"\ncountry = \"DE\"\n";
        let e = book(rule).err().unwrap().to_string();
        assert!(e.contains("country") && e.contains("[[country]]"), "{e}");
        let country = "[[country]]\ncode = \"DE\"\nname = \"Germany\"\nsource = \"UWG 7\"\n";
        let b = book(&format!("{country}{rule}")).unwrap();
        let de = Country::parse("DE");
        assert!(b.has_policy(de.unwrap()));
        assert_eq!(b.mask_for(de, StateSet::default()), 1);
        assert_eq!(b.mask_for(Some(Country::CA), StateSet::default()), 0);
    }

    #[test]
    fn a_country_policy_is_refused_without_a_source_or_twice_or_with_states() {
        let de = "[[country]]\ncode = \"DE\"\nname = \"Germany\"\n";
        assert!(book(de).err().unwrap().to_string().contains("source"));
        let de = format!("{de}source = \"UWG 7\"\n");
        assert!(book(&format!("{de}{de}")).is_err());
        let us = "[[country]]\ncode = \"US\"\nname = \"US\"\nsource = \"x\"\n";
        assert!(book(us).is_err());
        let states =
            "[[rule]]\nid = \"x\"\nkind = \"no_call\"\ncountry = \"DE\"\nstates = [\"TX\"]\n";
        let e = book(&format!("{de}{states}")).err().unwrap().to_string();
        assert!(e.contains("states"), "{e}");
    }

    #[test]
    fn a_country_outside_the_nanp_names_its_calling_code_and_zones() {
        let c = |extra: &str| {
            let src = format!(
                "[[country]]\ncode = \"DE\"\nname = \"Germany\"\nsource = \"UWG\"\n{extra}"
            );
            book(&src).map(|b| b.countries[0].clone())
        };
        let de = c("calling_code = \"49\"\nzones = [\"Europe/Berlin\"]\n").unwrap();
        assert_eq!(de.calling_code, Some(49));
        assert_eq!(
            de.zones.iter().next().map(|z| z.name()),
            Some("Europe/Berlin")
        );
        for (bad, key) in [
            ("calling_code = \"49\"\n", "zones"),
            (
                "calling_code = \"4x\"\nzones = [\"Europe/Berlin\"]\n",
                "calling_code",
            ),
            (
                "calling_code = \"49\"\nzones = [\"Mars/Olympus\"]\n",
                "zones",
            ),
            ("zones = [\"Europe/Berlin\"]\n", "zones"),
        ] {
            let e = c(bad).err().unwrap().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn shipped_rules_parse() {
        let b =
            RuleBook::load(Path::new("config/rules.toml"), Path::new("config/holidays")).unwrap();
        assert!(b.rules.len() > 20);
        let tx = State::parse("TX").unwrap();
        let ids: Vec<_> = (0..b.rules.len())
            .filter(|i| b.mask_for(Some(Country::US), StateSet::of(&[tx])) & (1 << i) != 0)
            .map(|i| b.rules[i].id.as_str())
            .collect();
        assert!(
            ids.contains(&"federal.hours") && ids.contains(&"TX.hours"),
            "{ids:?}"
        );
    }

    #[test]
    fn a_bad_window_names_file_line_and_key() {
        let e = book("[[rule]]\nid = \"X\"\nkind = \"hours\"\nall_days = \"9-5\"\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("rules.toml:4:"), "{e}");
        assert!(e.contains("all_days"), "{e}");
    }

    #[test]
    fn more_cap_rules_than_a_decision_holds_are_refused_naming_the_first_past() {
        let cap = |i: usize| {
            format!("[[rule]]\nid = \"cap{i}\"\nkind = \"cap\"\ncalls = 3\nwindow_hours = 24\n")
        };
        let src: String = (0..=super::super::caps::MAX_CAP_RULES).map(cap).collect();
        let e = book(&src).err().unwrap().to_string();
        assert!(e.contains("more than 8 rules of kind \"cap\""), "{e}");
        assert!(e.contains("kind"), "{e}");
        let fits: String = (0..super::super::caps::MAX_CAP_RULES).map(cap).collect();
        assert!(book(&fits).is_ok());
    }

    #[test]
    fn an_unknown_state_is_refused() {
        let e = book("[[rule]]\nid = \"X\"\nkind = \"no_call\"\nstates = [\"ZZ\"]\n")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("unknown state `ZZ`"), "{e}");
    }

    #[test]
    fn windows_parse() {
        assert_eq!(parse_window("08:00-21:00"), Ok(Some((480, 1260))));
        assert_eq!(parse_window("closed"), Ok(None));
        assert!(parse_window("21:00-08:00").is_err());
    }
}
