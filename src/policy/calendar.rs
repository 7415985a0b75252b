//! Holidays on which some states ban telephone solicitation: one file per year
//! (`config/holidays/YYYY.toml`), because the dates move (Easter, observed days, elections).

use crate::config::{parse_toml, ConfigError};
use crate::number::geo::{Country, State, StateSet};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Default)]
pub struct Calendar {
    /// Sorted by date; one entry per date (states merged).
    days: Vec<(NaiveDate, StateSet)>,
    /// Other countries' public holidays (`countries`), sorted.
    country_days: Vec<(Country, NaiveDate)>,
    /// Years with a calendar file (a rule with a holiday window cannot be checked outside them).
    years: Vec<i32>,
    /// For the policy version: the files' contents hashed.
    pub digest: String,
}

impl Calendar {
    pub(crate) fn covers(&self, year: i32) -> bool {
        self.years.binary_search(&year).is_ok()
    }

    pub(crate) fn years(&self) -> &[i32] {
        &self.years
    }

    /// When the calendar runs out, counting from `now`: 00:00 UTC on January 1 of the first
    /// year from this one without a file (in the past when this year has none). From then, a
    /// call under a rule with a holiday window fails closed (`calendar_missing`).
    pub fn runs_out(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let mut year = now.year();
        while self.covers(year) {
            year += 1;
        }
        NaiveDate::from_ymd_opt(year, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(now, |t| t.and_utc())
    }

    /// Whether `date` is a holiday in any of `states`, or in `country` (another than the US).
    pub(crate) fn is_holiday(
        &self,
        date: NaiveDate,
        states: StateSet,
        country: Option<Country>,
    ) -> bool {
        let in_states = match self.days.binary_search_by_key(&date, |d| d.0) {
            Ok(i) => self.days[i].1 .0 & states.0 != 0,
            Err(_) => false,
        };
        in_states || country.is_some_and(|c| self.country_days.binary_search(&(c, date)).is_ok())
    }

    /// Whether the calendar of `year` holds `country`'s holidays (a year file naming none
    /// of them cannot tell a holiday there from a working day).
    pub(crate) fn covers_country(&self, year: i32, country: Country) -> bool {
        let from = (
            country,
            NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default(),
        );
        let i = self.country_days.partition_point(|d| *d < from);
        self.country_days
            .get(i)
            .is_some_and(|(c, d)| *c == country && d.year() == year)
    }

    /// The holiday's name, for explanations.
    pub fn load(dir: &Path) -> Result<Calendar, ConfigError> {
        let io = |source| ConfigError::Io {
            file: dir.display().to_string(),
            source,
        };
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        let mut cal = Calendar::default();
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for path in files {
            let file = path.display().to_string();
            let src = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io {
                file: file.clone(),
                source,
            })?;
            h.update(src.as_bytes());
            cal.add_file(&file, &src)?;
        }
        cal.digest = crate::hashing::hex(&h.finalize());
        Ok(cal)
    }

    pub(crate) fn add_file(&mut self, file: &str, src: &str) -> Result<(), ConfigError> {
        let raw: RawYear = parse_toml(file, src)?;
        let fail = |key: &str, anchor: Option<&str>, m: String| {
            crate::config::error_at_key(file, src, anchor, key, m)
        };
        if self.covers(raw.year) {
            return Err(fail(
                "year",
                None,
                format!("{} is given by two files", raw.year),
            ));
        }
        for h in &raw.holiday {
            let anchor = format!("date = \"{}\"", h.date);
            let date = NaiveDate::parse_from_str(&h.date, "%Y-%m-%d").map_err(|_| {
                fail(
                    "date",
                    Some(&anchor),
                    format!("`{}` is not YYYY-MM-DD", h.date),
                )
            })?;
            if date.year() != raw.year {
                return Err(fail(
                    "date",
                    Some(&anchor),
                    format!("{date} is not in year {}", raw.year),
                ));
            }
            let mut states = StateSet::default();
            for s in &h.states {
                states.insert(State::parse(s).ok_or_else(|| {
                    fail("states", Some(&anchor), format!("unknown state `{s}`"))
                })?);
            }
            if h.states.is_empty() && h.countries.is_empty() {
                let why = "a holiday names its `states` or `countries`".into();
                return Err(fail("states", Some(&anchor), why));
            }
            for c in &h.countries {
                let country = Country::parse(c).filter(|c| *c != Country::US);
                let country = country.ok_or_else(|| {
                    let why = format!("`{c}` is not a two-letter code of a country besides the US (its holidays are per state)");
                    fail("countries", Some(&anchor), why)
                })?;
                if let Err(i) = self.country_days.binary_search(&(country, date)) {
                    self.country_days.insert(i, (country, date));
                }
            }
            match self.days.binary_search_by_key(&date, |d| d.0) {
                Ok(i) => self.days[i].1 .0 |= states.0,
                Err(i) => self.days.insert(i, (date, states)),
            }
        }
        let i = self.years.binary_search(&raw.year).unwrap_err();
        self.years.insert(i, raw.year);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: i32,
    #[serde(default)]
    holiday: Vec<RawHoliday>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHoliday {
    date: String,
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    states: Vec<String>,
    /// Other countries whose public holiday it is (`FR`).
    #[serde(default)]
    countries: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_countrys_holidays_count_for_its_numbers_in_the_years_that_list_them() {
        let mut c = Calendar::default();
        let y = "year = 2026\n\n[[holiday]]\ndate = \"2026-11-11\"\nname = \"Armistice\"\ncountries = [\"FR\"]\n";
        c.add_file("2026.toml", y).unwrap();
        c.add_file("2027.toml", "year = 2027\n").unwrap();
        let (fr, de) = (Country::parse("FR"), Country::parse("DE"));
        let day = NaiveDate::from_ymd_opt(2026, 11, 11).unwrap();
        assert!(c.is_holiday(day, StateSet::default(), fr));
        assert!(!c.is_holiday(day, StateSet::default(), de));
        assert!(c.covers_country(2026, fr.unwrap()));
        assert!(
            !c.covers_country(2027, fr.unwrap()),
            "a year without France's holidays"
        );
        let us = y.replace("\"FR\"", "\"US\"").replace("2026", "2028");
        assert!(Calendar::default().add_file("2028.toml", &us).is_err());
    }

    #[test]
    fn the_calendar_runs_out_on_the_first_day_of_the_first_year_without_a_file() {
        let mut c = Calendar::default();
        for y in [2026, 2027, 2029] {
            c.add_file(&format!("{y}.toml"), &format!("year = {y}\n"))
                .unwrap();
        }
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let runs_out = c.runs_out(at("2026-06-01T12:00:00Z"));
        assert_eq!(
            runs_out,
            at("2028-01-01T00:00:00Z"),
            "2029 does not bridge 2028"
        );
        let missing_now = c.runs_out(at("2028-03-01T00:00:00Z"));
        assert_eq!(missing_now, at("2028-01-01T00:00:00Z"), "already out");
    }

    #[test]
    fn shipped_calendars_load() {
        let c = Calendar::load(Path::new("config/holidays")).unwrap();
        assert!(c.covers(2026) && c.covers(2027));
        let pa = {
            let mut s = StateSet::default();
            s.insert(State::parse("PA").unwrap());
            s
        };
        // Good Friday 2026 and Election Day 2026 in Pennsylvania.
        assert!(c.is_holiday(NaiveDate::from_ymd_opt(2026, 4, 3).unwrap(), pa, None));
        assert!(c.is_holiday(NaiveDate::from_ymd_opt(2026, 11, 3).unwrap(), pa, None));
        assert!(!c.is_holiday(NaiveDate::from_ymd_opt(2026, 4, 6).unwrap(), pa, None));
    }

    #[test]
    fn a_date_outside_its_year_is_refused_with_its_line() {
        let mut c = Calendar::default();
        let e = c
            .add_file(
                "2026.toml",
                "year = 2026\n\n[[holiday]]\ndate = \"2027-01-01\"\nname = \"x\"\nstates = [\"PA\"]\n",
            )
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("2026.toml:4:"), "{e}");
    }
}
