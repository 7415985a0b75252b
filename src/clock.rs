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
