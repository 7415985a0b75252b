//! The index's keys as integers: a line's place (its day and byte offset) and a number. Small
//! keys keep every B-tree page fuller, and the place, growing as the log does, makes the main
//! table an append.

use super::{Kind, Pos};
use chrono::NaiveDate;

/// Bits of a place that hold the byte offset (a day file up to 1 TiB).
pub(crate) const OFFSET_BITS: u32 = 40;

fn date_of(day: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(day.strip_prefix("audit-")?, "%Y-%m-%d").ok()
}

/// Days since 1970 of `day` (`audit-YYYY-MM-DD`).
pub(crate) fn day_number(day: &str) -> Option<i64> {
    Some(
        date_of(day)?
            .signed_duration_since(NaiveDate::default())
            .num_days(),
    )
}

/// Days since 1970 of the day of `t`.
pub(crate) fn day_number_of(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.date_naive()
        .signed_duration_since(NaiveDate::default())
        .num_days()
}

/// The place of the line at `offset` of `day` (`audit-YYYY-MM-DD`).
pub(crate) fn place(day: &str, offset: u64) -> Option<i64> {
    place_in(day_number(day)?, offset)
}

/// The place of the line at `offset` of the day `day_number` days since 1970.
pub(crate) fn place_in(day_number: i64, offset: u64) -> Option<i64> {
    let offset = i64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some(day_number << OFFSET_BITS | offset)
}

/// The places of `day`: from its first line up to (not including) the next day's.
pub(crate) fn day_places(day: &str) -> Option<(i64, i64)> {
    let d = day_number(day)?;
    Some((d << OFFSET_BITS, (d + 1) << OFFSET_BITS))
}

/// A place back as the day and offset it was made of.
pub(crate) fn pos_of(place: i64) -> Pos {
    let day = NaiveDate::default() + chrono::Duration::days(place >> OFFSET_BITS);
    Pos {
        day: format!("audit-{}", day.format("%Y-%m-%d")),
        offset: (place & ((1 << OFFSET_BITS) - 1)) as u64,
    }
}

pub(crate) use crate::audit::summary::digits as number;

pub(crate) use crate::audit::summary::call_key;

/// Bits of a decision that hold its sequence number; the instance's name id is above them.
pub(crate) const SEQ_BITS: u32 = 40;

/// A decision id (`<instance>-<seq>`) as its instance and sequence number.
pub(crate) fn decision_parts(id: &str) -> Option<(&str, i64)> {
    let (instance, text) = id.rsplit_once('-')?;
    let seq: i64 = text.parse().ok()?;
    // As the writer writes it: `7`, not `007` or `+7`.
    let canonical = seq.to_string() == text;
    (canonical && (0..1 << SEQ_BITS).contains(&seq)).then_some((instance, seq))
}

pub(crate) fn kind(k: Kind) -> i64 {
    match k {
        Kind::Decision => 0,
        Kind::Call => 1,
        Kind::Admin => 2,
    }
}

pub(crate) fn kind_of(code: i64) -> Option<Kind> {
    Kind::ALL.into_iter().find(|k| kind(*k) == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_its_day_and_offset_again() {
        let p = place("audit-2026-12-06", 123_456).unwrap();
        assert_eq!(pos_of(p).to_string(), "audit-2026-12-06@123456");
        let (lo, hi) = day_places("audit-2026-12-06").unwrap();
        assert!(lo <= p && p < hi);
        assert!(hi <= place("audit-2026-12-07", 0).unwrap());
    }

    #[test]
    fn a_number_is_its_digits() {
        assert_eq!(number("+14155550100"), 14155550100);
        assert_eq!(number(""), 0);
        assert_eq!(number("+1415555010O"), 0);
    }
}
