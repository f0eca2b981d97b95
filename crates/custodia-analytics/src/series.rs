//! The windows of a KPI time series: a period cut at UTC midnights, Mondays or firsts of the
//! month.

use custodia_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::AnalyticsError;

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// The step of a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// Calendar days, from 00:00 UTC.
    Day,
    /// ISO weeks, from Monday 00:00 UTC.
    Week,
    /// Calendar months, from the first at 00:00 UTC.
    Month,
}

impl Interval {
    /// The most windows a series may have: a daily series over three years (1,096 days, one
    /// more when the period does not start at midnight) fits, and so do a weekly one over 21
    /// years and a monthly one over 91. The answer's size and the time to compute it stay
    /// bounded whatever the period.
    pub const MAX_POINTS: usize = 1_100;

    /// The name used in queries and answers (`"week"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }

    /// The interval named `name`, as [`Interval::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Interval> {
        [Interval::Day, Interval::Week, Interval::Month]
            .into_iter()
            .find(|interval| interval.as_str() == name)
    }

    /// The first boundary of this interval strictly after `time`.
    fn next_boundary(self, time: Timestamp) -> Timestamp {
        let micros = time.unix_micros();
        let day = micros.div_euclid(MICROS_PER_DAY);
        let next_day = match self {
            Interval::Day => day + 1,
            // 1970-01-01 was a Thursday: day 4 (mod 7) is a Monday.
            Interval::Week => day + 7 - (day - 4).rem_euclid(7),
            Interval::Month => {
                let (year, month, _) = civil_from_days(day);
                let (year, month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                days_from_civil(year, month, 1)
            }
        };
        Timestamp::from_unix_micros(next_day.saturating_mul(MICROS_PER_DAY))
    }

    /// The boundaries of the series' windows over `[from, to)`: `from`, every boundary of the
    /// interval strictly between, and `to`. The first and last windows may be partial.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"series"`) for more than [`Interval::MAX_POINTS`]
    /// windows, and (`"period"`) unless `from < to`.
    pub fn boundaries(
        self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Timestamp>, AnalyticsError> {
        if from >= to {
            return Err(AnalyticsError::InvalidParams { what: "period" });
        }
        let mut boundaries = vec![from];
        let mut next = self.next_boundary(from);
        while next < to {
            if boundaries.len() >= Interval::MAX_POINTS {
                return Err(AnalyticsError::InvalidParams { what: "series" });
            }
            boundaries.push(next);
            next = self.next_boundary(next);
        }
        boundaries.push(to);
        Ok(boundaries)
    }
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}
