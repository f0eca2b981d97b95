//! UTC instants with microsecond precision, printed as RFC 3339.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant, stored as microseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn unix_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds since the Unix epoch, clamped at zero (for UUID v7).
    pub fn unix_millis(self) -> u64 {
        u64::try_from(self.0.div_euclid(1000)).unwrap_or(0)
    }

    /// From a `time` instant, truncated to microseconds.
    pub fn from_datetime(dt: OffsetDateTime) -> Timestamp {
        let micros = dt.unix_timestamp_nanos().div_euclid(1000);
        Timestamp(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// As a `time` instant in UTC.
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses RFC 3339 (any offset; converted to UTC).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .map(Timestamp::from_datetime)
    }

    /// Adds one calendar month (the same day of the next month, or its last day when the next
    /// month is shorter), as GDPR Art. 12(3) counts an answer deadline.
    pub fn plus_one_month(self) -> Timestamp {
        let dt = self.to_datetime();
        let (year, month) = match dt.month() {
            time::Month::December => (dt.year() + 1, time::Month::January),
            m => (dt.year(), m.next()),
        };
        let last = time::util::days_in_month(month, year);
        let day = dt.day().min(last);
        match time::Date::from_calendar_date(year, month, day) {
            Ok(date) => Timestamp::from_datetime(dt.replace_date(date)),
            Err(_) => self.plus_days(31),
        }
    }

    /// Adds whole days (negative subtracts).
    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(days.saturating_mul(86_400_000_000)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime().format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("invalid RFC 3339 time"))
    }
}
