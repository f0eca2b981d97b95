//! The loyalty KPIs of one period (api.md "Analytics", `GET /v1/analytics/kpis`). The formulas
//! are written out in `docs/analytics.md`; each function here names the one it computes.

use std::collections::BTreeMap;

use custodia_core::{Pseudonym, Timestamp};
use serde::{Deserialize, Serialize};

use crate::fact::group_by_subject;
use crate::{Currency, Fact, FactKind, Params, RateTable};

/// The KPIs of one period. A figure is `None` (JSON `null`) exactly when it is suppressed, and
/// then its path is in `suppressed`: it rests on fewer than `k_anonymity` subjects (which
/// includes every figure whose denominator is zero).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpis {
    /// The period `[from, to)`, echoed.
    pub period: Period,
    /// Subjects with at least one order in the period.
    pub customers: Option<u64>,
    /// Customers with at least two orders in the period, over customers.
    pub repeat_purchase_rate: Option<f64>,
    /// Of the subjects who ordered before the period, the share who ordered again in it.
    pub retention_rate: Option<f64>,
    /// `1 − retention_rate`.
    pub churn_rate: Option<f64>,
    /// Net revenue of the period over its orders, per currency and optionally in the base.
    pub average_order_value: MoneyFigure,
    /// Orders in the period over customers.
    pub purchase_frequency: Option<f64>,
    /// Net revenue per customer per year, times the expected lifespan.
    pub customer_lifetime_value: MoneyFigure,
    /// Net promoter score over each respondent's latest answer in the period, −100 to 100.
    pub nps: Option<f64>,
    /// Subjects left out because their consent or lawful basis does not allow `analytics`, as
    /// the caller counted them.
    pub excluded_for_consent: u64,
    /// The lifespan used by `customer_lifetime_value`, echoed.
    pub expected_lifespan_years: f64,
    /// The small-cell threshold k, echoed.
    pub k_anonymity: usize,
    /// The dotted paths of the suppressed figures, each naming a `null` in this body (`"nps"`,
    /// `"average_order_value.by_currency.JPY"`, `"customer_lifetime_value.base.amount"`), in the
    /// order of the fields.
    pub suppressed: Vec<String>,
    /// Currencies with orders or refunds in the period that the rate table has no rate for; when
    /// it is not empty, the `base` amounts are `null` (never a sum that leaves them out). Always
    /// empty without a rate table.
    pub missing_rates: Vec<Currency>,
}

/// A period `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Period {
    /// The first instant of the period.
    pub from: Timestamp,
    /// The first instant after the period.
    pub to: Timestamp,
}

/// A money figure: one amount per currency that had orders in the period, and, with a rate
/// table, one amount in the table's base. Amounts are in major units (euros, yen) rounded to the
/// currency's minor unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MoneyFigure {
    /// The amount in each currency, computed over that currency's orders and customers alone;
    /// `null` when suppressed.
    pub by_currency: BTreeMap<Currency, Option<f64>>,
    /// The amount over all currencies converted into the base; absent (`null`) without a rate
    /// table.
    pub base: Option<BaseAmount>,
}

/// A money figure converted into the base currency of the rate table.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BaseAmount {
    /// The base currency.
    pub currency: Currency,
    /// The amount in major units of the base; `null` when suppressed or when a rate is missing.
    pub amount: Option<f64>,
}

/// Computes the KPIs of `params`' period over the facts of each subject.
///
/// `facts_by_subject` holds only subjects whose consent or lawful basis allows `analytics`;
/// `excluded_for_consent` is how many the caller left out, reported as it is. Facts need not be
/// sorted; facts of a pseudonym named twice are merged; facts out of their domain are skipped.
pub fn compute_kpis<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
    excluded_for_consent: u64,
    params: &Params,
) -> Kpis {
    let subjects = sorted_by_subject(facts_by_subject);
    let boundaries = [params.period_from(), params.period_to()];
    let [totals] = <[Totals; 1]>::try_from(window_totals(&subjects, &boundaries))
        .unwrap_or_else(|_| unreachable!("one window between two boundaries"));
    totals.into_kpis(excluded_for_consent, params)
}

/// Each subject's facts in their domain, sorted by time (stably: of two facts at the same time,
/// the one later in the input stays later, so it still wins a tie as the latest answer).
///
/// Input already in strictly increasing pseudonym order (as the engine hands it over) is taken
/// as it is, without a map, and a subject whose facts are all in their domain and in time order
/// is borrowed, not copied; anything else is grouped by pseudonym first, so that a subject named
/// twice is merged. Either way, the subjects' order does not change a figure.
pub(crate) fn sorted_by_subject<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
) -> BySubject<'a> {
    let mut given: Vec<(Pseudonym, &'a [Fact])> = Vec::new();
    let mut in_order = true;
    for (pseudonym, facts) in facts_by_subject {
        in_order &= given.last().is_none_or(|(last, _)| *last < pseudonym);
        given.push((pseudonym, facts));
    }
    let mut by_subject = BySubject::default();
    let fix = |facts: Vec<Fact>, by_subject: &mut BySubject<'a>| {
        let mut facts = facts;
        facts.sort_by_key(|fact| fact.time);
        by_subject
            .subjects
            .push(Source::Fixed(by_subject.fixed.len()));
        by_subject.fixed.push(facts);
    };
    if in_order {
        for (_, facts) in given {
            if ready(facts) {
                by_subject.subjects.push(Source::Given(facts));
            } else {
                let kept = facts
                    .iter()
                    .filter(|fact| fact.kind.check().is_ok())
                    .copied()
                    .collect();
                fix(kept, &mut by_subject);
            }
        }
    } else {
        for facts in group_by_subject(given).into_values() {
            fix(facts.into_iter().copied().collect(), &mut by_subject);
        }
    }
    by_subject
}

/// Whether every fact is in its domain and the facts are in time order.
fn ready(facts: &[Fact]) -> bool {
    facts.is_sorted_by_key(|fact| fact.time) && facts.iter().all(|fact| fact.kind.check().is_ok())
}

/// `facts` if they are all in their domain and in time order; else those in their domain,
/// sorted by time (stably), in `scratch`.
pub(crate) fn in_domain_and_time_order<'f>(
    facts: &'f [Fact],
    scratch: &'f mut Vec<Fact>,
) -> &'f [Fact] {
    if ready(facts) {
        return facts;
    }
    scratch.clear();
    scratch.extend(facts.iter().filter(|fact| fact.kind.check().is_ok()));
    scratch.sort_by_key(|fact| fact.time);
    scratch
}

/// Each subject's facts, in their domain and sorted by time: borrowed from the input where it
/// already was so, else a sorted copy.
#[derive(Default)]
pub(crate) struct BySubject<'a> {
    subjects: Vec<Source<'a>>,
    fixed: Vec<Vec<Fact>>,
}

enum Source<'a> {
    Given(&'a [Fact]),
    Fixed(usize),
}

impl BySubject<'_> {
    /// Each subject's facts.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[Fact]> {
        self.subjects.iter().map(|source| match source {
            Source::Given(facts) => facts,
            Source::Fixed(idx) => self.fixed[*idx].as_slice(),
        })
    }
}

/// The totals of each window between consecutive `boundaries` (strictly increasing, at least
/// two): window `i` is `[boundaries[i], boundaries[i + 1])`. One pass over each subject's facts,
/// sorted by time, whatever the number of windows.
pub(crate) fn window_totals(subjects: &BySubject<'_>, boundaries: &[Timestamp]) -> Vec<Totals> {
    let mut totals = WindowTotals::new(boundaries.to_vec());
    for facts in subjects.iter() {
        totals.add_subject(facts);
    }
    totals.finish()
}

/// [`window_totals`] summed one subject at a time.
pub(crate) struct WindowTotals {
    boundaries: Vec<Timestamp>,
    totals: Vec<Totals>,
    /// Subjects whose first order is before window i's start are counted at the first window
    /// that starts after it and carried forward: prior_customers[i] = Σ new_prior[..=i].
    new_prior: Vec<u64>,
    /// One set of figures, reset per subject and window, so that its currency list keeps its
    /// allocation.
    figures: SubjectFigures,
}

impl WindowTotals {
    pub(crate) fn new(boundaries: Vec<Timestamp>) -> WindowTotals {
        debug_assert!(boundaries.len() >= 2 && boundaries.is_sorted());
        let n_windows = boundaries.len() - 1;
        WindowTotals {
            boundaries,
            totals: (0..n_windows).map(|_| Totals::default()).collect(),
            new_prior: vec![0; n_windows],
            figures: SubjectFigures::default(),
        }
    }

    /// Adds one subject's facts: in their domain, sorted by time.
    pub(crate) fn add_subject(&mut self, facts: &[Fact]) {
        let boundaries = &self.boundaries;
        let n_windows = boundaries.len() - 1;
        let (first, end) = (boundaries[0], boundaries[n_windows]);
        let first_order = facts
            .iter()
            .find(|fact| matches!(fact.kind, FactKind::Order { .. }))
            .map(|fact| fact.time);
        if let Some(time) = first_order {
            // The first window whose start is after the first order.
            let window_idx = boundaries[..n_windows].partition_point(|start| *start <= time);
            if let Some(count) = self.new_prior.get_mut(window_idx) {
                *count += 1;
            }
        }
        let figures = &mut self.figures;
        let mut current: Option<usize> = None;
        for fact in facts
            .iter()
            .filter(|fact| first <= fact.time && fact.time < end)
        {
            // Facts come in time order: most stay in the window of the fact before.
            let window_idx = match current {
                Some(idx) if fact.time < boundaries[idx + 1] => idx,
                _ => boundaries.partition_point(|start| *start <= fact.time) - 1,
            };
            if current != Some(window_idx) {
                if let Some(idx) = current {
                    self.totals[idx].add(figures);
                }
                figures.reset(first_order.is_some_and(|time| time < boundaries[window_idx]));
                current = Some(window_idx);
            }
            figures.add(fact);
        }
        if let Some(idx) = current {
            self.totals[idx].add(figures);
        }
    }

    /// Adds the totals of `other`, which summed other subjects over the same windows.
    pub(crate) fn merge(&mut self, other: WindowTotals) {
        debug_assert_eq!(self.boundaries, other.boundaries);
        for (totals, theirs) in self.totals.iter_mut().zip(other.totals) {
            totals.merge(theirs);
        }
        for (count, theirs) in self.new_prior.iter_mut().zip(other.new_prior) {
            *count += theirs;
        }
    }

    pub(crate) fn finish(self) -> Vec<Totals> {
        let mut totals = self.totals;
        let mut prior_customers = 0;
        for (window, count) in totals.iter_mut().zip(self.new_prior) {
            prior_customers += count;
            window.prior_customers = prior_customers;
        }
        totals
    }
}

/// What one subject contributes to the KPIs of one window.
#[derive(Default)]
struct SubjectFigures {
    orders_in_period: u64,
    /// Whether the subject ordered before the window's start.
    ordered_before_window: bool,
    /// Per currency: orders in the period and net amount (orders − refunds) in the period. A
    /// list, not a map: a subject rarely pays in more than one or two currencies.
    by_currency: Vec<(Currency, CurrencyFigures)>,
    /// The latest NPS answer in the period (later in the list wins a tie in time).
    latest_nps: Option<(Timestamp, u8)>,
}

#[derive(Default, Clone, Copy)]
struct CurrencyFigures {
    orders: u64,
    net_minor: i128,
}

impl SubjectFigures {
    /// Empties the figures for the next subject or window, keeping the list's allocation.
    fn reset(&mut self, ordered_before_window: bool) {
        self.orders_in_period = 0;
        self.ordered_before_window = ordered_before_window;
        self.by_currency.clear();
        self.latest_nps = None;
    }

    /// The figures of `currency`, added if new.
    fn currency(&mut self, currency: Currency) -> &mut CurrencyFigures {
        let at = match self.by_currency.iter().position(|(c, _)| *c == currency) {
            Some(at) => at,
            None => {
                self.by_currency
                    .push((currency, CurrencyFigures::default()));
                self.by_currency.len() - 1
            }
        };
        &mut self.by_currency[at].1
    }

    /// Adds a fact of the window; facts come in time order.
    fn add(&mut self, fact: &Fact) {
        match fact.kind {
            FactKind::Order {
                amount_minor,
                currency,
            } => {
                self.orders_in_period += 1;
                let entry = self.currency(currency);
                entry.orders += 1;
                entry.net_minor += i128::from(amount_minor);
            }
            FactKind::Refund {
                amount_minor,
                currency,
            } => {
                let entry = self.currency(currency);
                entry.net_minor -= i128::from(amount_minor);
            }
            FactKind::Nps { score } => {
                if self.latest_nps.is_none_or(|(time, _)| time <= fact.time) {
                    self.latest_nps = Some((fact.time, score));
                }
            }
            FactKind::Review { .. }
            | FactKind::ProductViewed
            | FactKind::ProductAdded
            | FactKind::CheckoutStarted
            | FactKind::Identified => {}
        }
    }
}

/// The sums over all subjects.
#[derive(Default)]
pub(crate) struct Totals {
    customers: u64,
    repeat_customers: u64,
    orders: u64,
    /// Subjects who ordered before the window, whether or not they have facts in it.
    prior_customers: u64,
    retained_customers: u64,
    nps_respondents: u64,
    promoters: u64,
    detractors: u64,
    by_currency: BTreeMap<Currency, CurrencyTotals>,
}

#[derive(Default)]
struct CurrencyTotals {
    /// Subjects with at least one order in this currency in the period.
    customers: u64,
    orders: u64,
    net_minor: i128,
}

impl Totals {
    fn add(&mut self, subject: &SubjectFigures) {
        if subject.orders_in_period >= 1 {
            self.customers += 1;
            self.orders += subject.orders_in_period;
        }
        if subject.orders_in_period >= 2 {
            self.repeat_customers += 1;
        }
        if subject.ordered_before_window && subject.orders_in_period >= 1 {
            self.retained_customers += 1;
        }
        if let Some((_, score)) = subject.latest_nps {
            self.nps_respondents += 1;
            match score {
                9..=10 => self.promoters += 1,
                0..=6 => self.detractors += 1,
                _ => {}
            }
        }
        for (currency, figures) in &subject.by_currency {
            let totals = self.by_currency.entry(*currency).or_default();
            if figures.orders >= 1 {
                totals.customers += 1;
            }
            totals.orders += figures.orders;
            totals.net_minor += figures.net_minor;
        }
    }

    /// Adds the totals of other subjects over the same window.
    fn merge(&mut self, other: Totals) {
        self.customers += other.customers;
        self.repeat_customers += other.repeat_customers;
        self.orders += other.orders;
        self.prior_customers += other.prior_customers;
        self.retained_customers += other.retained_customers;
        self.nps_respondents += other.nps_respondents;
        self.promoters += other.promoters;
        self.detractors += other.detractors;
        for (currency, theirs) in other.by_currency {
            let totals = self.by_currency.entry(currency).or_default();
            totals.customers += theirs.customers;
            totals.orders += theirs.orders;
            totals.net_minor += theirs.net_minor;
        }
    }

    pub(crate) fn into_kpis(self, excluded_for_consent: u64, params: &Params) -> Kpis {
        let k = params.k();
        let mut suppressed = Vec::new();
        // A figure resting on `base` subjects, or suppressed under the name `path`.
        let mut shown = |path: &str, base: u64, value: f64| -> Option<f64> {
            if base >= k {
                Some(value)
            } else {
                suppressed.push(path.to_owned());
                None
            }
        };
        let customers = self.customers as f64;
        let years = params.period_years();
        let lifespan = params.expected_lifespan_years();

        let customers_figure =
            shown("customers", self.customers, customers).map(|_| self.customers);
        let repeat_purchase_rate = shown(
            "repeat_purchase_rate",
            self.customers,
            round_to(self.repeat_customers as f64 / customers, 4),
        );
        let retention = round_to(
            self.retained_customers as f64 / self.prior_customers as f64,
            4,
        );
        let retention_rate = shown("retention_rate", self.prior_customers, retention);
        let churn_rate = shown(
            "churn_rate",
            self.prior_customers,
            round_to(1.0 - retention, 4),
        );

        // Only currencies with orders get a per-currency figure; refunds in a currency without
        // orders in the period still count in the base.
        let with_orders = || self.by_currency.iter().filter(|(_, t)| t.orders >= 1);
        let mut aov_by_currency = BTreeMap::new();
        for (currency, totals) in with_orders() {
            let aov_minor = totals.net_minor as f64 / totals.orders as f64;
            let path = format!("average_order_value.by_currency.{currency}");
            let value = shown(
                &path,
                totals.customers,
                minor_to_major(aov_minor, *currency),
            );
            aov_by_currency.insert(*currency, value);
        }
        let aov_base = params.rates().map(|rates| {
            let amount = self.net_in_base(rates).and_then(|net_base| {
                let aov_minor = net_base / self.orders as f64;
                shown(
                    "average_order_value.base.amount",
                    self.customers,
                    minor_to_major(aov_minor, rates.base()),
                )
            });
            BaseAmount {
                currency: rates.base(),
                amount,
            }
        });

        let purchase_frequency = shown(
            "purchase_frequency",
            self.customers,
            round_to(self.orders as f64 / customers, 4),
        );

        // CLV = AOV × (orders / customers) / years × lifespan, in each currency's own orders
        // and customers, and over everything in the base.
        let mut clv_by_currency = BTreeMap::new();
        for (currency, totals) in with_orders() {
            let aov_minor = totals.net_minor as f64 / totals.orders as f64;
            let per_year = totals.orders as f64 / totals.customers as f64 / years;
            let path = format!("customer_lifetime_value.by_currency.{currency}");
            let clv_minor = aov_minor * per_year * lifespan;
            let value = shown(
                &path,
                totals.customers,
                minor_to_major(clv_minor, *currency),
            );
            clv_by_currency.insert(*currency, value);
        }
        let clv_base = params.rates().map(|rates| {
            let amount = self.net_in_base(rates).and_then(|net_base| {
                let aov_minor = net_base / self.orders as f64;
                let per_year = self.orders as f64 / customers / years;
                shown(
                    "customer_lifetime_value.base.amount",
                    self.customers,
                    minor_to_major(aov_minor * per_year * lifespan, rates.base()),
                )
            });
            BaseAmount {
                currency: rates.base(),
                amount,
            }
        });

        let respondents = self.nps_respondents as f64;
        let nps = shown(
            "nps",
            self.nps_respondents,
            round_to(
                100.0 * (self.promoters as f64 - self.detractors as f64) / respondents,
                1,
            ),
        );

        let missing_rates = match params.rates() {
            Some(rates) => self.currencies_without_rate(rates),
            None => Vec::new(),
        };
        Kpis {
            period: Period {
                from: params.period_from(),
                to: params.period_to(),
            },
            customers: customers_figure,
            repeat_purchase_rate,
            retention_rate,
            churn_rate,
            average_order_value: MoneyFigure {
                by_currency: aov_by_currency,
                base: aov_base,
            },
            purchase_frequency,
            customer_lifetime_value: MoneyFigure {
                by_currency: clv_by_currency,
                base: clv_base,
            },
            nps,
            excluded_for_consent,
            expected_lifespan_years: lifespan,
            k_anonymity: params.k_anonymity(),
            suppressed,
            missing_rates,
        }
    }

    /// The net revenue of the period (orders − refunds, every currency) in minor units of the
    /// base; `None` if a currency has no rate.
    fn net_in_base(&self, rates: &RateTable) -> Option<f64> {
        self.by_currency
            .iter()
            .try_fold(0.0, |sum, (currency, totals)| {
                let converted =
                    rates.convert_minor(totals.net_minor as f64, *currency, rates.base())?;
                Some(sum + converted)
            })
    }

    fn currencies_without_rate(&self, rates: &RateTable) -> Vec<Currency> {
        self.by_currency
            .keys()
            .filter(|currency| rates.rate(**currency).is_none())
            .copied()
            .collect()
    }
}

/// `value` rounded to `decimals` places (half away from zero).
pub(crate) fn round_to(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    let rounded = (value * factor).round() / factor;
    // Turn −0.0 into 0.0, so that JSON never shows "-0.0".
    if rounded == 0.0 { 0.0 } else { rounded }
}

/// An amount in minor units of `currency` as major units, rounded to the minor unit.
fn minor_to_major(amount_minor: f64, currency: Currency) -> f64 {
    round_to(
        amount_minor / currency.minor_per_major(),
        currency.minor_unit_exponent() as i32,
    )
}
