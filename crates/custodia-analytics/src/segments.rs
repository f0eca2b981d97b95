//! RFM segment and journey-stage counts (api.md "Analytics", `GET /v1/analytics/segments`),
//! with small-cell suppression.

use std::collections::BTreeMap;

use custodia_core::{Pseudonym, Timestamp};
use serde::{Deserialize, Serialize};

use crate::journey::stage_of_refs;
use crate::kpi::round_to;
use crate::kpi::sorted_by_subject;
use crate::suppress::hidden_cells;
use crate::{Fact, JourneyStage, Params, RfmScorer, Segment};

/// How many subjects are in each RFM segment and each journey stage, as of `as_of`.
///
/// Every segment and every stage is listed; a count is `None` (JSON `null`) exactly when it is
/// suppressed, and then its path (`"rfm.lost"`, `"journey.purchase"`) is in `suppressed`. No
/// totals are published: see `docs/analytics.md` for why this, together with complementary
/// suppression, keeps a hidden count from being recovered by subtraction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Segments {
    /// The instant the segments describe (the end of `params`' period): facts before it count.
    pub as_of: Timestamp,
    /// Subjects with at least one order, per RFM segment.
    pub rfm: BTreeMap<Segment, Option<u64>>,
    /// Subjects with at least one fact, per journey stage.
    pub journey: BTreeMap<JourneyStage, Option<u64>>,
    /// The journey as a funnel, one row per stage in journey order; made of `journey`'s counts
    /// alone, so it reveals nothing they do not.
    pub funnel: Vec<FunnelStage>,
    /// Subjects left out because their consent or lawful basis does not allow `analytics`, as
    /// the caller counted them.
    pub excluded_for_consent: u64,
    /// The small-cell threshold k, echoed.
    pub k_anonymity: usize,
    /// The paths of the suppressed counts, in table order.
    pub suppressed: Vec<String>,
}

/// One stage of the journey funnel. A stage is where a subject is now, so the subjects who
/// *reached* a stage are those in it or in any later one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelStage {
    /// The stage.
    pub stage: JourneyStage,
    /// Subjects in this stage now: `journey`'s count, `null` when suppressed.
    pub subjects: Option<u64>,
    /// Subjects in this stage or a later one; `null` when any of those counts is suppressed (it
    /// would reveal their sum).
    pub reached: Option<u64>,
    /// Of the subjects who reached this stage, the share who reached the next one (0 to 1,
    /// four decimals); `null` for the last stage and when either `reached` is `null`.
    pub conversion_to_next: Option<f64>,
}

/// The funnel of the published journey counts.
fn funnel(journey: &BTreeMap<JourneyStage, Option<u64>>) -> Vec<FunnelStage> {
    let counts: Vec<Option<u64>> = JourneyStage::ALL
        .iter()
        .map(|stage| journey.get(stage).copied().flatten())
        .collect();
    let reached: Vec<Option<u64>> = (0..counts.len())
        .map(|stage_idx| counts[stage_idx..].iter().copied().sum())
        .collect();
    JourneyStage::ALL
        .iter()
        .enumerate()
        .map(|(stage_idx, stage)| {
            let next = reached.get(stage_idx + 1).copied().flatten();
            let conversion_to_next = match (reached[stage_idx], next) {
                (Some(here), Some(next)) if here > 0 => {
                    Some(round_to(next as f64 / here as f64, 4))
                }
                _ => None,
            };
            FunnelStage {
                stage: *stage,
                subjects: counts[stage_idx],
                reached: reached[stage_idx],
                conversion_to_next,
            }
        })
        .collect()
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
    let mut segments = SegmentsAccumulator::with_scorer(params, scorer.clone());
    for facts in sorted_by_subject(facts_by_subject).iter() {
        segments.add_subject(facts);
    }
    segments.finish(excluded_for_consent)
}

/// [`compute_segments`] one subject at a time (see [`crate::DashboardAccumulator`]): each
/// subject is handed over once; its facts need not be sorted, and facts out of their domain
/// are skipped.
pub struct SegmentsAccumulator {
    params: Params,
    scorer: RfmScorer,
    rfm_counts: BTreeMap<Segment, u64>,
    journey_counts: BTreeMap<JourneyStage, u64>,
}

impl SegmentsAccumulator {
    /// Empty counts, scored with [`RfmScorer::fixed`].
    pub fn new(params: &Params) -> SegmentsAccumulator {
        SegmentsAccumulator::with_scorer(params, RfmScorer::fixed())
    }

    /// Empty counts, scored with `scorer`.
    pub fn with_scorer(params: &Params, scorer: RfmScorer) -> SegmentsAccumulator {
        SegmentsAccumulator {
            params: params.clone(),
            scorer,
            rfm_counts: Segment::ALL.iter().map(|s| (*s, 0)).collect(),
            journey_counts: JourneyStage::ALL.iter().map(|s| (*s, 0)).collect(),
        }
    }

    /// Adds one subject's facts. RFM and the journey stage skip facts out of their domain and
    /// take the latest answer by time themselves, so the facts are used as given, unsorted.
    pub fn add_subject(&mut self, facts: &[Fact]) {
        let now = self.params.period_to();
        let before_now = || facts.iter().filter(|fact| fact.time < now);
        if let Some(rfm) = self.scorer.score_refs(before_now(), now) {
            *self.rfm_counts.entry(rfm.segment()).or_default() += 1;
        }
        if let Some(stage) = stage_of_refs(before_now(), now) {
            *self.journey_counts.entry(stage).or_default() += 1;
        }
    }

    /// The published counts; `excluded_for_consent` is reported as it is.
    pub fn finish(self, excluded_for_consent: u64) -> Segments {
        let SegmentsAccumulator {
            params,
            rfm_counts,
            journey_counts,
            ..
        } = self;
        let params = &params;
        let now = params.period_to();
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
            funnel: funnel(&journey),
            journey,
            excluded_for_consent,
            k_anonymity: params.k_anonymity(),
            suppressed,
        }
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
