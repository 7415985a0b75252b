//! Calling hours: is a local time inside a rule's window (weekday / Saturday / Sunday /
//! holiday), and when does the window next open in every candidate zone (`Retry-After`).

use super::calendar::Calendar;
use super::rules::{DayWindow, Hours, RuleBook, RuleKind};
use super::Place;
use crate::call::{CallMethod, Purpose};
use crate::number::geo::StateSet;
use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};

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
    states: StateSet,
    date: NaiveDate,
) -> Result<(DayWindow, bool), ()> {
    if let Some(w) = h.holiday {
        if !cal.covers(date.year()) {
            return Err(());
        }
        if cal.is_holiday(date, states) {
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

pub fn check(h: &Hours, cal: &Calendar, states: StateSet, local: NaiveDateTime) -> HoursCheck {
    let Ok((w, holiday)) = window_on(h, cal, states, local.date()) else {
        return HoursCheck::NoCalendar;
    };
    let m = (local.hour() * 60 + local.minute()) as u16;
    match w {
        Some((open, close)) if open <= m && m < close => HoursCheck::Inside {
            slack: (m - open).min(close - m),
        },
        _ => HoursCheck::Outside { holiday },
    }
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
                    RuleKind::Hours(h) if r.applies_to(purpose, method) => Some((
                        h,
                        if r.states.is_empty() {
                            set
                        } else {
                            StateSet(r.states.0 & set.0)
                        },
                    )),
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
                for day in 0..14 {
                    let date = local.date() + Duration::days(day);
                    let Ok((Some((open, _close)), _)) = window_on(h, &book.calendar, st, date)
                    else {
                        continue;
                    };
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
