//! The engine's clock, injectable so tests can fix time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use custodia_core::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_unix_micros(micros)
    }
}

/// A clock that stands still until moved; for tests.
#[derive(Debug)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock fixed at `at`.
    pub fn new(at: Timestamp) -> FixedClock {
        FixedClock(AtomicI64::new(at.unix_micros()))
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.unix_micros(), Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.0.load(Ordering::SeqCst))
    }
}

/// The system's clock, stepped back by a number of days while `serve --demo` loads its demo:
/// the demo's data-subject requests then carry the age they pretend to have (one of them
/// overdue), in their records and in their ledger entries alike. At zero days it is the system's
/// clock; the demo loader leaves it there before the server serves.
#[derive(Debug, Default)]
pub struct DemoClock(AtomicI64);

impl DemoClock {
    /// Steps the clock `days` back from the system's time (0: the system's time).
    pub fn set_days_ago(&self, days: i64) {
        self.0.store(days, Ordering::SeqCst);
    }
}

impl Clock for DemoClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().plus_days(-self.0.load(Ordering::SeqCst))
    }
}
