//! The KPIs on a fixed data set whose expected values are worked out by hand below.

use serde_json::{Value, json};

use crate::{AnalyticsError, Currency, Fact, FactKind, Kpis, Params, RateTable, compute_kpis};

use super::{at, by_subject, fact, nps, order, pairs, refund, review, subject};

/// The period: 2024-01-01T00:00Z plus 365.25 days, exactly one Julian year, so that "per year"
/// figures equal "per period" ones and the arithmetic below stays readable.
const FROM: &str = "2024-01-01T00:00:00Z";
const TO: &str = "2024-12-31T06:00:00Z";

/// Eight subjects, three currencies, refunds, NPS answers, orders before and in the period.
fn loyalty_fixture() -> Vec<Fact> {
    vec![
        // S1: ordered before; two EUR orders in the period; promoter.
        fact(1, "2023-06-01T10:00:00Z", order(8_000, "EUR")),
        fact(1, "2024-02-01T10:00:00Z", order(10_000, "EUR")),
        fact(1, "2024-03-01T10:00:00Z", order(5_000, "EUR")),
        fact(1, "2024-04-01T10:00:00Z", nps(10)),
        // S2: ordered before; one EUR order and a partial refund in the period; answered 8, then
        // 3 (the latest answer counts: detractor). Identified exactly at the period's start.
        fact(2, "2023-09-01T10:00:00Z", order(2_500, "EUR")),
        fact(2, FROM, FactKind::Identified),
        fact(2, "2024-05-01T10:00:00Z", order(4_000, "EUR")),
        fact(2, "2024-05-20T10:00:00Z", refund(1_000, "EUR")),
        fact(2, "2024-06-01T10:00:00Z", nps(8)),
        fact(2, "2024-07-01T10:00:00Z", nps(3)),
        // S3: ordered (USD) before only: not retained; promoter. The score 42 is out of its
        // domain and must be skipped, although it is the latest answer.
        fact(3, "2023-03-01T10:00:00Z", order(6_000, "USD")),
        fact(3, "2024-02-01T10:00:00Z", nps(9)),
        Fact {
            pseudonym: subject(3),
            time: at("2024-03-01T10:00:00Z"),
            kind: FactKind::Nps { score: 42 },
        },
        // S4: ordered before; three USD orders and a refund in the period; passive.
        fact(4, "2023-11-01T10:00:00Z", order(1_500, "USD")),
        fact(4, "2024-03-01T10:00:00Z", order(3_000, "USD")),
        fact(4, "2024-04-01T10:00:00Z", order(2_000, "USD")),
        fact(4, "2024-10-01T10:00:00Z", order(2_500, "USD")),
        fact(4, "2024-11-01T10:00:00Z", refund(500, "USD")),
        fact(4, "2024-05-01T10:00:00Z", nps(7)),
        // S5: one JPY order and a review in the period; a second order exactly at the period's
        // end belongs to the next period.
        fact(5, "2024-08-01T10:00:00Z", order(5_000, "JPY")),
        fact(5, "2024-08-05T10:00:00Z", review(5)),
        fact(5, TO, order(1_000, "JPY")),
        // S6: ordered before; the order is refunded in the period; detractor.
        fact(6, "2023-01-01T10:00:00Z", order(2_000, "EUR")),
        fact(6, "2024-01-10T10:00:00Z", refund(2_000, "EUR")),
        fact(6, "2024-02-01T10:00:00Z", nps(6)),
        // S7: never ordered; its only NPS answer is before the period.
        fact(7, "2023-12-01T10:00:00Z", nps(10)),
        fact(7, "2024-03-01T10:00:00Z", FactKind::ProductViewed),
        fact(7, "2024-03-02T10:00:00Z", FactKind::ProductAdded),
        // S8: a detractor answer before the period, then one EUR and one JPY order and a
        // promoter answer in it.
        fact(8, "2023-10-01T10:00:00Z", nps(2)),
        fact(8, "2024-06-01T10:00:00Z", order(6_000, "EUR")),
        fact(8, "2024-07-01T10:00:00Z", order(3_000, "JPY")),
        fact(8, "2024-09-01T10:00:00Z", nps(10)),
    ]
}

fn rates() -> RateTable {
    RateTable::new(Currency::EUR)
        .with_rate(Currency::USD, 0.9)
        .unwrap()
        .with_rate(Currency::JPY, 0.006)
        .unwrap()
}

fn params() -> Params {
    Params::new(at(FROM), at(TO)).unwrap()
}

/// The KPIs of the fixture, S8's facts handed over in two slices (they must be merged).
fn kpis_of(params: &Params) -> Kpis {
    let mut subjects = by_subject(&loyalty_fixture());
    let s8 = subjects.iter().position(|(p, _)| *p == subject(8)).unwrap();
    let tail = subjects[s8].1.split_off(2);
    subjects.push((subject(8), tail));
    compute_kpis(pairs(&subjects), 3, params)
}

/// The figure at a dotted path of the KPIs' JSON (`"average_order_value.base.amount"`); `None`
/// for `null`.
fn figure(kpis: &Kpis, path: &str) -> Option<f64> {
    let json = serde_json::to_value(kpis).unwrap();
    let pointer = format!("/{}", path.replace('.', "/"));
    let value = json
        .pointer(&pointer)
        .unwrap_or_else(|| panic!("no {path}"));
    match value {
        Value::Null => None,
        other => Some(other.as_f64().unwrap()),
    }
}

#[test]
fn kpis_of_the_fixture() {
    // Hand arithmetic. Period = 1 year; lifespan = 3 years.
    //   Orders in the period: S1 2 (EUR), S2 1 (EUR), S4 3 (USD), S5 1 (JPY; the one at `to` is
    //   out), S8 2 (EUR + JPY) = 9.  Customers: S1 S2 S4 S5 S8 = 5.  Repeat: S1 S4 S8 = 3.
    //   Ordered before the period: S1 S2 S3 S4 S6 = 5; ordered again in it: S1 S2 S4 = 3.
    //   Latest NPS in the period: S1 10, S2 3, S3 9 (42 skipped), S4 7, S6 6, S8 10 (S7's is
    //   before): 6 respondents, promoters S1 S3 S8 = 3, detractors S2 S6 = 2.
    //   EUR: orders 10000 + 5000 + 4000 + 6000 = 25000 in 4 orders, refunds 1000 + 2000 (S6's
    //        refund counts: it is in the period) → net 22000; customers S1 S2 S8 = 3.
    //   USD: orders 3000 + 2000 + 2500 = 7500 in 3 orders, refund 500 → net 7000; customers 1.
    //   JPY: orders 5000 + 3000 = 8000 in 2 orders → net 8000; customers S5 S8 = 2.
    //   Base EUR (USD 0.9, JPY 0.006): 22000 + 7000·0.9 + 8000·0.006·100 = 22000 + 6300 + 4800
    //        = 33100 cents over 9 orders and 5 customers.
    let cases: &[(&str, Option<f64>, Option<f64>)] = &[
        // (path, with k = 1, with k = 5 (the default))
        ("customers", Some(5.0), Some(5.0)),
        // 3 / 5
        ("repeat_purchase_rate", Some(0.6), Some(0.6)),
        // 3 / 5, resting on 5 earlier customers
        ("retention_rate", Some(0.6), Some(0.6)),
        // 1 − 0.6
        ("churn_rate", Some(0.4), Some(0.4)),
        // 9 / 5
        ("purchase_frequency", Some(1.8), Some(1.8)),
        // 100 · (3 − 2) / 6 = 16.67 → 16.7
        ("nps", Some(16.7), Some(16.7)),
        // 22000 / 4 = 5500 cents; 3 EUR customers < 5
        ("average_order_value.by_currency.EUR", Some(55.0), None),
        // 7000 / 3 = 2333.33 cents → 23.33; 1 USD customer
        ("average_order_value.by_currency.USD", Some(23.33), None),
        // 8000 / 2 = 4000 yen; 2 JPY customers
        ("average_order_value.by_currency.JPY", Some(4000.0), None),
        // 33100 / 9 = 3677.78 cents → 36.78
        ("average_order_value.base.amount", Some(36.78), Some(36.78)),
        // AOV · (orders / customers) / years · lifespan = 5500 · (4 / 3) / 1 · 3 = 22000 cents
        ("customer_lifetime_value.by_currency.EUR", Some(220.0), None),
        // 2333.33 · (3 / 1) / 1 · 3 = 21000 cents
        ("customer_lifetime_value.by_currency.USD", Some(210.0), None),
        // 4000 · (2 / 2) / 1 · 3 = 12000 yen
        (
            "customer_lifetime_value.by_currency.JPY",
            Some(12000.0),
            None,
        ),
        // 3677.78 · (9 / 5) / 1 · 3 = 33100 / 5 · 3 = 19860 cents
        (
            "customer_lifetime_value.base.amount",
            Some(198.6),
            Some(198.6),
        ),
        ("excluded_for_consent", Some(3.0), Some(3.0)),
    ];
    let with_k1 = kpis_of(&params().with_rates(rates()).with_k_anonymity(1).unwrap());
    let with_k5 = kpis_of(&params().with_rates(rates()));
    for (path, expected_k1, expected_k5) in cases {
        assert_eq!(figure(&with_k1, path), *expected_k1, "{path} with k = 1");
        assert_eq!(figure(&with_k5, path), *expected_k5, "{path} with k = 5");
    }
    assert!(with_k1.suppressed.is_empty());
    assert_eq!(
        with_k5.suppressed,
        [
            "average_order_value.by_currency.EUR",
            "average_order_value.by_currency.JPY",
            "average_order_value.by_currency.USD",
            "customer_lifetime_value.by_currency.EUR",
            "customer_lifetime_value.by_currency.JPY",
            "customer_lifetime_value.by_currency.USD",
        ]
    );
}

#[test]
fn kpis_json_shape() {
    let kpis = kpis_of(&params().with_rates(rates()));
    assert_eq!(
        serde_json::to_value(&kpis).unwrap(),
        json!({
            "period": {"from": "2024-01-01T00:00:00Z", "to": "2024-12-31T06:00:00Z"},
            "customers": 5,
            "repeat_purchase_rate": 0.6,
            "retention_rate": 0.6,
            "churn_rate": 0.4,
            "average_order_value": {
                "by_currency": {"EUR": null, "JPY": null, "USD": null},
                "base": {"currency": "EUR", "amount": 36.78}
            },
            "purchase_frequency": 1.8,
            "customer_lifetime_value": {
                "by_currency": {"EUR": null, "JPY": null, "USD": null},
                "base": {"currency": "EUR", "amount": 198.6}
            },
            "nps": 16.7,
            "excluded_for_consent": 3,
            "expected_lifespan_years": 3.0,
            "k_anonymity": 5,
            "suppressed": [
                "average_order_value.by_currency.EUR",
                "average_order_value.by_currency.JPY",
                "average_order_value.by_currency.USD",
                "customer_lifetime_value.by_currency.EUR",
                "customer_lifetime_value.by_currency.JPY",
                "customer_lifetime_value.by_currency.USD"
            ],
            "missing_rates": []
        })
    );
    let back: Kpis = serde_json::from_value(serde_json::to_value(&kpis).unwrap()).unwrap();
    assert_eq!(back, kpis);
}

#[test]
fn without_rates_money_is_per_currency_only() {
    let kpis = kpis_of(&params().with_k_anonymity(1).unwrap());
    assert_eq!(kpis.average_order_value.base, None);
    assert_eq!(kpis.customer_lifetime_value.base, None);
    assert!(kpis.missing_rates.is_empty());
    let json = serde_json::to_value(&kpis).unwrap();
    assert_eq!(
        json["average_order_value"],
        json!({"by_currency": {"EUR": 55.0, "JPY": 4000.0, "USD": 23.33}, "base": null})
    );
}

#[test]
fn a_missing_rate_withholds_the_base_instead_of_leaving_a_currency_out() {
    let only_usd = RateTable::new(Currency::EUR)
        .with_rate(Currency::USD, 0.9)
        .unwrap();
    let kpis = kpis_of(&params().with_rates(only_usd).with_k_anonymity(1).unwrap());
    assert_eq!(kpis.missing_rates, [Currency::JPY]);
    assert_eq!(figure(&kpis, "average_order_value.base.amount"), None);
    assert_eq!(figure(&kpis, "customer_lifetime_value.base.amount"), None);
    assert_eq!(
        figure(&kpis, "average_order_value.by_currency.JPY"),
        Some(4000.0)
    );
    // Missing, not suppressed.
    assert!(kpis.suppressed.is_empty());
}

#[test]
fn rate_table_conversion_into_another_base() {
    // Base USD: 1 EUR = 1.1 USD, 1 JPY = 0.0066 USD. Net per currency as in the fixture:
    // EUR 22000 cents → 242.00 USD; USD 70.00; JPY 8000 → 52.80 USD. Total 364.80 USD = 36480
    // cents over 9 orders: AOV 4053.33 cents → 40.53; CLV 36480 / 5 · 3 = 21888 → 218.88.
    let rates = RateTable::new(Currency::USD)
        .with_rate(Currency::EUR, 1.1)
        .unwrap()
        .with_rate(Currency::JPY, 0.0066)
        .unwrap();
    let kpis = kpis_of(&params().with_rates(rates));
    assert_eq!(
        figure(&kpis, "average_order_value.base.amount"),
        Some(40.53)
    );
    assert_eq!(
        figure(&kpis, "customer_lifetime_value.base.amount"),
        Some(218.88)
    );
    assert_eq!(
        kpis.average_order_value.base.unwrap().currency,
        Currency::USD
    );
}

#[test]
fn lifespan_and_period_length_scale_clv() {
    // CLV is linear in the lifespan: 6 years doubles the fixture's 198.60 EUR; AOV is unchanged.
    let six = kpis_of(
        &params()
            .with_rates(rates())
            .with_expected_lifespan_years(6.0)
            .unwrap(),
    );
    assert_eq!(
        figure(&six, "customer_lifetime_value.base.amount"),
        Some(397.2)
    );
    assert_eq!(figure(&six, "average_order_value.base.amount"), Some(36.78));
    assert_eq!(six.expected_lifespan_years, 6.0);

    // Five customers with one 10.00 EUR order each: AOV 10.00, 1 order per customer.
    //   Period of one Julian year:  10.00 · 1 / 1 · 3 = 30.00
    //   Period of two Julian years (730.5 days): 10.00 · 1 / 2 · 3 = 15.00
    let facts: Vec<Fact> = (1..=5)
        .map(|s| fact(s, "2024-02-01T00:00:00Z", order(1_000, "EUR")))
        .collect();
    let subjects = by_subject(&facts);
    let one_year = params();
    let two_years = Params::new(at(FROM), at("2025-12-31T12:00:00Z")).unwrap();
    let clv = |params: &Params| {
        compute_kpis(pairs(&subjects), 0, params)
            .customer_lifetime_value
            .by_currency[&Currency::EUR]
    };
    assert_eq!(clv(&one_year), Some(30.0));
    assert_eq!(clv(&two_years), Some(15.0));
}

#[test]
fn a_figure_on_four_subjects_is_suppressed_on_five_shown() {
    let population = |n: u8| -> Vec<Fact> {
        (1..=n)
            .flat_map(|s| {
                [
                    fact(s, "2024-02-01T00:00:00Z", order(1_000, "EUR")),
                    fact(s, "2024-02-02T00:00:00Z", nps(10)),
                ]
            })
            .collect()
    };
    let four = by_subject(&population(4));
    let kpis = compute_kpis(pairs(&four), 0, &params());
    assert_eq!(kpis.customers, None);
    assert_eq!(kpis.nps, None);
    assert_eq!(kpis.purchase_frequency, None);
    // No one ordered before the period: retention rests on 0 subjects.
    assert_eq!(kpis.retention_rate, None);
    assert_eq!(
        kpis.suppressed,
        [
            "customers",
            "repeat_purchase_rate",
            "retention_rate",
            "churn_rate",
            "average_order_value.by_currency.EUR",
            "purchase_frequency",
            "customer_lifetime_value.by_currency.EUR",
            "nps",
        ]
    );

    let five = by_subject(&population(5));
    let kpis = compute_kpis(pairs(&five), 0, &params());
    assert_eq!(kpis.customers, Some(5));
    assert_eq!(kpis.nps, Some(100.0));
    assert_eq!(kpis.repeat_purchase_rate, Some(0.0));
    assert_eq!(kpis.purchase_frequency, Some(1.0));
    assert_eq!(
        kpis.average_order_value.by_currency[&Currency::EUR],
        Some(10.0)
    );
    assert_eq!(kpis.suppressed, ["retention_rate", "churn_rate"]);
}

#[test]
fn no_subjects_suppresses_everything_and_never_divides_by_zero() {
    let kpis = compute_kpis(std::iter::empty(), 7, &params().with_rates(rates()));
    assert_eq!(kpis.customers, None);
    assert_eq!(kpis.nps, None);
    assert!(kpis.average_order_value.by_currency.is_empty());
    assert_eq!(kpis.average_order_value.base.unwrap().amount, None);
    assert_eq!(kpis.excluded_for_consent, 7);
    assert!(kpis.missing_rates.is_empty());
    assert_eq!(
        kpis.suppressed,
        [
            "customers",
            "repeat_purchase_rate",
            "retention_rate",
            "churn_rate",
            "average_order_value.base.amount",
            "purchase_frequency",
            "customer_lifetime_value.base.amount",
            "nps",
        ]
    );
    let json = serde_json::to_string(&kpis).unwrap();
    assert!(!json.contains("NaN") && !json.contains("inf"));
}

#[test]
fn params_are_checked() {
    assert_eq!(
        Params::new(at(TO), at(FROM)),
        Err(AnalyticsError::InvalidParams { what: "period" })
    );
    assert_eq!(
        Params::new(at(FROM), at(FROM)),
        Err(AnalyticsError::InvalidParams { what: "period" })
    );
    assert!(params().with_k_anonymity(0).is_err());
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(params().with_expected_lifespan_years(bad).is_err(), "{bad}");
    }
    let defaults = params();
    assert_eq!(defaults.k_anonymity(), 5);
    assert_eq!(defaults.expected_lifespan_years(), 3.0);
    assert_eq!(defaults.rates(), None);
}
