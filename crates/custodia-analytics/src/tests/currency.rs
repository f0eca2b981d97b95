//! Currency codes, decimal amounts and the rate table.

use crate::{
    AnalyticsError, Currency, RateTable, amount_minor_from_decimal, amount_minor_from_f64,
};

use super::currency;

#[test]
fn currency_codes_are_three_upper_case_letters() {
    for ok in ["EUR", "USD", "JPY", "KWD", "XAU"] {
        assert_eq!(ok.parse::<Currency>().unwrap().as_str(), ok);
    }
    for bad in [
        "", "eur", "Eur", "EU", "EURO", "E1R", "EU ", " EUR", "€UR", "E-R", "\0\0\0",
    ] {
        assert_eq!(
            bad.parse::<Currency>(),
            Err(AnalyticsError::InvalidCurrency),
            "{bad:?}"
        );
    }
    assert!(Currency::from_bytes(*b"eur").is_err());
}

#[test]
fn currency_errors_do_not_echo_input() {
    let err = "jane".parse::<Currency>().unwrap_err();
    assert_eq!(err.to_string(), "invalid currency code");
    assert_eq!(err.code().as_str(), "invalid_field");
}

#[test]
fn currency_serializes_as_its_code() {
    let json = serde_json::to_string(&Currency::JPY).unwrap();
    assert_eq!(json, "\"JPY\"");
    assert_eq!(
        serde_json::from_str::<Currency>(&json).unwrap(),
        Currency::JPY
    );
    assert!(serde_json::from_str::<Currency>("\"jpy\"").is_err());
}

#[test]
fn minor_unit_exponents() {
    for (code, exponent) in [
        ("EUR", 2),
        ("USD", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("CLF", 4),
    ] {
        assert_eq!(currency(code).minor_unit_exponent(), exponent, "{code}");
    }
}

#[test]
fn decimal_amounts_in_minor_units() {
    // (decimal, currency, minor units)
    let cases: &[(&str, &str, i64)] = &[
        ("19.99", "EUR", 1999),
        ("19.9", "EUR", 1990),
        ("19", "EUR", 1900),
        ("0.5", "USD", 50),
        (".5", "USD", 50),
        ("5.", "USD", 500),
        ("-5.25", "EUR", -525),
        ("+5.25", "EUR", 525),
        ("1500", "JPY", 1500),
        ("1500.4", "JPY", 1500),
        ("1500.5", "JPY", 1501),
        ("1.5", "KWD", 1500),
        ("1.2345", "KWD", 1235),
        ("1.5e3", "EUR", 150_000),
        ("15E-1", "EUR", 150),
        ("0.125", "EUR", 13),
        ("-0.125", "EUR", -13),
        ("0.124999", "EUR", 12),
        ("0.00000000000000000000000000000000000000000001", "EUR", 0),
        ("19.990000000000000000000000000000000000000000", "EUR", 1999),
        ("0e999999", "EUR", 0),
        ("92233720368547758.07", "EUR", i64::MAX),
    ];
    for (decimal, code, expected) in cases {
        assert_eq!(
            amount_minor_from_decimal(decimal, currency(code)),
            Ok(*expected),
            "{decimal} {code}"
        );
    }
}

#[test]
fn malformed_or_huge_decimals_are_refused() {
    for bad in [
        "",
        "-",
        "+",
        ".",
        "1.2.3",
        "1,5",
        "1e",
        "1e+",
        "e5",
        "12a",
        " 1",
        "1 ",
        "NaN",
        "inf",
        "0x10",
        "92233720368547758.08",
        "1e9999999",
        "1e30",
    ] {
        assert_eq!(
            amount_minor_from_decimal(bad, Currency::EUR),
            Err(AnalyticsError::InvalidAmount),
            "{bad:?}"
        );
    }
}

#[test]
fn f64_amounts_convert_through_their_shortest_decimal() {
    // 19.99 * 100.0 is 1998.9999999999998 in binary floating point; the decimal route gives 1999.
    assert_eq!(amount_minor_from_f64(19.99, Currency::EUR), Ok(1999));
    assert_eq!(amount_minor_from_f64(0.1 + 0.2, Currency::EUR), Ok(30));
    assert_eq!(amount_minor_from_f64(1e-7, Currency::EUR), Ok(0));
    assert_eq!(amount_minor_from_f64(4200.0, Currency::JPY), Ok(4200));
    assert_eq!(amount_minor_from_f64(-1.005, currency("KWD")), Ok(-1005));
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
        assert_eq!(
            amount_minor_from_f64(bad, Currency::EUR),
            Err(AnalyticsError::InvalidAmount)
        );
    }
}

#[test]
fn rate_table_converts_between_minor_units() {
    let rates = RateTable::new(Currency::EUR)
        .with_rate(Currency::USD, 0.9)
        .unwrap()
        .with_rate(Currency::JPY, 0.006)
        .unwrap();
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
    // 10.00 USD = 9.00 EUR = 900 cents.
    assert!(close(
        rates.convert_minor(1000.0, Currency::USD, Currency::EUR),
        900.0
    ));
    // 1000 JPY = 6.00 EUR.
    assert!(close(
        rates.convert_minor(1000.0, Currency::JPY, Currency::EUR),
        600.0
    ));
    // 6.00 EUR = 1000 JPY, through the base.
    assert!(close(
        rates.convert_minor(600.0, Currency::EUR, Currency::JPY),
        1000.0
    ));
    // 9.00 USD = 8.10 EUR = 1350 JPY.
    assert!(close(
        rates.convert_minor(900.0, Currency::USD, Currency::JPY),
        1350.0
    ));
    assert_eq!(
        rates.convert_minor(100.0, Currency::GBP, Currency::EUR),
        None
    );
    assert_eq!(rates.rate(Currency::EUR), Some(1.0));
}

#[test]
fn rate_table_refuses_bad_rates() {
    let table = RateTable::new(Currency::EUR);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            table.clone().with_rate(Currency::USD, bad),
            Err(AnalyticsError::InvalidRate),
            "{bad}"
        );
    }
    assert!(table.clone().with_rate(Currency::EUR, 1.0).is_ok());
    assert_eq!(
        table.with_rate(Currency::EUR, 2.0),
        Err(AnalyticsError::InvalidRate)
    );
}

#[test]
fn rate_table_from_configuration() {
    let rates: RateTable =
        serde_json::from_str(r#"{"base": "EUR", "rates": {"USD": 0.9, "JPY": 0.006, "EUR": 1}}"#)
            .unwrap();
    assert_eq!(rates.base(), Currency::EUR);
    assert_eq!(rates.rate(Currency::USD), Some(0.9));
    assert_eq!(rates.rate(Currency::JPY), Some(0.006));
    for bad in [
        r#"{"base": "EUR", "rates": {"USD": -0.9}}"#,
        r#"{"base": "EUR", "rates": {"usd": 0.9}}"#,
        r#"{"base": "EUR", "rates": {"EUR": 2}}"#,
        r#"{"base": "euro"}"#,
    ] {
        assert!(serde_json::from_str::<RateTable>(bad).is_err(), "{bad}");
    }
}
