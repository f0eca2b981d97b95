//! Loyalty analytics for Custodia: KPIs (customers, repeat purchase, retention and churn, average
//! order value, purchase frequency, customer lifetime value, NPS), RFM scores and segments, and
//! customer-journey stages, computed over a pseudonymized projection of events.
//!
//! Architecture invariant: this crate is pure computation. It does no I/O, names no storage,
//! crypto or HTTP crate, and its input type, [`Fact`], has no field that could hold a name,
//! contact data, an order id or a product name: only a pseudonym, a time, a kind, an amount with
//! its currency, or a score. Published counts go through small-cell suppression
//! (`docs/analytics.md` gives every formula and rule).

mod currency;
mod dashboard;
mod error;
mod fact;
mod journey;
mod kpi;
mod params;
mod rfm;
mod segments;
mod series;
mod suppress;

pub use currency::{Currency, RateTable, amount_minor_from_decimal, amount_minor_from_f64};
pub use dashboard::{
    Dashboard, DashboardAccumulator, DashboardRequest, KpiSeries, compute_dashboard,
};
pub use error::AnalyticsError;
pub use fact::{Fact, FactKind};
pub use journey::{JourneyStage, journey_stage};
pub use kpi::{BaseAmount, Kpis, MoneyFigure, Period, compute_kpis};
pub use params::Params;
pub use rfm::{Rfm, RfmScorer, Segment, rfm_score};
pub use segments::{
    FunnelStage, Segments, SegmentsAccumulator, compute_segments, compute_segments_with,
};
pub use series::Interval;

#[cfg(test)]
mod tests;
