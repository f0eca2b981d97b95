//! The dashboard call: the period's KPIs, the previous period's and a series, each equal to the
//! KPIs computed on its own over the same facts; and the series' windows.

use custodia_core::Timestamp;
use proptest::prelude::*;
use serde_json::json;

use crate::{
    AnalyticsError, DashboardAccumulator, DashboardRequest, Fact, FactKind, Interval, Params,
    SegmentsAccumulator, compute_dashboard, compute_kpis, compute_segments,
};

use super::{at, by_subject, currency, fact, nps, order, pairs, refund, subject};

/// A few subjects ordering across a quarter and the one before.
fn shop() -> Vec<Fact> {
    let mut facts = Vec::new();
    for n in 1..=6u8 {
        facts.push(fact(n, "2023-12-15T10:00:00Z", order(1_000, "EUR")));
        facts.push(fact(n, "2024-01-03T10:00:00Z", order(2_000, "EUR")));
        facts.push(fact(n, "2024-02-20T10:00:00Z", nps(9 + n % 2)));
    }
    for n in 7..=12u8 {
        facts.push(fact(
            n,
            "2024-03-04T00:00:00Z",
            order(500 * i64::from(n), "USD"),
        ));
        facts.push(fact(n, "2024-03-31T23:59:59Z", refund(100, "USD")));
    }
    facts
}

fn quarter() -> Params {
    Params::new(at("2024-01-01T00:00:00Z"), at("2024-04-01T00:00:00Z")).unwrap()
}

#[test]
fn without_compare_or_series_the_answer_is_the_kpis() {
    let subjects = by_subject(&shop());
    let dashboard =
        compute_dashboard(pairs(&subjects), 1, &quarter(), DashboardRequest::default()).unwrap();
    let kpis = compute_kpis(pairs(&subjects), 1, &quarter());
    assert_eq!(dashboard.kpis, kpis);
    assert_eq!(
        serde_json::to_value(&dashboard).unwrap(),
        serde_json::to_value(&kpis).unwrap()
    );
}

#[test]
fn previous_period_and_monthly_series() {
    let subjects = by_subject(&shop());
    let request = DashboardRequest {
        compare_previous: true,
        series: Some(Interval::Month),
    };
    let dashboard = compute_dashboard(pairs(&subjects), 0, &quarter(), request).unwrap();
    let previous = dashboard.previous.as_ref().unwrap();
    // 2024-01-01 minus the quarter's 91 days.
    assert_eq!(previous.period.from, at("2023-10-02T00:00:00Z"));
    assert_eq!(previous.period.to, at("2024-01-01T00:00:00Z"));
    assert_eq!(previous.customers, Some(6));
    assert_eq!(dashboard.kpis.customers, Some(12));
    // Of the 6 who ordered before the quarter, all ordered again in it.
    assert_eq!(dashboard.kpis.retention_rate, Some(1.0));

    let series = dashboard.series.as_ref().unwrap();
    let months: Vec<_> = series
        .points
        .iter()
        .map(|point| (point.period.from.to_string(), point.customers, point.nps))
        .collect();
    assert_eq!(
        months,
        [
            ("2024-01-01T00:00:00Z".to_owned(), Some(6), None),
            // Three promoters (10) and three (9): all promoters.
            ("2024-02-01T00:00:00Z".to_owned(), None, Some(100.0)),
            ("2024-03-01T00:00:00Z".to_owned(), Some(6), None),
        ]
    );
    // February had no orders, but the six January customers had ordered before it: retention
    // 0 over six earlier customers; in March the same six, as March's customers are new.
    assert_eq!(series.points[1].retention_rate, Some(0.0));
    assert_eq!(series.points[2].retention_rate, Some(0.0));
    assert_eq!(
        series.points[2].average_order_value.by_currency[&currency("USD")],
        // (500 × (7 + … + 12) − 6 × 100) / 6 orders = 4,650 cents.
        Some(46.5)
    );
    let json = serde_json::to_value(&dashboard).unwrap();
    assert_eq!(json["series"]["interval"], json!("month"));
    assert_eq!(
        json["previous"]["period"]["to"],
        json!("2024-01-01T00:00:00Z")
    );
}

#[test]
fn series_windows_start_at_midnight_monday_and_the_first_of_the_month() {
    let cases: &[(Interval, &str, &str, &[&str])] = &[
        // A Wednesday noon to the next Wednesday: cut at Monday.
        (
            Interval::Week,
            "2024-05-01T12:00:00Z",
            "2024-05-08T12:00:00Z",
            &[
                "2024-05-01T12:00:00Z",
                "2024-05-06T00:00:00Z",
                "2024-05-08T12:00:00Z",
            ],
        ),
        // Over a year's end and a leap day.
        (
            Interval::Month,
            "2023-12-15T00:00:00Z",
            "2024-03-01T00:00:00Z",
            &[
                "2023-12-15T00:00:00Z",
                "2024-01-01T00:00:00Z",
                "2024-02-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
            ],
        ),
        (
            Interval::Day,
            "2024-02-28T06:00:00Z",
            "2024-03-01T06:00:00Z",
            &[
                "2024-02-28T06:00:00Z",
                "2024-02-29T00:00:00Z",
                "2024-03-01T00:00:00Z",
                "2024-03-01T06:00:00Z",
            ],
        ),
        // Before 1970, and 1900 is no leap year.
        (
            Interval::Month,
            "1900-02-10T00:00:00Z",
            "1900-03-10T00:00:00Z",
            &[
                "1900-02-10T00:00:00Z",
                "1900-03-01T00:00:00Z",
                "1900-03-10T00:00:00Z",
            ],
        ),
        (
            Interval::Week,
            "1969-12-28T00:00:00Z",
            "1970-01-06T00:00:00Z",
            &[
                "1969-12-28T00:00:00Z",
                "1969-12-29T00:00:00Z",
                "1970-01-05T00:00:00Z",
                "1970-01-06T00:00:00Z",
            ],
        ),
        // Within one window: the period itself.
        (
            Interval::Month,
            "2024-05-02T00:00:00Z",
            "2024-05-03T00:00:00Z",
            &["2024-05-02T00:00:00Z", "2024-05-03T00:00:00Z"],
        ),
    ];
    for (interval, from, to, expected) in cases {
        let boundaries: Vec<String> = interval
            .boundaries(at(from), at(to))
            .unwrap()
            .iter()
            .map(Timestamp::to_string)
            .collect();
        assert_eq!(boundaries, *expected, "{interval:?} {from} {to}");
    }
}

#[test]
fn a_series_is_bounded() {
    let from = at("2021-01-01T00:00:00Z");
    // Three years of days (2021–2023, 1,095 days) fit; four do not.
    let days = Interval::Day
        .boundaries(from, at("2024-01-01T00:00:00Z"))
        .unwrap();
    assert_eq!(days.len(), 1_096);
    let too_long = Interval::Day.boundaries(from, at("2025-01-01T00:00:00Z"));
    assert_eq!(
        too_long,
        Err(AnalyticsError::InvalidParams { what: "series" })
    );
    assert!(
        Interval::Week
            .boundaries(from, at("2041-01-01T00:00:00Z"))
            .is_ok()
    );
    let months = Interval::Month.boundaries(at("0001-01-01T00:00:00Z"), at("9999-01-01T00:00:00Z"));
    assert_eq!(
        months,
        Err(AnalyticsError::InvalidParams { what: "series" })
    );
    // The request is refused as a whole before anything is computed.
    let params = Params::new(from, at("2025-01-01T00:00:00Z")).unwrap();
    let request = DashboardRequest {
        compare_previous: false,
        series: Some(Interval::Day),
    };
    assert_eq!(
        request.check(&params),
        Err(AnalyticsError::InvalidParams { what: "series" })
    );
    assert!(compute_dashboard(std::iter::empty(), 0, &params, request).is_err());
    let earliest = Params::new(
        Timestamp::from_unix_micros(i64::MIN),
        Timestamp::from_unix_micros(0),
    )
    .unwrap();
    assert_eq!(
        earliest.previous_period(),
        Err(AnalyticsError::InvalidParams { what: "compare" })
    );
    assert_eq!(Interval::parse("week"), Some(Interval::Week));
    assert_eq!(Interval::parse("Week"), None);
}

/// A random fact kind: orders and refunds in three currencies, NPS answers, reviews and the
/// kinds without values, some out of their domain.
fn kind() -> impl Strategy<Value = FactKind> {
    let currency = prop_oneof![Just("EUR"), Just("USD"), Just("JPY")];
    prop_oneof![
        4 => (0i64..50_000, currency.clone()).prop_map(|(amount, code)| order(amount, code)),
        1 => (0i64..20_000, currency).prop_map(|(amount, code)| refund(amount, code)),
        2 => (0u8..12).prop_map(|score| FactKind::Nps { score }),
        1 => (0u8..7).prop_map(|rating| FactKind::Review { rating }),
        1 => Just(FactKind::ProductAdded),
        1 => Just(FactKind::Identified),
    ]
}

/// Up to 30 subjects' facts over 2022–2024, many of them at midnight (on window boundaries).
fn facts() -> impl Strategy<Value = Vec<Fact>> {
    proptest::collection::vec((0u8..30, 0i64..1_100, 0i64..3, kind()), 0..160).prop_map(|raw| {
        raw.into_iter()
            .map(|(n, day, hour, kind)| Fact {
                pseudonym: subject(n),
                time: plus_hours(at("2022-01-01T00:00:00Z").plus_days(day), hour * 7),
                kind,
            })
            .collect()
    })
}

fn plus_hours(time: Timestamp, hours: i64) -> Timestamp {
    Timestamp::from_unix_micros(time.unix_micros() + hours * 3_600_000_000)
}

proptest! {
    /// Subjects handed over in pseudonym order (the engine's way, taken without regrouping) or
    /// in any other order, named once or split in two, give the same figures.
    #[test]
    fn the_order_of_the_subjects_changes_nothing(facts in facts(), split in 0usize..4) {
        let params = Params::new(at("2022-06-01T00:00:00Z"), at("2023-06-01T00:00:00Z"))
            .unwrap()
            .with_k_anonymity(1)
            .unwrap();
        let request = DashboardRequest { compare_previous: true, series: Some(Interval::Month) };
        let mut sorted = by_subject(&facts);
        sorted.sort_by_key(|(pseudonym, _)| *pseudonym);
        let mut shuffled = sorted.clone();
        shuffled.reverse();
        if let Some((pseudonym, facts)) = shuffled.first_mut().map(|(p, f)| (*p, f)) {
            let tail = facts.split_off(split.min(facts.len()));
            shuffled.push((pseudonym, tail));
        }
        let of = |subjects: &[(custodia_core::Pseudonym, Vec<Fact>)]| {
            compute_dashboard(pairs(subjects), 0, &params, request).unwrap()
        };
        prop_assert_eq!(of(&sorted), of(&shuffled));
    }

    /// The one-pass dashboard equals the KPIs computed on their own: for the period, for the
    /// period before it, and for every window of the series, which tile the period.
    #[test]
    fn dashboard_equals_separate_computations(
        facts in facts(),
        start_day in 0i64..900,
        length_days in 1i64..400,
        start_hour in 0i64..24,
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        k in 1usize..4,
    ) {
        let from = plus_hours(at("2022-01-01T00:00:00Z").plus_days(start_day), start_hour);
        let params = Params::new(from, from.plus_days(length_days))
            .unwrap()
            .with_k_anonymity(k)
            .unwrap();
        let subjects = by_subject(&facts);
        let request = DashboardRequest { compare_previous: true, series: Some(interval) };
        let dashboard = compute_dashboard(pairs(&subjects), 2, &params, request).unwrap();

        prop_assert_eq!(&dashboard.kpis, &compute_kpis(pairs(&subjects), 2, &params));
        let previous = params.previous_period().unwrap();
        prop_assert_eq!(
            dashboard.previous.as_ref().unwrap(),
            &compute_kpis(pairs(&subjects), 2, &previous)
        );
        let points = &dashboard.series.as_ref().unwrap().points;
        prop_assert_eq!(points.first().unwrap().period.from, params.period_from());
        prop_assert_eq!(points.last().unwrap().period.to, params.period_to());
        for (point_idx, point) in points.iter().enumerate() {
            if let Some(next) = points.get(point_idx + 1) {
                prop_assert_eq!(point.period.to, next.period.from);
            }
            let window = Params::new(point.period.from, point.period.to)
                .unwrap()
                .with_k_anonymity(k)
                .unwrap();
            prop_assert_eq!(point, &compute_kpis(pairs(&subjects), 2, &window));
        }
    }
}

proptest! {
    /// The accumulators, fed one subject at a time in any order (each subject once, its facts
    /// as given: unsorted, some out of their domain), equal the batch computations.
    #[test]
    fn the_accumulators_equal_the_batch_computations(
        facts in facts(),
        start_day in 0i64..900,
        length_days in 1i64..400,
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        compare_previous in any::<bool>(),
        k in 1usize..4,
    ) {
        let from = at("2022-01-01T00:00:00Z").plus_days(start_day);
        let params = Params::new(from, from.plus_days(length_days))
            .unwrap()
            .with_k_anonymity(k)
            .unwrap();
        let subjects = by_subject(&facts);
        let request = DashboardRequest { compare_previous, series: Some(interval) };

        let mut dashboard = DashboardAccumulator::new(&params, request).unwrap();
        let mut segments = SegmentsAccumulator::new(&params);
        for (_, facts) in subjects.iter().rev() {
            dashboard.add_subject(facts);
            segments.add_subject(facts);
        }
        prop_assert_eq!(
            dashboard.finish(3),
            compute_dashboard(pairs(&subjects), 3, &params, request).unwrap()
        );
        prop_assert_eq!(segments.finish(3), compute_segments(pairs(&subjects), 3, &params));
    }

    /// Subjects split between accumulators at any points, each fed its share, then merged,
    /// equal the batch computation (the engine sums shares of the copy on several threads).
    #[test]
    fn merged_shares_equal_the_batch_computation(
        facts in facts(),
        start_day in 0i64..900,
        length_days in 1i64..400,
        interval in prop_oneof![Just(Interval::Day), Just(Interval::Week), Just(Interval::Month)],
        compare_previous in any::<bool>(),
        series in any::<bool>(),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    ) {
        let from = at("2022-01-01T00:00:00Z").plus_days(start_day);
        let params = Params::new(from, from.plus_days(length_days)).unwrap();
        let subjects = by_subject(&facts);
        let request = DashboardRequest { compare_previous, series: series.then_some(interval) };
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(subjects.len() + 1)).collect();
        cuts.push(0);
        cuts.push(subjects.len());
        cuts.sort_unstable();
        let mut shares = cuts.windows(2).map(|share| {
            let mut dashboard = DashboardAccumulator::new(&params, request).unwrap();
            for (_, facts) in &subjects[share[0]..share[1]] {
                dashboard.add_subject(facts);
            }
            dashboard
        });
        let mut merged = shares.next().unwrap();
        for share in shares {
            merged.merge(share);
        }
        prop_assert_eq!(
            merged.finish(3),
            compute_dashboard(pairs(&subjects), 3, &params, request).unwrap()
        );
    }
}
