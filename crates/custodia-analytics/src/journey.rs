//! The customer-journey stage of a subject, from the kinds of its facts.

use custodia_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Fact, FactKind};

/// Where a subject stands in the customer journey. Stages are ordered from the first contact to
/// advocacy; a subject is in exactly one, the highest whose rule it meets (see
/// [`journey_stage`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JourneyStage {
    /// Known (identified, viewed products, answered a survey) but never put anything in a cart.
    Awareness,
    /// Added a product to the cart or started a checkout, but never ordered.
    Consideration,
    /// Exactly one order.
    Purchase,
    /// Two or more orders.
    Retention,
    /// At least one order, and a promoter: latest NPS answer 9–10 or latest review rated 4–5.
    Advocacy,
}

impl JourneyStage {
    /// Every stage, in journey order (the order of the output tables).
    pub const ALL: [JourneyStage; 5] = [
        JourneyStage::Awareness,
        JourneyStage::Consideration,
        JourneyStage::Purchase,
        JourneyStage::Retention,
        JourneyStage::Advocacy,
    ];

    /// The snake_case name used in the output (`"consideration"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JourneyStage::Awareness => "awareness",
            JourneyStage::Consideration => "consideration",
            JourneyStage::Purchase => "purchase",
            JourneyStage::Retention => "retention",
            JourneyStage::Advocacy => "advocacy",
        }
    }

    /// Whether the stage is one of a subject with at least one order.
    pub fn is_customer(self) -> bool {
        matches!(
            self,
            JourneyStage::Purchase | JourneyStage::Retention | JourneyStage::Advocacy
        )
    }
}

/// The journey stage of a subject from its facts up to and including `now`; `None` if it has no
/// fact by then. The first rule that holds wins:
///
/// 1. at least one order, and the latest NPS answer is 9–10 or the latest review is rated 4–5:
///    [`JourneyStage::Advocacy`];
/// 2. two or more orders: [`JourneyStage::Retention`];
/// 3. exactly one order: [`JourneyStage::Purchase`];
/// 4. a product added or a checkout started: [`JourneyStage::Consideration`];
/// 5. any other fact: [`JourneyStage::Awareness`].
///
/// Refunds do not undo orders: a refunded order still moved the subject along the journey.
pub fn journey_stage(facts: &[Fact], now: Timestamp) -> Option<JourneyStage> {
    stage_of_refs(facts.iter(), now)
}

pub(crate) fn stage_of_refs<'a>(
    facts: impl IntoIterator<Item = &'a Fact>,
    now: Timestamp,
) -> Option<JourneyStage> {
    let mut any_fact = false;
    let mut orders: u64 = 0;
    let mut considered = false;
    // Latest answers, by time; a later fact in the list wins a tie.
    let mut latest_nps: Option<(Timestamp, u8)> = None;
    let mut latest_review: Option<(Timestamp, u8)> = None;
    for fact in facts {
        if fact.time > now || fact.kind.check().is_err() {
            continue;
        }
        any_fact = true;
        match fact.kind {
            FactKind::Order { .. } => orders += 1,
            FactKind::ProductAdded | FactKind::CheckoutStarted => considered = true,
            FactKind::Nps { score } => keep_latest(&mut latest_nps, fact.time, score),
            FactKind::Review { rating } => keep_latest(&mut latest_review, fact.time, rating),
            FactKind::Refund { .. } | FactKind::ProductViewed | FactKind::Identified => {}
        }
    }
    if !any_fact {
        return None;
    }
    let promoter = latest_nps.is_some_and(|(_, score)| score >= 9)
        || latest_review.is_some_and(|(_, rating)| rating >= 4);
    Some(match orders {
        1.. if promoter => JourneyStage::Advocacy,
        2.. => JourneyStage::Retention,
        1 => JourneyStage::Purchase,
        0 if considered => JourneyStage::Consideration,
        0 => JourneyStage::Awareness,
    })
}

fn keep_latest(latest: &mut Option<(Timestamp, u8)>, time: Timestamp, value: u8) {
    if latest.is_none_or(|(latest_time, _)| latest_time <= time) {
        *latest = Some((time, value));
    }
}
