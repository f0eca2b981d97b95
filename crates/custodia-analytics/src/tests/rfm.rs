//! RFM thresholds, quintile scoring and the segment grid.

use crate::{Currency, Fact, RateTable, RfmScorer, Segment, rfm_score};

use super::{at, fact, nps, order, refund};

const NOW: &str = "2024-06-30T00:00:00Z";

/// Subject `n`'s `n_orders` orders, the latest `days_ago` whole days before [`NOW`] and each
/// earlier one a day before the next; the first order carries `spend_minor` in `currency`, the
/// others 0.
fn orders(n: u8, days_ago: i64, n_orders: u64, spend_minor: i64, currency: &str) -> Vec<Fact> {
    (0..n_orders)
        .map(|order_idx| {
            let time = at(NOW).plus_days(-days_ago - order_idx as i64);
            let amount = if order_idx + 1 == n_orders {
                spend_minor
            } else {
                0
            };
            Fact {
                time,
                ..fact(n, NOW, order(amount, currency))
            }
        })
        .collect()
}

#[test]
fn segment_grid() {
    use Segment::*;
    // Rows R 5 down to 1, columns F 1 to 5.
    let grid = [
        (
            5,
            [
                New,
                PotentialLoyalist,
                PotentialLoyalist,
                Champions,
                Champions,
            ],
        ),
        (
            4,
            [
                Promising,
                PotentialLoyalist,
                PotentialLoyalist,
                Loyal,
                Loyal,
            ],
        ),
        (3, [AboutToSleep, AboutToSleep, NeedAttention, Loyal, Loyal]),
        (
            2,
            [Hibernating, Hibernating, AtRisk, AtRisk, CannotLoseThem],
        ),
        (1, [Lost, Lost, AtRisk, AtRisk, CannotLoseThem]),
    ];
    for (r, row) in grid {
        for (f, expected) in (1..=5).zip(row) {
            assert_eq!(Segment::from_scores(r, f), expected, "r {r}, f {f}");
        }
    }
    // Every segment appears in the grid.
    for segment in Segment::ALL {
        assert!(
            grid.iter().any(|(_, row)| row.contains(&segment)),
            "{segment:?}"
        );
    }
    assert_eq!(
        serde_json::to_string(&Segment::CannotLoseThem).unwrap(),
        "\"cannot_lose_them\""
    );
    for segment in Segment::ALL {
        let json = serde_json::to_string(&segment).unwrap();
        assert_eq!(json, format!("\"{}\"", segment.as_str()));
    }
}

#[test]
fn fixed_thresholds() {
    /// (days since the latest order, orders, net spend in euro cents) → (R, F, M)
    type Case = ((i64, u64, i64), (u8, u8, u8));
    let cases: &[Case] = &[
        ((0, 1, 5_000), (5, 1, 1)),
        ((30, 2, 5_001), (5, 2, 2)),
        ((31, 3, 15_000), (4, 3, 2)),
        ((90, 4, 15_001), (4, 4, 3)),
        ((91, 5, 40_000), (3, 4, 3)),
        ((180, 6, 40_001), (3, 5, 4)),
        ((181, 1, 100_000), (2, 1, 4)),
        ((365, 2, 100_001), (2, 2, 5)),
        ((366, 10, 0), (1, 5, 1)),
    ];
    for &((days, n_orders, spend), (r, f, m)) in cases {
        let facts = orders(1, days, n_orders, spend, "EUR");
        let rfm = rfm_score(&facts, at(NOW)).unwrap();
        assert_eq!(rfm.recency_days, days);
        assert_eq!(rfm.frequency, n_orders);
        assert_eq!(
            (rfm.r, rfm.f, rfm.m),
            (r, f, Some(m)),
            "{days} days, {n_orders} orders, {spend}"
        );
    }
}

#[test]
fn recency_counts_whole_days() {
    // (latest order, whole days before NOW, R)
    let cases = [
        ("2024-06-29T00:00:01Z", 0, 5),
        ("2024-05-30T01:00:00Z", 30, 5), // 30 days and 23 hours
        ("2024-05-29T23:59:59Z", 31, 4),
    ];
    for (time, days, r) in cases {
        let facts = [fact(1, time, order(100, "EUR"))];
        let rfm = rfm_score(&facts, at(NOW)).unwrap();
        assert_eq!((rfm.recency_days, rfm.r), (days, r), "{time}");
    }
}

#[test]
fn monetary_is_net_per_currency_and_never_mixed_without_rates() {
    let facts = [
        fact(1, "2024-06-01T00:00:00Z", order(20_000, "EUR")),
        fact(1, "2024-06-02T00:00:00Z", refund(5_000, "EUR")),
        fact(1, "2024-06-03T00:00:00Z", nps(10)),
        // After `now`: ignored.
        fact(1, "2024-07-01T00:00:00Z", order(99_999, "EUR")),
    ];
    let rfm = rfm_score(&facts, at(NOW)).unwrap();
    assert_eq!(rfm.frequency, 1);
    assert_eq!(rfm.monetary_minor, [(Currency::EUR, 15_000)].into());
    assert_eq!(rfm.m, Some(2));

    let mut mixed = facts.to_vec();
    mixed.push(fact(1, "2024-06-04T00:00:00Z", order(20_000, "USD")));
    let rfm = rfm_score(&mixed, at(NOW)).unwrap();
    assert_eq!(
        rfm.monetary_minor,
        [(Currency::EUR, 15_000), (Currency::USD, 20_000)].into()
    );
    // No rate for USD: R and F are scored, M is not.
    assert_eq!((rfm.r, rfm.f, rfm.m), (5, 2, None));

    // With 1 USD = 0.9 EUR: 150.00 + 180.00 = 330.00 EUR → M 3.
    let rates = RateTable::new(Currency::EUR)
        .with_rate(Currency::USD, 0.9)
        .unwrap();
    let rfm = RfmScorer::fixed()
        .with_rates(rates)
        .score(&mixed, at(NOW))
        .unwrap();
    assert_eq!(rfm.m, Some(3));
}

#[test]
fn no_order_no_score() {
    let facts = [
        fact(1, "2024-06-01T00:00:00Z", nps(10)),
        fact(1, "2024-06-02T00:00:00Z", refund(100, "EUR")),
    ];
    assert_eq!(rfm_score(&facts, at(NOW)), None);
    assert_eq!(rfm_score(&[], at(NOW)), None);
}

#[test]
fn quintile_cut_points_from_a_population() {
    // Subject i (1..=10): i orders, the latest 10·i days ago, 10.00·i EUR in total.
    let subjects: Vec<Vec<Fact>> = (1..=10u8)
        .map(|i| {
            orders(
                i,
                10 * i64::from(i),
                u64::from(i),
                1_000 * i64::from(i),
                "EUR",
            )
        })
        .collect();
    let scorer = RfmScorer::from_population(
        subjects.iter().map(Vec::as_slice),
        at(NOW),
        Currency::EUR,
        None,
    )
    .unwrap();
    // Nearest rank with n = 10: ranks ⌈10·i/5⌉ = 2, 4, 6, 8.
    assert_eq!(scorer.recency_cuts_days(), [20, 40, 60, 80]);
    assert_eq!(scorer.frequency_cuts(), [2, 4, 6, 8]);
    assert_eq!(scorer.monetary_cuts_minor(), [2_000, 4_000, 6_000, 8_000]);
    let scores = |i: usize| {
        let rfm = scorer.score(&subjects[i - 1], at(NOW)).unwrap();
        (rfm.r, rfm.f, rfm.m.unwrap())
    };
    assert_eq!(scores(1), (5, 1, 1));
    assert_eq!(scores(2), (5, 1, 1));
    assert_eq!(scores(5), (3, 3, 3));
    assert_eq!(scores(9), (1, 5, 5));
    assert_eq!(scores(10), (1, 5, 5));

    let empty: [&[Fact]; 0] = [];
    assert_eq!(
        RfmScorer::from_population(empty, at(NOW), Currency::EUR, None),
        None
    );
}

#[test]
fn custom_cut_points_must_be_sorted() {
    assert!(
        RfmScorer::new(
            [30, 90, 180, 365],
            [1, 2, 3, 5],
            Currency::USD,
            [1, 2, 3, 4]
        )
        .is_ok()
    );
    assert!(
        RfmScorer::new(
            [90, 30, 180, 365],
            [1, 2, 3, 5],
            Currency::USD,
            [1, 2, 3, 4]
        )
        .is_err()
    );
    assert!(
        RfmScorer::new(
            [30, 90, 180, 365],
            [1, 2, 3, 5],
            Currency::USD,
            [4, 3, 2, 1]
        )
        .is_err()
    );
}
