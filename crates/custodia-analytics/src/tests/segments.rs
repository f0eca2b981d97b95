//! Segment counts and small-cell suppression.

use proptest::prelude::*;
use serde_json::json;

use crate::suppress::hidden_cells;
use crate::{Fact, FactKind, JourneyStage, Params, Segment, Segments, compute_segments};

use super::{at, by_subject, fact, order, pairs};

/// `now` for the segments: the end of the period.
const TO: &str = "2024-07-01T00:00:00Z";

fn params() -> Params {
    Params::new(at("2024-01-01T00:00:00Z"), at(TO)).unwrap()
}

/// Subjects `first..first + count`, each with `n_orders` orders, the latest `days_ago` days
/// before [`TO`].
fn customers(first: u8, count: u8, n_orders: i64, days_ago: i64) -> Vec<Fact> {
    (first..first + count)
        .flat_map(|s| {
            (0..n_orders).map(move |order_idx| Fact {
                time: at(TO).plus_days(-days_ago - order_idx),
                ..fact(s, TO, order(2_000, "EUR"))
            })
        })
        .collect()
}

/// Subjects `first..first + count`, each with one fact of `kind` and no order.
fn visitors(first: u8, count: u8, kind: FactKind) -> Vec<Fact> {
    (first..first + count)
        .map(|s| fact(s, "2024-03-01T00:00:00Z", kind))
        .collect()
}

/// 5 champions (4 orders, 10 days ago), 4 loyal (4 orders, 60 days ago), 3 at risk (3 orders,
/// 200 days ago), 6 lost (1 order, 400 days ago), 5 aware (identified) and 4 considering
/// (product added).
fn population() -> Vec<Fact> {
    [
        customers(1, 5, 4, 10),
        customers(11, 4, 4, 60),
        customers(21, 3, 3, 200),
        customers(31, 6, 1, 400),
        visitors(41, 5, FactKind::Identified),
        visitors(51, 4, FactKind::ProductAdded),
    ]
    .concat()
}

#[test]
fn small_cells_are_suppressed_with_complements() {
    let subjects = by_subject(&population());
    let segments = compute_segments(pairs(&subjects), 2, &params());
    assert_eq!(
        serde_json::to_value(&segments).unwrap(),
        json!({
            "as_of": "2024-07-01T00:00:00Z",
            "rfm": {
                // 5 is shown.
                "champions": 5,
                // 4 is below k = 5.
                "loyal": null,
                "potential_loyalist": null,
                "new": null,
                "promising": null,
                "need_attention": null,
                "about_to_sleep": null,
                // 3 is below k; with loyal's 4 the hidden cells hold 7 ≥ k, so no complement.
                "at_risk": null,
                "cannot_lose_them": null,
                "hibernating": null,
                "lost": 6
            },
            "journey": {
                // Consideration (4) is the only small non-customer cell: its complement,
                // awareness (5), is hidden too, or the non-customer total would give it away.
                "awareness": null,
                "consideration": null,
                // Advocacy (0) is hidden; the hidden customer cells must hold k subjects, so the
                // smallest shown one, purchase (6 lost customers), is hidden as well.
                "purchase": null,
                // 5 + 4 + 3 repeat customers.
                "retention": 12,
                "advocacy": null
            },
            // Every stage but the last has a hidden later one: no `reached` can be shown.
            "funnel": [
                {"stage": "awareness", "subjects": null, "reached": null, "conversion_to_next": null},
                {"stage": "consideration", "subjects": null, "reached": null, "conversion_to_next": null},
                {"stage": "purchase", "subjects": null, "reached": null, "conversion_to_next": null},
                {"stage": "retention", "subjects": 12, "reached": null, "conversion_to_next": null},
                {"stage": "advocacy", "subjects": null, "reached": null, "conversion_to_next": null}
            ],
            "excluded_for_consent": 2,
            "k_anonymity": 5,
            "suppressed": [
                "rfm.loyal", "rfm.potential_loyalist", "rfm.new", "rfm.promising",
                "rfm.need_attention", "rfm.about_to_sleep", "rfm.at_risk",
                "rfm.cannot_lose_them", "rfm.hibernating",
                "journey.awareness", "journey.consideration", "journey.purchase",
                "journey.advocacy"
            ]
        })
    );
    let json = serde_json::to_string(&segments).unwrap();
    assert_eq!(serde_json::from_str::<Segments>(&json).unwrap(), segments);
}

#[test]
fn true_counts_with_k_1() {
    // With k = 1 only empty cells, and the complements they need, are hidden.
    let subjects = by_subject(&population());
    let segments = compute_segments(pairs(&subjects), 0, &params().with_k_anonymity(1).unwrap());
    assert_eq!(segments.rfm[&Segment::Champions], Some(5));
    assert_eq!(segments.rfm[&Segment::Loyal], Some(4));
    assert_eq!(segments.rfm[&Segment::AtRisk], None); // the smallest cell, complement of 0s
    assert_eq!(segments.rfm[&Segment::Lost], Some(6));
    assert_eq!(segments.journey[&JourneyStage::Awareness], Some(5));
    assert_eq!(segments.journey[&JourneyStage::Consideration], Some(4));
    assert_eq!(segments.journey[&JourneyStage::Purchase], None); // complement of advocacy's 0
    assert_eq!(segments.journey[&JourneyStage::Retention], Some(12));
}

#[test]
fn nothing_is_hidden_when_every_cell_reaches_k() {
    let facts = [
        visitors(1, 5, FactKind::ProductViewed),
        visitors(11, 5, FactKind::CheckoutStarted),
    ]
    .concat();
    let subjects = by_subject(&facts);
    let segments = compute_segments(pairs(&subjects), 0, &params());
    assert_eq!(segments.journey[&JourneyStage::Awareness], Some(5));
    assert_eq!(segments.journey[&JourneyStage::Consideration], Some(5));
    // No customers: every RFM cell and every customer stage is 0, so all are hidden.
    assert!(segments.rfm.values().all(Option::is_none));
    assert_eq!(segments.suppressed.len(), 11 + 3);
}

#[test]
fn the_funnel_counts_who_reached_each_stage() {
    let promoters: Vec<Fact> = (71..76u8)
        .map(|s| fact(s, "2024-03-02T00:00:00Z", FactKind::Nps { score: 9 }))
        .collect();
    let facts = [
        visitors(41, 5, FactKind::Identified),
        visitors(51, 5, FactKind::ProductAdded),
        customers(31, 6, 1, 100),
        customers(61, 5, 2, 30),
        customers(71, 5, 1, 20),
        promoters,
    ]
    .concat();
    let subjects = by_subject(&facts);
    let segments = compute_segments(pairs(&subjects), 0, &params());
    let rows: Vec<_> = segments
        .funnel
        .iter()
        .map(|row| (row.stage, row.subjects, row.reached, row.conversion_to_next))
        .collect();
    assert_eq!(
        rows,
        [
            (JourneyStage::Awareness, Some(5), Some(26), Some(0.8077)),
            (JourneyStage::Consideration, Some(5), Some(21), Some(0.7619)),
            (JourneyStage::Purchase, Some(6), Some(16), Some(0.625)),
            (JourneyStage::Retention, Some(5), Some(10), Some(0.5)),
            (JourneyStage::Advocacy, Some(5), Some(5), None),
        ]
    );
}

#[test]
fn complementary_suppression_table() {
    // (counts, k, hidden)
    let cases: &[(&[u64], u64, &[bool])] = &[
        (&[5, 6, 7], 5, &[false, false, false]),
        // One small cell: the smallest other cell is hidden with it.
        (&[4, 5, 9], 5, &[true, true, false]),
        (&[9, 4, 5], 5, &[false, true, true]),
        // Two small cells holding 7 ≥ k together: enough.
        (&[4, 3, 9], 5, &[true, true, false]),
        // Two small cells holding 4 < k: a third is needed.
        (&[2, 2, 6, 6], 5, &[true, true, true, false]),
        // Hidden zeros alone would be recoverable as zeros.
        (&[0, 0, 10, 20], 5, &[true, true, true, false]),
        // Nothing can make a tiny table safe but hiding all of it.
        (&[1, 1, 1], 5, &[true, true, true]),
        (&[], 5, &[]),
        (&[3, 7], 1, &[false, false]),
        (&[0, 3, 7], 1, &[true, true, false]),
    ];
    for (counts, k, hidden) in cases {
        assert_eq!(hidden_cells(counts, *k), *hidden, "{counts:?}, k {k}");
    }
}

proptest! {
    /// Whatever the counts, a reader who knows a group's exact total (from another table, from
    /// the KPIs, from outside) cannot work out any hidden cell: either nothing is hidden, or at
    /// least two cells are and together they hold at least k subjects, or the whole group is
    /// hidden. Every cell below k is hidden.
    #[test]
    fn no_hidden_cell_is_recoverable_by_subtraction(
        counts in proptest::collection::vec(0u64..12, 0..12),
        k in 1u64..8,
    ) {
        let hidden = hidden_cells(&counts, k);
        let n_hidden = hidden.iter().filter(|h| **h).count();
        let hidden_sum: u64 = counts.iter().zip(&hidden).filter(|(_, h)| **h).map(|(c, _)| c).sum();
        for (count, is_hidden) in counts.iter().zip(&hidden) {
            prop_assert!(*count >= k || *is_hidden);
        }
        prop_assert!(
            n_hidden == 0 || n_hidden == counts.len() || (n_hidden >= 2 && hidden_sum >= k)
        );
    }
}
