//! The parameters of a computation, checked once on construction so that the computations
//! themselves cannot fail.

use custodia_core::Timestamp;

use crate::{AnalyticsError, RateTable};

/// Microseconds in a Julian year (365.25 days), the year of the per-year figures.
pub(crate) const MICROS_PER_YEAR: f64 = 365.25 * 86_400.0 * 1_000_000.0;

/// What to compute over: the period, the customer lifespan for CLV, the small-cell threshold and
/// optional exchange rates.
///
/// The period is half-open, `[period_from, period_to)`: a fact at exactly `period_to` belongs to
/// the next period.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    period_from: Timestamp,
    period_to: Timestamp,
    expected_lifespan_years: f64,
    k_anonymity: usize,
    rates: Option<RateTable>,
}

impl Params {
    /// The default expected customer lifespan for CLV, in years.
    pub const DEFAULT_EXPECTED_LIFESPAN_YEARS: f64 = 3.0;
    /// The default small-cell threshold: figures resting on fewer subjects are suppressed.
    pub const DEFAULT_K_ANONYMITY: usize = 5;

    /// The period `[period_from, period_to)` with the default lifespan (3 years), k (5) and no
    /// rate table.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"period"`) unless `period_from < period_to`.
    pub fn new(period_from: Timestamp, period_to: Timestamp) -> Result<Params, AnalyticsError> {
        if period_from >= period_to {
            return Err(AnalyticsError::InvalidParams { what: "period" });
        }
        Ok(Params {
            period_from,
            period_to,
            expected_lifespan_years: Params::DEFAULT_EXPECTED_LIFESPAN_YEARS,
            k_anonymity: Params::DEFAULT_K_ANONYMITY,
            rates: None,
        })
    }

    /// Sets the expected customer lifespan used by CLV.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"expected_lifespan_years"`) unless it is finite and
    /// above zero.
    pub fn with_expected_lifespan_years(mut self, years: f64) -> Result<Params, AnalyticsError> {
        if !(years.is_finite() && years > 0.0) {
            return Err(AnalyticsError::InvalidParams {
                what: "expected_lifespan_years",
            });
        }
        self.expected_lifespan_years = years;
        Ok(self)
    }

    /// Sets the small-cell threshold k.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"k_anonymity"`) if `k` is 0.
    pub fn with_k_anonymity(mut self, k: usize) -> Result<Params, AnalyticsError> {
        if k == 0 {
            return Err(AnalyticsError::InvalidParams {
                what: "k_anonymity",
            });
        }
        self.k_anonymity = k;
        Ok(self)
    }

    /// Sets the exchange rates, so that money figures are also given in the table's base.
    pub fn with_rates(mut self, rates: RateTable) -> Params {
        self.rates = Some(rates);
        self
    }

    /// The first instant of the period.
    pub fn period_from(&self) -> Timestamp {
        self.period_from
    }

    /// The first instant after the period.
    pub fn period_to(&self) -> Timestamp {
        self.period_to
    }

    /// The expected customer lifespan, in years.
    pub fn expected_lifespan_years(&self) -> f64 {
        self.expected_lifespan_years
    }

    /// The small-cell threshold k, at least 1.
    pub fn k_anonymity(&self) -> usize {
        self.k_anonymity
    }

    /// The exchange rates, if any.
    pub fn rates(&self) -> Option<&RateTable> {
        self.rates.as_ref()
    }

    /// The same parameters over the period `[period_from, period_to)`, which the caller has
    /// checked is not empty.
    pub(crate) fn over(&self, period_from: Timestamp, period_to: Timestamp) -> Params {
        debug_assert!(period_from < period_to);
        Params {
            period_from,
            period_to,
            ..self.clone()
        }
    }

    /// The period's length in Julian years (365.25 days), above zero.
    pub(crate) fn period_years(&self) -> f64 {
        let micros = self.period_to.unix_micros() as f64 - self.period_from.unix_micros() as f64;
        micros / MICROS_PER_YEAR
    }

    /// k as a count of subjects.
    pub(crate) fn k(&self) -> u64 {
        u64::try_from(self.k_anonymity).unwrap_or(u64::MAX)
    }
}
