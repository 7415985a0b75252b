//! The abandonment rate of each campaign (TSR 16 CFR 310.4(b)(4), 47 CFR 64.1200(a)(7): at
//! most 3% of the calls answered by a person over a 30-day period per campaign may be
//! abandoned). Counted by UTC day from the call records as calls end; kept in a small file
//! beside the audit log, saved every few seconds and at stop (a crash loses at most the last
//! few seconds of counts), read at start.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The period the rate is measured over.
pub const WINDOW_DAYS: i64 = 30;
/// Above this share a campaign is warned about (the rules' limit).
pub const WARN_RATE: f64 = 0.03;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Day {
    day: NaiveDate,
    answered: u64,
    abandoned: u64,
}

/// Answered and abandoned calls of one campaign over the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub answered: u64,
    pub abandoned: u64,
}

impl Tally {
    pub fn rate(self) -> Option<f64> {
        (self.answered > 0).then(|| self.abandoned as f64 / self.answered as f64)
    }
}

pub struct Abandonment {
    days: Mutex<BTreeMap<String, VecDeque<Day>>>,
    path: Option<PathBuf>,
}

impl Abandonment {
    pub fn in_memory() -> Abandonment {
        Abandonment {
            days: Mutex::new(BTreeMap::new()),
            path: None,
        }
    }

    /// The counts kept beside the audit log in `audit_dir`.
    pub fn open_in(audit_dir: &Path) -> std::io::Result<Abandonment> {
        Self::open(&audit_dir.join("abandonment.json"))
    }

    /// Read the counts a previous run saved (none yet: empty).
    pub fn open(path: &Path) -> std::io::Result<Abandonment> {
        let days = match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                std::io::Error::other(format!("{}: not abandonment counts: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Abandonment {
            days: Mutex::new(days),
            path: Some(path.to_owned()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VecDeque<Day>>> {
        self.days.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An answered call of `campaign` ended on `day`; returns the campaign's tally after it.
    pub fn count(&self, campaign: &str, day: NaiveDate, abandoned: bool) -> Tally {
        let mut all = self.lock();
        let days = all.entry(campaign.to_string()).or_default();
        match days.back_mut() {
            Some(d) if d.day == day => {}
            _ => days.push_back(Day {
                day,
                answered: 0,
                abandoned: 0,
            }),
        }
        if let Some(d) = days.back_mut() {
            d.answered += 1;
            d.abandoned += u64::from(abandoned);
        }
        while days
            .front()
            .is_some_and(|d| d.day <= day - chrono::Duration::days(WINDOW_DAYS))
        {
            days.pop_front();
        }
        sum(days, day)
    }

    /// The campaign's tally over the 30 days up to `today`.
    pub fn tally(&self, campaign: &str, today: NaiveDate) -> Tally {
        self.lock()
            .get(campaign)
            .map(|d| sum(d, today))
            .unwrap_or_default()
    }

    /// Every campaign's tally (for the metrics).
    pub fn all(&self, today: NaiveDate) -> Vec<(String, Tally)> {
        self.lock()
            .iter()
            .map(|(c, d)| (c.clone(), sum(d, today)))
            .collect()
    }

    /// Write the counts (whole, under a temporary name, then renamed).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(&*self.lock()).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn sum(days: &VecDeque<Day>, today: NaiveDate) -> Tally {
    let from = today - chrono::Duration::days(WINDOW_DAYS);
    days.iter()
        .filter(|d| d.day > from && d.day <= today)
        .fold(Tally::default(), |t, d| Tally {
            answered: t.answered + d.answered,
            abandoned: t.abandoned + d.abandoned,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Duration::days(i64::from(d))
    }

    #[test]
    fn the_rate_is_over_the_last_thirty_days() {
        let a = Abandonment::in_memory();
        a.count("c", day(0), true);
        for _ in 0..9 {
            a.count("c", day(0), false);
        }
        assert_eq!(a.tally("c", day(0)).rate(), Some(0.1));
        assert_eq!(a.tally("c", day(29)).rate(), Some(0.1));
        assert_eq!(
            a.tally("c", day(30)),
            Tally::default(),
            "day 0 has left the window"
        );
    }

    #[test]
    fn counts_survive_a_save_and_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abandonment.json");
        let a = Abandonment::open(&path).unwrap();
        a.count("c", day(3), true);
        a.save().unwrap();
        let b = Abandonment::open(&path).unwrap();
        assert_eq!(
            b.tally("c", day(3)),
            Tally {
                answered: 1,
                abandoned: 1
            }
        );
    }
}
