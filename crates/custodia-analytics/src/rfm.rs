//! RFM scoring (recency, frequency, monetary, each scored 1–5) and the named segments of the
//! classic recency × frequency grid.

use std::collections::BTreeMap;

use custodia_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{AnalyticsError, Currency, Fact, FactKind, RateTable};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One subject's RFM values and scores as of an instant `now`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rfm {
    /// Whole days from the latest order to `now` (0 for an order in the last 24 hours).
    pub recency_days: i64,
    /// Orders up to `now`.
    pub frequency: u64,
    /// Net spend (orders − refunds) up to `now` in minor units, per currency with a non-zero
    /// net; saturates at the `i64` bounds.
    pub monetary_minor: BTreeMap<Currency, i64>,
    /// Recency score, 1 (long ago) to 5 (recent).
    pub r: u8,
    /// Frequency score, 1 (few orders) to 5 (many).
    pub f: u8,
    /// Monetary score, 1 to 5; `None` when the spend is in a currency that the scorer can neither
    /// use directly nor convert (no rate table, or no rate for it), since amounts of different
    /// currencies are never compared as if they were one.
    pub m: Option<u8>,
}

impl Rfm {
    /// The named segment of the subject's R and F scores.
    pub fn segment(&self) -> Segment {
        Segment::from_scores(self.r, self.f)
    }
}

/// The named customer segments of the classic R × F grid (`docs/analytics.md` has the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Segment {
    /// Bought recently and often (R 5, F 4–5).
    Champions,
    /// Buy often, fairly recently (R 3–4, F 4–5).
    Loyal,
    /// Recent, with a few orders (R 4–5, F 2–3).
    PotentialLoyalist,
    /// Bought once, very recently (R 5, F 1).
    New,
    /// Bought once, recently (R 4, F 1).
    Promising,
    /// Middling recency and frequency (R 3, F 3).
    NeedAttention,
    /// Middling recency, few orders (R 3, F 1–2).
    AboutToSleep,
    /// Used to buy often, not lately (R 1–2, F 3–4).
    AtRisk,
    /// Bought most often, long ago (R 1–2, F 5).
    CannotLoseThem,
    /// Few orders, a while ago (R 2, F 1–2).
    Hibernating,
    /// Few orders, longest ago (R 1, F 1–2).
    Lost,
}

impl Segment {
    /// Every segment, in the order of the output tables.
    pub const ALL: [Segment; 11] = [
        Segment::Champions,
        Segment::Loyal,
        Segment::PotentialLoyalist,
        Segment::New,
        Segment::Promising,
        Segment::NeedAttention,
        Segment::AboutToSleep,
        Segment::AtRisk,
        Segment::CannotLoseThem,
        Segment::Hibernating,
        Segment::Lost,
    ];

    /// The segment of scores `r` and `f` (each 1–5; a value outside is clamped into range).
    pub fn from_scores(r: u8, f: u8) -> Segment {
        debug_assert!(
            (1..=5).contains(&r) && (1..=5).contains(&f),
            "scores are 1–5"
        );
        match (r.clamp(1, 5), f.clamp(1, 5)) {
            (5, 4..=5) => Segment::Champions,
            (3..=4, 4..=5) => Segment::Loyal,
            (4..=5, 2..=3) => Segment::PotentialLoyalist,
            (5, 1) => Segment::New,
            (4, 1) => Segment::Promising,
            (3, 3) => Segment::NeedAttention,
            (3, 1..=2) => Segment::AboutToSleep,
            (1..=2, 3..=4) => Segment::AtRisk,
            (1..=2, 5) => Segment::CannotLoseThem,
            (2, 1..=2) => Segment::Hibernating,
            // What is left after clamping is (1, 1..=2).
            _ => Segment::Lost,
        }
    }

    /// The snake_case name used in the output (`"potential_loyalist"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Segment::Champions => "champions",
            Segment::Loyal => "loyal",
            Segment::PotentialLoyalist => "potential_loyalist",
            Segment::New => "new",
            Segment::Promising => "promising",
            Segment::NeedAttention => "need_attention",
            Segment::AboutToSleep => "about_to_sleep",
            Segment::AtRisk => "at_risk",
            Segment::CannotLoseThem => "cannot_lose_them",
            Segment::Hibernating => "hibernating",
            Segment::Lost => "lost",
        }
    }
}

/// Scores a subject's facts with [`RfmScorer::fixed`]: the fixed thresholds, monetary in euros,
/// no exchange rates. `None` if the subject has no order up to `now`.
pub fn rfm_score(facts: &[Fact], now: Timestamp) -> Option<Rfm> {
    RfmScorer::fixed().score(facts, now)
}

/// Turns a subject's recency, frequency and monetary values into 1–5 scores with four cut points
/// per dimension.
///
/// Cut points are inclusive upper bounds: a frequency or monetary value scores 1 plus the number
/// of cut points strictly below it; a recency scores 1 plus the number of cut points at or
/// above it (fewer days is better). So with frequency cuts `[1, 2, 3, 5]`, 5 orders score 4 and
/// 6 orders score 5; with recency cuts `[30, 90, 180, 365]`, 30 days score 5 and 31 days 4.
#[derive(Clone, Debug, PartialEq)]
pub struct RfmScorer {
    recency_cuts_days: [i64; 4],
    frequency_cuts: [u64; 4],
    monetary_currency: Currency,
    monetary_cuts_minor: [i64; 4],
    rates: Option<RateTable>,
}

impl RfmScorer {
    /// The fixed recency cut points, in days: R 5 up to 30, 4 up to 90, 3 up to 180, 2 up to
    /// 365, 1 beyond.
    pub const FIXED_RECENCY_CUTS_DAYS: [i64; 4] = [30, 90, 180, 365];
    /// The fixed frequency cut points, in orders: F 1 for 1, 2 for 2, 3 for 3, 4 for 4–5, 5 for
    /// 6 or more.
    pub const FIXED_FREQUENCY_CUTS: [u64; 4] = [1, 2, 3, 5];
    /// The fixed monetary cut points, in euro cents: M 1 up to €50, 2 up to €150, 3 up to
    /// €400, 4 up to €1,000, 5 beyond.
    pub const FIXED_MONETARY_CUTS_EUR_MINOR: [i64; 4] = [5_000, 15_000, 40_000, 100_000];

    /// The documented fixed thresholds, with monetary values in euros and no exchange rates.
    pub fn fixed() -> RfmScorer {
        RfmScorer {
            recency_cuts_days: RfmScorer::FIXED_RECENCY_CUTS_DAYS,
            frequency_cuts: RfmScorer::FIXED_FREQUENCY_CUTS,
            monetary_currency: Currency::EUR,
            monetary_cuts_minor: RfmScorer::FIXED_MONETARY_CUTS_EUR_MINOR,
            rates: None,
        }
    }

    /// A scorer with the given cut points, monetary ones in minor units of `monetary_currency`.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidParams`] (`"rfm cut points"`) unless each dimension's cut points
    /// are in non-decreasing order.
    pub fn new(
        recency_cuts_days: [i64; 4],
        frequency_cuts: [u64; 4],
        monetary_currency: Currency,
        monetary_cuts_minor: [i64; 4],
    ) -> Result<RfmScorer, AnalyticsError> {
        let sorted = recency_cuts_days.is_sorted()
            && frequency_cuts.is_sorted()
            && monetary_cuts_minor.is_sorted();
        if !sorted {
            return Err(AnalyticsError::InvalidParams {
                what: "rfm cut points",
            });
        }
        Ok(RfmScorer {
            recency_cuts_days,
            frequency_cuts,
            monetary_currency,
            monetary_cuts_minor,
            rates: None,
        })
    }

    /// Cut points at the quintiles of a population: for each dimension, the values at ranks
    /// ⌈n·i/5⌉ (i = 1…4, nearest-rank method) of the `n` subjects with at least one order up to
    /// `now`. Monetary values are taken in `monetary_currency`, converted with `rates` where
    /// given; subjects whose spend cannot be expressed in it are left out of that dimension
    /// only. `None` if no subject has an order.
    ///
    /// Tied values make cut points coincide (many one-order customers give frequency cuts like
    /// `[1, 1, 1, 2]`); the scores stay well defined, they just use fewer than five levels.
    pub fn from_population<'a>(
        subjects: impl IntoIterator<Item = &'a [Fact]>,
        now: Timestamp,
        monetary_currency: Currency,
        rates: Option<RateTable>,
    ) -> Option<RfmScorer> {
        let mut scorer = RfmScorer {
            recency_cuts_days: [0; 4],
            frequency_cuts: [0; 4],
            monetary_currency,
            monetary_cuts_minor: [0; 4],
            rates,
        };
        let mut recencies = Vec::new();
        let mut frequencies = Vec::new();
        let mut monetaries = Vec::new();
        for facts in subjects {
            let Some(values) = RawValues::of(facts.iter(), now) else {
                continue;
            };
            recencies.push(values.recency_days);
            frequencies.push(values.frequency);
            if let Some(monetary) = scorer.monetary_value(&values.net_minor) {
                monetaries.push(monetary);
            }
        }
        scorer.recency_cuts_days = quintile_cuts(recencies)?;
        scorer.frequency_cuts = quintile_cuts(frequencies)?;
        scorer.monetary_cuts_minor = quintile_cuts(monetaries).unwrap_or([0; 4]);
        Some(scorer)
    }

    /// Converts spend in other currencies into the monetary currency with `rates`.
    pub fn with_rates(mut self, rates: RateTable) -> RfmScorer {
        self.rates = Some(rates);
        self
    }

    /// The recency cut points, in days.
    pub fn recency_cuts_days(&self) -> [i64; 4] {
        self.recency_cuts_days
    }

    /// The frequency cut points, in orders.
    pub fn frequency_cuts(&self) -> [u64; 4] {
        self.frequency_cuts
    }

    /// The currency of the monetary cut points.
    pub fn monetary_currency(&self) -> Currency {
        self.monetary_currency
    }

    /// The monetary cut points, in minor units of [`RfmScorer::monetary_currency`].
    pub fn monetary_cuts_minor(&self) -> [i64; 4] {
        self.monetary_cuts_minor
    }

    /// Scores a subject's facts up to and including `now`; `None` if it has no order by then.
    pub fn score(&self, facts: &[Fact], now: Timestamp) -> Option<Rfm> {
        self.score_refs(facts.iter(), now)
    }

    pub(crate) fn score_refs<'a>(
        &self,
        facts: impl IntoIterator<Item = &'a Fact>,
        now: Timestamp,
    ) -> Option<Rfm> {
        let values = RawValues::of(facts, now)?;
        let r = 1 + self
            .recency_cuts_days
            .iter()
            .filter(|&&cut| cut >= values.recency_days)
            .count();
        let f = 1 + self
            .frequency_cuts
            .iter()
            .filter(|&&cut| cut < values.frequency)
            .count();
        let m = self.monetary_value(&values.net_minor).map(|monetary| {
            1 + self
                .monetary_cuts_minor
                .iter()
                .filter(|&&cut| cut < monetary)
                .count()
        });
        let monetary_minor = values
            .net_minor
            .iter()
            .map(|(currency, net)| {
                let clamped = (*net).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
                (*currency, i64::try_from(clamped).unwrap_or_default())
            })
            .collect();
        Some(Rfm {
            recency_days: values.recency_days,
            frequency: values.frequency,
            monetary_minor,
            r: score_u8(r),
            f: score_u8(f),
            m: m.map(score_u8),
        })
    }

    /// The net spend in minor units of the monetary currency (rounded to the minor unit), or
    /// `None` if some currency with a non-zero net can be neither used directly nor converted.
    fn monetary_value(&self, net_minor: &BTreeMap<Currency, i128>) -> Option<i64> {
        let mut total = 0.0;
        for (currency, net) in net_minor {
            total += if *currency == self.monetary_currency {
                *net as f64
            } else {
                self.rates.as_ref()?.convert_minor(
                    *net as f64,
                    *currency,
                    self.monetary_currency,
                )?
            };
        }
        // `as` saturates at the i64 bounds, which is what a score needs.
        Some(total.round() as i64)
    }
}

/// A count of cut points passed plus one, which is 1 to 5.
fn score_u8(score: usize) -> u8 {
    u8::try_from(score).unwrap_or(5)
}

/// The nearest-rank quintile cut points of `values`; `None` if there are none.
fn quintile_cuts<T: Copy + Ord>(mut values: Vec<T>) -> Option<[T; 4]> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let n = values.len();
    Some([1, 2, 3, 4].map(|i| values[(n * i).div_ceil(5) - 1]))
}

/// A subject's recency, frequency and net spend per currency up to `now`.
struct RawValues {
    recency_days: i64,
    frequency: u64,
    /// Per currency with a non-zero net: orders − refunds, in minor units.
    net_minor: BTreeMap<Currency, i128>,
}

impl RawValues {
    /// `None` if there is no order at or before `now`.
    fn of<'a>(facts: impl IntoIterator<Item = &'a Fact>, now: Timestamp) -> Option<RawValues> {
        let mut latest_order: Option<Timestamp> = None;
        let mut frequency = 0;
        let mut net_minor: BTreeMap<Currency, i128> = BTreeMap::new();
        for fact in facts {
            if fact.time > now || fact.kind.check().is_err() {
                continue;
            }
            match fact.kind {
                FactKind::Order {
                    amount_minor,
                    currency,
                } => {
                    frequency += 1;
                    latest_order = latest_order.max(Some(fact.time));
                    *net_minor.entry(currency).or_default() += i128::from(amount_minor);
                }
                FactKind::Refund {
                    amount_minor,
                    currency,
                } => {
                    *net_minor.entry(currency).or_default() -= i128::from(amount_minor);
                }
                _ => {}
            }
        }
        let latest_order = latest_order?;
        net_minor.retain(|_, net| *net != 0);
        let elapsed = now.unix_micros().saturating_sub(latest_order.unix_micros());
        Some(RawValues {
            recency_days: elapsed.div_euclid(MICROS_PER_DAY),
            frequency,
            net_minor,
        })
    }
}
