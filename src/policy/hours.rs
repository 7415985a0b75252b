//! Calling hours: is a local time inside a rule's window (weekday / Saturday / Sunday /
//! holiday), and when does the window next open in every candidate zone (`Retry-After`).

use super::calendar::Calendar;
use super::rules::{DayWindow, Hours, RuleBook, RuleKind};
use super::Place;
use crate::call::{CallMethod, Purpose};
use crate::number::geo::{Country, StateSet};
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};

/// Whose holidays count for a rule: a US rule's states the number is in (its area code's and
/// its address's), or another country's rule's country.
#[derive(Clone, Copy, Debug)]
pub struct Where {
    pub states: StateSet,
    pub country: Option<Country>,
}

impl Where {
    pub(crate) fn for_rule(rule: &super::rules::Rule, states: StateSet) -> Where {
        Where {
            states: match rule.states.is_empty() {
                true => states,
                false => StateSet(rule.states.0 & states.0),
            },
            country: Some(rule.country),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoursCheck {
    /// Minutes to the nearer edge of the window (how close the call came to being refused).
    Inside {
        slack: u16,
    },
    Outside {
        holiday: bool,
    },
    /// The rule has a holiday window and no calendar covers this year.
    NoCalendar,
}

#[inline]
fn window_on(
    h: &Hours,
    cal: &Calendar,
    at: Where,
    date: NaiveDate,
) -> Result<(DayWindow, bool), ()> {
    if let Some(w) = h.holiday {
        let foreign = at.country.filter(|c| *c != Country::US);
        let covered = match foreign {
            Some(c) => cal.covers_country(date.year(), c),
            None => cal.covers(date.year()),
        };
        if !covered {
            return Err(());
        }
        if cal.is_holiday(date, at.states, foreign) {
            return Ok((w, true));
        }
    }
    Ok((
        match date.weekday() {
            Weekday::Sat => h.saturday,
            Weekday::Sun => h.sunday,
            _ => h.weekday,
        },
        false,
    ))
}

pub fn check(h: &Hours, cal: &Calendar, at: Where, local: NaiveDateTime) -> HoursCheck {
    let Ok((w, holiday)) = window_on(h, cal, at, local.date()) else {
        return HoursCheck::NoCalendar;
    };
    let m = (local.hour() * 60 + local.minute()) as u16;
    let Some((open, close)) = w.filter(|(open, close)| *open <= m && m < *close) else {
        return HoursCheck::Outside { holiday };
    };
    // The part of the window `m` is in: before the pause, after it, or the whole window.
    let (open, close) = match h.pause {
        Some((from, to)) if (from..to).contains(&m) => return HoursCheck::Outside { holiday },
        Some((from, _)) if m < from => (open, from.min(close)),
        Some((_, to)) => (to.max(open), close),
        None => (open, close),
    };
    HoursCheck::Inside {
        slack: (m - open).min(close - m),
    }
}

/// When calls may start on a day whose window is `(open, close)`: its opening, and the end
/// of its pause.
fn openings(h: &Hours, (open, close): (u16, u16)) -> impl Iterator<Item = u16> {
    let after_pause = h
        .pause
        .map(|(_, to)| to)
        .filter(|to| (open..close).contains(to));
    std::iter::once(open).chain(after_pause)
}

/// The earliest time at or after `now` when every hours rule that applies is inside its window
/// in every candidate zone; None if not found within two weeks.
pub(crate) fn next_open(
    book: &RuleBook,
    place: &Place,
    set: StateSet,
    purpose: Purpose,
    method: CallMethod,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mask = book.mask_for(place.country, set);
    // The applicable hours rules, without collecting them (no allocation on the call path).
    let hours = || {
        (0..book.rules.len())
            .filter(move |i| mask & (1 << i) != 0)
            .filter_map(move |i| {
                let r = &book.rules[i];
                match &r.kind {
                    RuleKind::Hours(h) if r.applies_to(purpose, method) => {
                        Some((h, Where::for_rule(r, set)))
                    }
                    _ => None,
                }
            })
    };
    let mut t = now;
    let limit = now + Duration::days(14);
    'search: while t < limit {
        for z in place.zones.iter() {
            let tz = z.tz();
            let local = t.with_timezone(&tz).naive_local();
            for (h, st) in hours() {
                if let HoursCheck::Inside { .. } = check(h, &book.calendar, st, local) {
                    continue;
                }
                // Jump to this rule's next opening in this zone.
                let mut next = None;
                let starts = (0..14).flat_map(|day| {
                    let date = local.date() + Duration::days(day);
                    let window = window_on(h, &book.calendar, st, date).ok();
                    let window = window.and_then(|(w, _)| w);
                    window
                        .into_iter()
                        .flat_map(|w| openings(h, w))
                        .map(move |open| (date, open))
                });
                for (date, open) in starts {
                    let at = date.and_hms_opt(open as u32 / 60, open as u32 % 60, 0)?;
                    if at > local {
                        // A DST gap has no such local time: the next hour does.
                        let utc = tz.from_local_datetime(&at).earliest().or_else(|| {
                            tz.from_local_datetime(&(at + Duration::hours(1)))
                                .earliest()
                        })?;
                        next = Some(utc.with_timezone(&Utc));
                        break;
                    }
                }
                t = next?;
                continue 'search;
            }
        }
        return Some(t);
    }
    None
}
