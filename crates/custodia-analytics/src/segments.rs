//! RFM segment and journey-stage counts (api.md "Analytics", `GET /v1/analytics/segments`),
//! with small-cell suppression.

use std::collections::BTreeMap;

use custodia_core::{Pseudonym, Timestamp};
use serde::{Deserialize, Serialize};

use crate::fact::group_by_subject;
use crate::journey::stage_of_refs;
use crate::suppress::hidden_cells;
use crate::{Fact, JourneyStage, Params, RfmScorer, Segment};

/// How many subjects are in each RFM segment and each journey stage, as of `as_of`.
///
/// Every segment and every stage is listed; a count is `None` (JSON `null`) exactly when it is
/// suppressed, and then its path (`"rfm.lost"`, `"journey.purchase"`) is in `suppressed`. No
/// totals are published: see `docs/analytics.md` for why this, together with complementary
/// suppression, keeps a hidden count from being recovered by subtraction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segments {
    /// The instant the segments describe (the end of `params`' period): facts before it count.
    pub as_of: Timestamp,
    /// Subjects with at least one order, per RFM segment.
    pub rfm: BTreeMap<Segment, Option<u64>>,
    /// Subjects with at least one fact, per journey stage.
    pub journey: BTreeMap<JourneyStage, Option<u64>>,
    /// Subjects left out because their consent or lawful basis does not allow `analytics`, as
    /// the caller counted them.
    pub excluded_for_consent: u64,
    /// The small-cell threshold k, echoed.
    pub k_anonymity: usize,
    /// The paths of the suppressed counts, in table order.
    pub suppressed: Vec<String>,
}

/// Counts subjects per RFM segment (scored with [`RfmScorer::fixed`]) and per journey stage.
///
/// Segments describe each subject's whole history before `params.period_to()`, which is `now`
/// for recency; `params.period_from()` is not used (RFM needs the time since the last order,
/// however long ago). Only R and F decide the segment, so currencies and rates play no part.
pub fn compute_segments<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
    excluded_for_consent: u64,
    params: &Params,
) -> Segments {
    compute_segments_with(
        facts_by_subject,
        excluded_for_consent,
        params,
        &RfmScorer::fixed(),
    )
}

/// As [`compute_segments`], with the cut points of `scorer` (for example
/// [`RfmScorer::from_population`]).
pub fn compute_segments_with<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
    excluded_for_consent: u64,
    params: &Params,
    scorer: &RfmScorer,
) -> Segments {
    let now = params.period_to();
    let mut rfm_counts: BTreeMap<Segment, u64> = Segment::ALL.iter().map(|s| (*s, 0)).collect();
    let mut journey_counts: BTreeMap<JourneyStage, u64> =
        JourneyStage::ALL.iter().map(|s| (*s, 0)).collect();
    for facts in group_by_subject(facts_by_subject).values() {
        let before_now = || facts.iter().copied().filter(|fact| fact.time < now);
        if let Some(rfm) = scorer.score_refs(before_now(), now) {
            *rfm_counts.entry(rfm.segment()).or_default() += 1;
        }
        if let Some(stage) = stage_of_refs(before_now(), now) {
            *journey_counts.entry(stage).or_default() += 1;
        }
    }

    let k = params.k();
    // The RFM table is one group: its total is the number of customers.
    let rfm = publish(&Segment::ALL, &rfm_counts, k);
    // The journey table is two groups, because the customer stages add up to the RFM table's
    // total: a hidden customer stage must be protected against that total as well.
    let (non_customer, customer): (Vec<JourneyStage>, Vec<JourneyStage>) = JourneyStage::ALL
        .iter()
        .partition(|stage| !stage.is_customer());
    let mut journey = publish(&non_customer, &journey_counts, k);
    journey.extend(publish(&customer, &journey_counts, k));

    let hidden_rfm = Segment::ALL
        .iter()
        .filter(|segment| rfm[*segment].is_none())
        .map(|segment| format!("rfm.{}", segment.as_str()));
    let hidden_journey = JourneyStage::ALL
        .iter()
        .filter(|stage| journey[*stage].is_none())
        .map(|stage| format!("journey.{}", stage.as_str()));
    let suppressed = hidden_rfm.chain(hidden_journey).collect();

    Segments {
        as_of: now,
        rfm,
        journey,
        excluded_for_consent,
        k_anonymity: params.k_anonymity(),
        suppressed,
    }
}

/// The counts of one suppression group of cells, with the hidden ones as `None`.
fn publish<C: Copy + Ord>(
    cells: &[C],
    counts: &BTreeMap<C, u64>,
    k: u64,
) -> BTreeMap<C, Option<u64>> {
    let values: Vec<u64> = cells
        .iter()
        .map(|cell| counts.get(cell).copied().unwrap_or(0))
        .collect();
    let hidden = hidden_cells(&values, k);
    cells
        .iter()
        .zip(values)
        .zip(hidden)
        .map(|((cell, value), is_hidden)| (*cell, (!is_hidden).then_some(value)))
        .collect()
}
