//! The index's keys as integers: a line's place (its day and byte offset) and a number. Small
//! keys keep every B-tree page fuller, and the place, growing as the log does, makes the main
//! table an append.

use super::{Kind, Pos};
use chrono::NaiveDate;

/// Bits of a place that hold the byte offset (a day file up to 1 TiB).
const OFFSET_BITS: u32 = 40;

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

/// The place of the line at `offset` of `day` (`audit-YYYY-MM-DD`).
pub(crate) fn place(day: &str, offset: u64) -> Option<i64> {
    let offset = i64::try_from(offset)
        .ok()
        .filter(|o| *o < 1 << OFFSET_BITS)?;
    Some(day_number(day)? << OFFSET_BITS | offset)
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

/// An E.164 number (`+14155550100`) as its digits; 0 for none (or what is not a number).
pub(crate) fn number(n: &str) -> i64 {
    n.strip_prefix('+')
        .filter(|d| !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
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
