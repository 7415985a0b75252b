//! From a number to a place and a time: the US state and the candidate IANA time zones of each
//! area code, built from NANPA's area-code file (shipped in `config/reference/`) repaired with
//! the multi-zone table (overlays take the union of their complex; Arizona has no DST).

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};
use std::fmt;

/// The NANPA area-code file and the multi-zone table as shipped (see `config/reference/README.md`).
pub(crate) const EMBEDDED_NANPA: &str = include_str!("../../config/reference/nanpa_npa_report.csv");
pub(crate) const EMBEDDED_MULTI_ZONE: &str =
    include_str!("../../config/reference/multi_timezone_npas.csv");

/// The US states, DC and territories that have area codes. The index is the state's id in
/// bitsets (`StateSet`).
pub(crate) const STATES: [&str; 56] = [
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL", "IN",
    "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE", "NH", "NJ",
    "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VT", "WA",
    "WI", "WV", "WY", "PR", "VI", "GU", "AS", "MP",
];

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct State(u8);

impl State {
    pub fn parse(code: &str) -> Option<State> {
        let code = code.trim();
        let code = if code.eq_ignore_ascii_case("CNMI") {
            "MP"
        } else {
            code
        };
        STATES
            .iter()
            .position(|s| s.eq_ignore_ascii_case(code))
            .map(|i| State(i as u8))
    }
    pub fn code(self) -> &'static str {
        STATES[self.0 as usize]
    }
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// A set of states (empty = "every US number" where a rule uses it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateSet(pub u64);

impl StateSet {
    pub fn of(states: &[State]) -> StateSet {
        let mut set = StateSet::default();
        states.iter().for_each(|s| set.insert(*s));
        set
    }
    pub fn insert(&mut self, s: State) {
        self.0 |= 1 << s.0;
    }
    pub fn contains(self, s: State) -> bool {
        self.0 & (1 << s.0) != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = State> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros() as u8;
                bits &= bits - 1;
                State(i)
            })
        })
    }
}

/// The time zones US area codes span, as IANA zones (never fixed offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Zone {
    Eastern = 0,
    Central,
    Mountain,
    /// Mountain without daylight saving time.
    Arizona,
    Pacific,
    Alaska,
    HawaiiAleutian,
    Hawaii,
    Atlantic,
    Chamorro,
    Samoa,
    /// Canada's Atlantic time (with DST; Puerto Rico's `Atlantic` has none).
    AtlanticCanada,
    /// UTC-3:30 with DST.
    Newfoundland,
    /// Central time without DST.
    Saskatchewan,
    /// Zones a country policy (`[[country]] zones`) names outside the NANP.
    London,
    Paris,
    Berlin,
}

impl Zone {
    pub(crate) const ALL: [Zone; 17] = [
        Zone::Eastern,
        Zone::Central,
        Zone::Mountain,
        Zone::Arizona,
        Zone::Pacific,
        Zone::Alaska,
        Zone::HawaiiAleutian,
        Zone::Hawaii,
        Zone::Atlantic,
        Zone::Chamorro,
        Zone::Samoa,
        Zone::AtlanticCanada,
        Zone::Newfoundland,
        Zone::Saskatchewan,
        Zone::London,
        Zone::Paris,
        Zone::Berlin,
    ];

    pub fn tz(self) -> Tz {
        match self {
            Zone::Eastern => chrono_tz::America::New_York,
            Zone::Central => chrono_tz::America::Chicago,
            Zone::Mountain => chrono_tz::America::Denver,
            Zone::Arizona => chrono_tz::America::Phoenix,
            Zone::Pacific => chrono_tz::America::Los_Angeles,
            Zone::Alaska => chrono_tz::America::Anchorage,
            Zone::HawaiiAleutian => chrono_tz::America::Adak,
            Zone::Hawaii => chrono_tz::Pacific::Honolulu,
            Zone::Atlantic => chrono_tz::America::Puerto_Rico,
            Zone::Chamorro => chrono_tz::Pacific::Guam,
            Zone::Samoa => chrono_tz::Pacific::Pago_Pago,
            Zone::AtlanticCanada => chrono_tz::America::Halifax,
            Zone::Newfoundland => chrono_tz::America::St_Johns,
            Zone::Saskatchewan => chrono_tz::America::Regina,
            Zone::London => chrono_tz::Europe::London,
            Zone::Paris => chrono_tz::Europe::Paris,
            Zone::Berlin => chrono_tz::Europe::Berlin,
        }
    }

    pub fn name(self) -> &'static str {
        self.tz().name()
    }

    /// An IANA name (as a CRM import gives it) to one of the zones callgate knows.
    pub(crate) fn from_iana(name: &str) -> Option<Zone> {
        let tz: Tz = name.trim().parse().ok()?;
        // Zones that behave like one of ours today (e.g. America/Indiana/Indianapolis).
        let probe = [
            "2026-01-15T12:00:00Z",
            "2026-07-15T12:00:00Z",
            "2026-03-08T12:00:00Z",
            "2026-11-01T12:00:00Z",
        ]
        .map(|t| t.parse::<DateTime<Utc>>().unwrap());
        let same = |z: &Zone| {
            probe.iter().all(|t| {
                use chrono::Offset;
                t.with_timezone(&z.tz()).offset().fix() == t.with_timezone(&tz).offset().fix()
            })
        };
        // Its own name first: Europe/Berlin is Berlin, not Paris that behaves like it.
        let all = Zone::ALL.into_iter();
        all.clone()
            .find(|z| z.name() == tz.name())
            .or_else(|| all.clone().find(same))
    }

    /// Local wall-clock time in this zone.
    pub fn local(self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz()).naive_local()
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Zones(pub u32);

impl Zones {
    pub fn insert(&mut self, z: Zone) {
        self.0 |= 1 << z as u8;
    }
    pub fn union(self, o: Zones) -> Zones {
        Zones(self.0 | o.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Zone> {
        Zone::ALL
            .into_iter()
            .filter(move |z| self.0 & (1 << *z as u8) != 0)
    }
    pub(crate) fn single(z: Zone) -> Zones {
        Zones(1 << z as u8)
    }
}

impl Serialize for Zones {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A country, by its ISO 3166-1 alpha-2 code (`US`, `CA`): what a rule's `country` names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    pub const US: Country = Country(*b"US");
    pub const CA: Country = Country(*b"CA");

    /// Two ASCII letters, any case.
    pub fn parse(code: &str) -> Option<Country> {
        match code.trim().as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn is_us(&self) -> bool {
        *self == Country::US
    }

    /// NANPA's COUNTRY column (`US`, `CANADA`, `JAMAICA`...).
    fn of_nanpa(name: &str) -> Option<Country> {
        const NAMES: [(&str, &str); 20] = [
            ("US", "US"),
            ("CANADA", "CA"),
            ("ANGUILLA", "AI"),
            ("ANTIGUA/BARBUDA", "AG"),
            ("BAHAMAS", "BS"),
            ("BARBADOS", "BB"),
            ("BERMUDA", "BM"),
            ("BRITISH VIRGIN ISLANDS", "VG"),
            ("CAYMAN ISLANDS", "KY"),
            ("DOMINICA", "DM"),
            ("DOMINICAN REPUBLIC", "DO"),
            ("GRENADA", "GD"),
            ("JAMAICA", "JM"),
            ("MONTSERRAT", "MS"),
            ("SINT MAARTEN", "SX"),
            ("ST. KITTS & NEVIS", "KN"),
            ("ST. VINCENT & GRENADINES", "VC"),
            ("ST.LUCIA", "LC"),
            ("TRINIDAD & TOBAGO", "TT"),
            ("TURKS & CAICOS ISLANDS", "TC"),
        ];
        let name = name.trim();
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, code)| Country::parse(code))
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Country {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// What is known about one area code.
#[derive(Clone, Copy, Debug, Default)]
pub struct NpaInfo {
    /// Set for US (incl. territories) area codes.
    pub state: Option<State>,
    /// Candidate time zones; empty when unknown (not a US/Canadian geographic code).
    pub zones: Zones,
    /// Assigned to any NANP country (US or not).
    pub assigned: bool,
    /// The NANP country the code serves (None: not assigned).
    pub country: Option<Country>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct GeoError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// NPA -> state and zones, indexed by the three-digit code.
pub struct NpaTable {
    npa: Box<[NpaInfo; 1000]>,
    /// "File Date" of the NANPA file, for decision records.
    pub file_date: String,
}

impl NpaTable {
    pub(crate) fn embedded() -> NpaTable {
        Self::parse("nanpa_npa_report.csv", EMBEDDED_NANPA, EMBEDDED_MULTI_ZONE)
            .expect("the shipped area-code files parse (checked by a test)")
    }

    pub fn get(&self, npa: u16) -> &NpaInfo {
        &self.npa[npa as usize % 1000]
    }

    /// Build from the NANPA report (`file` names it in errors) and the multi-zone table.
    pub fn parse(file: &str, nanpa: &str, multi_zone: &str) -> Result<NpaTable, GeoError> {
        let mut t = Build {
            npa: Box::new([NpaInfo::default(); 1000]),
            complexes: Vec::new(),
        };
        let file_date = t.nanpa_report(file, nanpa)?;
        t.multi_zone(multi_zone)?;
        t.union_overlays();
        Ok(NpaTable {
            npa: t.npa,
            file_date,
        })
    }
}

/// The table being built, and the overlay complexes seen (codes serving one area).
struct Build {
    npa: Box<[NpaInfo; 1000]>,
    complexes: Vec<Vec<u16>>,
}

/// The columns of the NANPA report that are read.
struct Columns {
    npa: usize,
    location: usize,
    country: usize,
    time_zone: usize,
    overlay: usize,
}

impl Build {
    /// NANPA's report: a `File Date,` line, the `NPA_ID,...` header, one row per code.
    /// Returns the file date.
    fn nanpa_report(&mut self, file: &str, nanpa: &str) -> Result<String, GeoError> {
        let err = |line: usize, message: String| GeoError {
            file: file.into(),
            line,
            message,
        };
        let mut lines = nanpa.lines().enumerate();
        let mut file_date = String::new();
        let header = loop {
            let Some((i, l)) = lines.next() else {
                return Err(err(0, "no NPA_ID header line".into()));
            };
            if let Some(d) = l.strip_prefix("File Date,") {
                file_date = d.trim().to_string();
            }
            if l.starts_with("NPA_ID,") {
                break (i, l);
            }
        };
        let names: Vec<&str> = header.1.split(',').collect();
        let col = |name: &str| {
            names
                .iter()
                .position(|c| *c == name)
                .ok_or_else(|| err(header.0 + 1, format!("no `{name}` column")))
        };
        let cols = Columns {
            npa: col("NPA_ID")?,
            location: col("LOCATION")?,
            country: col("COUNTRY")?,
            time_zone: col("TIME_ZONE")?,
            overlay: col("OVERLAY_COMPLEX")?,
        };
        for (i, l) in lines {
            if !l.trim().is_empty() {
                self.nanpa_row(&cols, l).map_err(|m| err(i + 1, m))?;
            }
        }
        Ok(file_date)
    }

    fn nanpa_row(&mut self, cols: &Columns, l: &str) -> Result<(), String> {
        let f = split_csv(l);
        let get = |c: usize| f.get(c).map(|s| s.trim()).unwrap_or("");
        let Ok(code) = get(cols.npa).parse::<u16>() else {
            return Err(format!("NPA_ID `{}` is not a number", get(cols.npa)));
        };
        if code >= 1000 {
            return Err(format!("NPA_ID {code} has more than 3 digits"));
        }
        let country = get(cols.country);
        if country.is_empty() {
            return Ok(());
        }
        let info = &mut self.npa[code as usize];
        info.assigned = true;
        // A country this table does not know yet is assigned and of no known country: its
        // calls fail closed for marketing (no policy), never pass under another's rules.
        info.country = Country::of_nanpa(country);
        let location = get(cols.location);
        if location.is_empty() || location == "NANP AREA" {
            // Non-geographic (5XX, 710) or reserved codes: no place, so no zones either.
            return Ok(());
        }
        let place = match info.country {
            Some(Country::US) => {
                info.state = State::parse(location);
                if info.state.is_none() {
                    return Err(format!("unknown US location `{location}`"));
                }
                Place::Us(info.state)
            }
            Some(Country::CA) => Place::Canada(location),
            _ => Place::Elsewhere,
        };
        // US and Canadian rules need the zones of their codes; elsewhere they are informative.
        info.zones = match parse_zones(get(cols.time_zone), place) {
            Ok(z) => z,
            Err(_) if place == Place::Elsewhere => Zones::default(),
            Err(m) => return Err(format!("NPA {code}: TIME_ZONE {m}")),
        };
        self.complex(get(cols.overlay));
        Ok(())
    }

    /// An overlay complex written `208/986`.
    fn complex(&mut self, v: &str) {
        let complex: Vec<u16> = v.split('/').filter_map(|s| s.trim().parse().ok()).collect();
        if complex.len() > 1 {
            self.complexes.push(complex);
        }
    }

    /// The multi-zone table: both NANPA's and libphonenumber's zones count (a call must be
    /// legal in every candidate zone, so a spurious extra zone only narrows the window).
    fn multi_zone(&mut self, multi_zone: &str) -> Result<(), GeoError> {
        for (i, l) in multi_zone.lines().enumerate().skip(1) {
            if l.trim().is_empty() {
                continue;
            }
            let err = |message: String| GeoError {
                file: "multi_timezone_npas.csv".into(),
                line: i + 1,
                message,
            };
            let f = split_csv(l);
            let code: u16 = f[0]
                .trim()
                .parse()
                .map_err(|_| err(format!("npa `{}` is not a number", f[0])))?;
            if code >= 1000 {
                return Err(err(format!("npa {code} has more than 3 digits")));
            }
            let region = f.get(1).copied().unwrap_or("").trim();
            // A Canadian row's letters are Canada's (A: Halifax; C in SK: no DST).
            let place = match self.npa[code as usize].country {
                Some(Country::CA) => Place::Canada(region),
                _ => Place::Us(State::parse(region)),
            };
            let mut zones = self.npa[code as usize].zones;
            for c in [2, 4] {
                if let Some(v) = f.get(c) {
                    let z = parse_zones(v, place).map_err(|m| err(format!("npa {code}: {m}")))?;
                    zones = zones.union(z);
                }
            }
            self.npa[code as usize].zones = zones;
            if let Some(c) = f.get(3) {
                self.complex(c);
            }
        }
        Ok(())
    }

    /// An overlay serves the same area as its complex: union the zones (NANPA lists 986 as
    /// P only although it overlays 208, M and P).
    fn union_overlays(&mut self) {
        for complex in &self.complexes {
            let all = complex.iter().fold(Zones::default(), |z, c| {
                z.union(self.npa[*c as usize % 1000].zones)
            });
            for c in complex {
                self.npa[*c as usize % 1000].zones = all;
            }
        }
    }
}

/// Where an area code's zone letters are read: a letter names another zone in Canada.
#[derive(Clone, Copy, PartialEq)]
enum Place<'a> {
    Us(Option<State>),
    /// NANPA's LOCATION (`SASKATCHEWAN`...).
    Canada(&'a str),
    Elsewhere,
}

/// NANPA's TIME_ZONE forms: letter runs ("E", "EC", "MP", "A", "AK"), "(UTC-10)", "UTC-11",
/// "(UTC+10)", free text naming "PT/MT", and libphonenumber's "AK/H/HA", "M(noDST)", "-".
/// In Canada "A" is Halifax's time, "N" Newfoundland's, and Saskatchewan's "C" keeps no DST.
fn parse_zones(v: &str, place: Place<'_>) -> Result<Zones, String> {
    let v = v.trim();
    let mut z = Zones::default();
    let state = match place {
        Place::Us(s) => s,
        _ => None,
    };
    let (atlantic, central) = match place {
        Place::Canada(l) if l.eq_ignore_ascii_case("SASKATCHEWAN") || l == "SK" => {
            (Zone::AtlanticCanada, Zone::Saskatchewan)
        }
        Place::Canada(_) => (Zone::AtlanticCanada, Zone::Central),
        _ => (Zone::Atlantic, Zone::Central),
    };
    let canada = matches!(place, Place::Canada(_));
    // In Arizona plain "M" is Phoenix time, unless the value also names "M(noDST)": then "M"
    // is the DST-observing Navajo Nation.
    let az_no_dst = state.map(|s| s.code()) == Some("AZ") && !v.contains("noDST");
    let mountain = |z: &mut Zones| {
        if az_no_dst {
            z.insert(Zone::Arizona)
        } else {
            z.insert(Zone::Mountain)
        }
    };
    match v {
        "" | "-" => return Ok(z),
        "(UTC-10)" => z.insert(Zone::Hawaii),
        "(UTC+10)" => z.insert(Zone::Chamorro),
        "UTC-11" | "(UTC-11)" => z.insert(Zone::Samoa),
        _ => {
            for part in v.split(['/', ' ']) {
                let part = part.trim();
                match part {
                    "AK" => z.insert(Zone::Alaska),
                    "HA" => z.insert(Zone::HawaiiAleutian),
                    "H" => z.insert(Zone::Hawaii),
                    "PT" => z.insert(Zone::Pacific),
                    "MT" => mountain(&mut z),
                    "M(noDST)" => z.insert(Zone::Arizona),
                    // Labrador keeps Atlantic time: a call must be legal in both.
                    "N" if canada => {
                        z.insert(Zone::Newfoundland);
                        z.insert(Zone::AtlanticCanada);
                    }
                    p if !p.is_empty() && p.chars().all(|c| "ECMPA".contains(c)) => {
                        for c in p.chars() {
                            match c {
                                'E' => z.insert(Zone::Eastern),
                                'C' => z.insert(central),
                                'M' => mountain(&mut z),
                                'P' => z.insert(Zone::Pacific),
                                _ => z.insert(atlantic),
                            }
                        }
                    }
                    // Free text around the zone names ("only for W Wendover").
                    _ if z.0 != 0 => {}
                    other => return Err(format!("`{v}`: cannot read `{other}`")),
                }
            }
        }
    }
    Ok(z)
}

/// Split one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(line[start..i].trim_matches('"'));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(line[start..].trim_matches('"'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(npa: u16) -> Vec<&'static str> {
        NpaTable::embedded()
            .get(npa)
            .zones
            .iter()
            .map(|z| z.name())
            .collect()
    }

    #[test]
    fn shipped_files_parse_with_every_us_npa_located() {
        let t = NpaTable::embedded();
        let us: Vec<_> = (0..1000).filter(|n| t.get(*n).state.is_some()).collect();
        assert!(us.len() >= 375, "{}", us.len());
        for n in us {
            assert!(!t.get(n).zones.is_empty(), "NPA {n} has no zone");
        }
        assert_eq!(t.file_date, "11/26/2025");
    }

    #[test]
    fn canadian_codes_keep_their_provinces_time() {
        assert_eq!(zones(416), ["America/New_York"]);
        assert_eq!(zones(902), ["America/Halifax"]);
        assert_eq!(zones(709), ["America/Halifax", "America/St_Johns"]);
        // Lloydminster keeps Alberta's time; Iqaluit Eastern; the Magdalen Islands Atlantic.
        assert_eq!(zones(306), ["America/Denver", "America/Regina"]);
        assert_eq!(zones(639), zones(306));
        assert!(zones(867).contains(&"America/New_York"));
        assert_eq!(zones(778), ["America/Denver", "America/Los_Angeles"]);
        assert_eq!(zones(581), ["America/New_York", "America/Halifax"]);
        let t = NpaTable::embedded();
        assert_eq!(t.get(416).country, Some(Country::CA));
        assert_eq!(t.get(416).state, None);
    }

    #[test]
    fn every_assigned_code_names_its_country() {
        let t = NpaTable::embedded();
        assert_eq!(t.get(212).country, Some(Country::US));
        assert_eq!(t.get(876).country, Country::parse("JM"));
        assert!((0..1000).all(|n| t.get(n).assigned == t.get(n).country.is_some()));
        let unknown =
            "File Date,1\nNPA_ID,LOCATION,COUNTRY,TIME_ZONE,OVERLAY_COMPLEX\n999,X,ATLANTIS,E,\n";
        let t = NpaTable::parse("npa.csv", unknown, "npa\n").unwrap();
        assert!(t.get(999).assigned && t.get(999).country.is_none());
        assert_eq!(Country::parse("de"), Country::parse("DE"));
        assert_eq!(Country::parse("DEU"), None);
    }

    #[test]
    fn overlay_986_takes_the_zones_of_208() {
        assert_eq!(zones(986), ["America/Denver", "America/Los_Angeles"]);
        assert_eq!(zones(208), zones(986));
    }

    #[test]
    fn overlay_930_takes_the_zones_of_812() {
        assert_eq!(zones(930), ["America/New_York", "America/Chicago"]);
    }

    #[test]
    fn arizona_has_no_dst_but_928_includes_the_navajo_nation() {
        assert_eq!(zones(602), ["America/Phoenix"]);
        assert_eq!(zones(928), ["America/Denver", "America/Phoenix"]);
    }

    #[test]
    fn hawaii_alaska_and_territories() {
        assert_eq!(zones(808), ["Pacific/Honolulu"]);
        assert!(zones(907).contains(&"America/Anchorage"));
        assert_eq!(zones(787), ["America/Puerto_Rico"]);
        assert_eq!(NpaTable::embedded().get(671).state.unwrap().code(), "GU");
    }

    #[test]
    fn canada_has_zones_but_no_state() {
        let t = NpaTable::embedded();
        assert!(t.get(416).state.is_none());
        assert!(t.get(416).assigned);
    }

    #[test]
    fn iana_names_map_to_known_zones() {
        assert_eq!(
            Zone::from_iana("America/Indiana/Indianapolis"),
            Some(Zone::Eastern)
        );
        assert_eq!(Zone::from_iana("America/Phoenix"), Some(Zone::Arizona));
        assert_eq!(Zone::from_iana("Europe/Berlin"), Some(Zone::Berlin));
        assert_eq!(Zone::from_iana("Europe/Madrid"), Some(Zone::Paris));
        assert_eq!(Zone::from_iana("Asia/Tokyo"), None);
    }
}
