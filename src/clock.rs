//! Wall-clock access behind a trait, so tests set the time instead of depending on the calendar.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that reads real time shifted by an offset the test controls.
#[derive(Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl OffsetClock {
    pub fn advance(&self, d: chrono::Duration) {
        self.offset_ms
            .fetch_add(d.num_milliseconds(), Ordering::SeqCst);
    }
}

impl OffsetClock {
    /// A clock that reads today's date (UTC) at `hour`:00 UTC, then runs in real time. Tests
    /// use it so that calling-hours rules do not depend on when they run, while list download
    /// dates written relative to the real date stay valid.
    pub fn today_at_utc_hour(hour: u32) -> OffsetClock {
        let now = Utc::now();
        let target = now.date_naive().and_hms_opt(hour, 0, 0).unwrap().and_utc();
        let c = OffsetClock::default();
        c.advance(target - now);
        c
    }
}

/// Today's date at `hour`:00 UTC, RFC 3339 (for `CALLGATE_FAKE_NOW` in tests).
pub fn today_at_utc_hour_rfc3339(hour: u32) -> String {
    Utc::now()
        .date_naive()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339()
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`, as `to_rfc3339_opts(Millis, true)` writes it, without the
/// formatting machinery (the audit writer stamps several times per call).
pub(crate) fn utc_ms(t: DateTime<Utc>, out: &mut Vec<u8>) {
    let ms = t.timestamp_millis();
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date
    // Algorithms", days_from_civil's inverse).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut digits = |v: i64, n: usize, after: u8| {
        let mut buf = [b'0'; 4];
        let mut v = v;
        for i in (0..n).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&buf[..n]);
        out.push(after);
    };
    digits(y.clamp(0, 9999), 4, b'-');
    digits(m, 2, b'-');
    digits(d, 2, b'T');
    digits(in_day / 3_600_000, 2, b':');
    digits(in_day / 60_000 % 60, 2, b':');
    digits(in_day / 1000 % 60, 2, b'.');
    digits(in_day % 1000, 3, b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    #[test]
    fn utc_ms_writes_what_chrono_writes() {
        // Leap days, century rules, the epoch, the end of a day and of a year.
        for s in [
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T23:59:59.999Z",
            "2024-02-29T12:00:00.001Z",
            "2026-12-31T23:59:59.999Z",
            "2100-03-01T00:00:00.000Z",
            "2031-06-15T07:08:09.010Z",
        ] {
            let t: DateTime<Utc> = s.parse().unwrap();
            let mut out = Vec::new();
            utc_ms(t, &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), s);
            assert_eq!(t.to_rfc3339_opts(SecondsFormat::Millis, true), s);
        }
    }
}
