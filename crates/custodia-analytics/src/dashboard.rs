//! The dashboard's one call: the KPIs of a period, optionally those of the period just before
//! it and a time series of each KPI (`GET /v1/analytics/kpis?compare=previous&series=week`).

use custodia_core::{Pseudonym, Timestamp};
use serde::{Deserialize, Serialize};

use crate::kpi::{WindowTotals, in_domain_and_time_order, sorted_by_subject};
use crate::{AnalyticsError, Fact, Interval, Kpis, Params};

/// What to compute beside the period's KPIs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DashboardRequest {
    /// Also the KPIs of the period of equal length just before.
    pub compare_previous: bool,
    /// Also the KPIs of each day, week or month of the period.
    pub series: Option<Interval>,
}

/// The KPIs of a period, with the previous period's and a series when asked for. Without them
/// it is exactly [`Kpis`]: the fields of the period's KPIs are at the top level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dashboard {
    /// The KPIs of the period.
    #[serde(flatten)]
    pub kpis: Kpis,
    /// The KPIs of the period of equal length that ends where this one starts (`compare=previous`),
    /// with the same meaning and suppression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Kpis>,
    /// The KPIs of each window of the period (`series=day|week|month`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<KpiSeries>,
}

/// The KPIs of each day, week or month of a period, in time order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KpiSeries {
    /// The step: windows start at UTC midnights, Mondays or firsts of the month; the first and
    /// the last window are cut to the period.
    pub interval: Interval,
    /// One entry per window, each with its own `period`, figures and suppression. Per-year
    /// figures (the lifetime value) are computed over the window's own length.
    pub points: Vec<Kpis>,
}

impl DashboardRequest {
    /// Checks the request against the period, so that it can be refused before any fact is
    /// read.
    ///
    /// # Errors
    /// As [`compute_dashboard`].
    pub fn check(&self, params: &Params) -> Result<(), AnalyticsError> {
        if self.compare_previous {
            params.previous_period()?;
        }
        if let Some(interval) = self.series {
            interval.boundaries(params.period_from(), params.period_to())?;
        }
        Ok(())
    }
}

impl Params {
    /// The period of equal length that ends where this one starts.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"compare"`) if it would start before the earliest
    /// representable instant.
    pub fn previous_period(&self) -> Result<Params, AnalyticsError> {
        let (from, to) = (
            self.period_from().unix_micros(),
            self.period_to().unix_micros(),
        );
        let previous_from = to
            .checked_sub(from)
            .and_then(|length| from.checked_sub(length))
            .ok_or(AnalyticsError::InvalidParams { what: "compare" })?;
        Ok(self.over(
            Timestamp::from_unix_micros(previous_from),
            self.period_from(),
        ))
    }
}

/// Computes the KPIs of `params`' period and what `request` adds, over the facts of each
/// subject; see [`crate::compute_kpis`] for the inputs. Each subject's facts are read once for
/// the period and its previous one, and once for the series, however many windows it has.
///
/// # Errors
/// [`AnalyticsError::InvalidParams`]: `"compare"` as [`Params::previous_period`], `"series"` for
/// a series of more than [`Interval::MAX_POINTS`] windows.
pub fn compute_dashboard<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
    excluded_for_consent: u64,
    params: &Params,
    request: DashboardRequest,
) -> Result<Dashboard, AnalyticsError> {
    let mut dashboard = DashboardAccumulator::new(params, request)?;
    for facts in sorted_by_subject(facts_by_subject).iter() {
        dashboard.add_ready(facts);
    }
    Ok(dashboard.finish(excluded_for_consent))
}

/// [`compute_dashboard`] one subject at a time, for a caller that keeps the facts in a layout
/// of its own and hands each subject's over in turn (the engine's in-memory copy): no vector
/// of every fact is built.
///
/// Each subject is handed over once (a pseudonym's facts in one call); its facts need not be
/// sorted, and facts out of their domain are skipped, as in [`compute_dashboard`].
pub struct DashboardAccumulator {
    params: Params,
    previous: Option<Params>,
    /// `[previous from,] from, to`: the period and the one before it.
    period: WindowTotals,
    period_boundaries: Vec<Timestamp>,
    series: Option<(Interval, Vec<Timestamp>, WindowTotals)>,
    scratch: Vec<Fact>,
}

impl DashboardAccumulator {
    /// An empty dashboard of `params`' period and what `request` adds.
    ///
    /// # Errors
    /// As [`compute_dashboard`].
    pub fn new(
        params: &Params,
        request: DashboardRequest,
    ) -> Result<DashboardAccumulator, AnalyticsError> {
        let previous = request
            .compare_previous
            .then(|| params.previous_period())
            .transpose()?;
        let period_boundaries = match &previous {
            Some(previous) => vec![
                previous.period_from(),
                params.period_from(),
                params.period_to(),
            ],
            None => vec![params.period_from(), params.period_to()],
        };
        let series = request
            .series
            .map(|interval| {
                interval
                    .boundaries(params.period_from(), params.period_to())
                    .map(|boundaries| (interval, boundaries.clone(), WindowTotals::new(boundaries)))
            })
            .transpose()?;
        Ok(DashboardAccumulator {
            params: params.clone(),
            previous,
            period: WindowTotals::new(period_boundaries.clone()),
            period_boundaries,
            series,
            scratch: Vec::new(),
        })
    }

    /// Adds one subject's facts.
    pub fn add_subject(&mut self, facts: &[Fact]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.add_ready(in_domain_and_time_order(facts, &mut scratch));
        self.scratch = scratch;
    }

    /// Adds one subject's facts, already in their domain and in time order.
    fn add_ready(&mut self, facts: &[Fact]) {
        self.period.add_subject(facts);
        if let Some((_, _, series)) = &mut self.series {
            series.add_subject(facts);
        }
    }

    /// Adds what `other` summed: an accumulator made with the same parameters and request,
    /// fed other subjects (a share of them summed on another thread, say). Each subject must
    /// have gone to exactly one of the two.
    pub fn merge(&mut self, other: DashboardAccumulator) {
        self.period.merge(other.period);
        if let (Some((_, _, series)), Some((_, _, theirs))) = (&mut self.series, other.series) {
            series.merge(theirs);
        }
    }

    /// The dashboard; `excluded_for_consent` is reported as it is.
    pub fn finish(self, excluded_for_consent: u64) -> Dashboard {
        let params = &self.params;
        let kpis_over = |totals: WindowTotals, boundaries: &[Timestamp]| -> Vec<Kpis> {
            totals
                .finish()
                .into_iter()
                .zip(boundaries.windows(2))
                .map(|(totals, window)| {
                    totals.into_kpis(excluded_for_consent, &params.over(window[0], window[1]))
                })
                .collect()
        };
        let mut period = kpis_over(self.period, &self.period_boundaries);
        let kpis = period
            .pop()
            .unwrap_or_else(|| unreachable!("one KPI set per window"));
        let previous = self.previous.and_then(|_| period.pop());
        let series = self.series.map(|(interval, boundaries, totals)| KpiSeries {
            interval,
            points: kpis_over(totals, &boundaries),
        });
        Dashboard {
            kpis,
            previous,
            series,
        }
    }
}
