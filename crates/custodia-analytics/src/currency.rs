//! Currencies, amounts in minor units, and the exchange-rate table that lets money figures in
//! several currencies be added up. Nothing here ever adds amounts of two currencies without a
//! rate.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::AnalyticsError;

/// An ISO 4217 alphabetic currency code: exactly three upper-case ASCII letters.
///
/// Only the shape is checked, not membership in the ISO list, so a newly issued code works
/// without a release. Lower-case input (`"eur"`) is refused rather than guessed at; callers that
/// accept lower-case codes from a payload upper-case them first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency(*b"EUR");
    /// The US dollar.
    pub const USD: Currency = Currency(*b"USD");
    /// The pound sterling.
    pub const GBP: Currency = Currency(*b"GBP");
    /// The Japanese yen (no minor unit).
    pub const JPY: Currency = Currency(*b"JPY");

    /// The code as a string (`"EUR"`).
    pub fn as_str(&self) -> &str {
        // The bytes are upper-case ASCII letters, checked on construction.
        std::str::from_utf8(&self.0).expect("currency codes are ASCII")
    }

    /// The three bytes of the code, for fixed-size encodings.
    pub fn to_bytes(self) -> [u8; 3] {
        self.0
    }

    /// Rebuilds a code from the bytes returned by [`Currency::to_bytes`], checking its shape.
    pub fn from_bytes(bytes: [u8; 3]) -> Result<Currency, AnalyticsError> {
        if bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency(bytes))
        } else {
            Err(AnalyticsError::InvalidCurrency)
        }
    }

    /// The number of decimal places of the currency's minor unit (ISO 4217): 0 for the yen, the
    /// won and the other currencies without a minor unit, 3 for the dinars of Bahrain, Iraq,
    /// Jordan, Kuwait, Libya and Tunisia and for the Omani rial, 4 for the two accounting units
    /// CLF and UYW, and 2 for every other code.
    pub fn minor_unit_exponent(self) -> u32 {
        const ZERO: [&[u8; 3]; 17] = [
            b"BIF", b"CLP", b"DJF", b"GNF", b"ISK", b"JPY", b"KMF", b"KRW", b"PYG", b"RWF", b"UGX",
            b"UYI", b"VND", b"VUV", b"XAF", b"XOF", b"XPF",
        ];
        const THREE: [&[u8; 3]; 7] = [b"BHD", b"IQD", b"JOD", b"KWD", b"LYD", b"OMR", b"TND"];
        const FOUR: [&[u8; 3]; 2] = [b"CLF", b"UYW"];
        if ZERO.contains(&&self.0) {
            0
        } else if THREE.contains(&&self.0) {
            3
        } else if FOUR.contains(&&self.0) {
            4
        } else {
            2
        }
    }

    /// How many minor units make one major unit (100 for the euro, 1 for the yen).
    pub(crate) fn minor_per_major(self) -> f64 {
        10f64.powi(self.minor_unit_exponent() as i32)
    }
}

impl FromStr for Currency {
    type Err = AnalyticsError;

    fn from_str(s: &str) -> Result<Currency, AnalyticsError> {
        let bytes: [u8; 3] = s
            .as_bytes()
            .try_into()
            .map_err(|_| AnalyticsError::InvalidCurrency)?;
        Currency::from_bytes(bytes)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Currency({})", self.as_str())
    }
}

/// A currency is its ISO 4217 code on the wire.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Currency {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[A-Z]{3}$"))
            .description(Some("An ISO 4217 currency code."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Currency {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Currency")
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Currency, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Converts a decimal amount in major units (`"19.99"`, `"-5"`, `"1.5e3"`) into minor units of
/// `currency`, using its ISO 4217 exponent (`"19.99"` EUR → 1999, `"1500"` JPY → 1500, `"1.5"`
/// KWD → 1500).
///
/// The conversion is exact in decimal. Digits beyond the currency's minor unit are rounded half
/// away from zero (`"0.125"` EUR → 13, `"-0.125"` → −13), the usual commercial rounding, because
/// shops do send amounts computed with tax rates to more places than the currency has.
///
/// # Errors
/// [`AnalyticsError::InvalidAmount`] if `decimal` is not an optional sign, digits with at most one
/// decimal point and an optional exponent, or if the result does not fit in an `i64`.
pub fn amount_minor_from_decimal(decimal: &str, currency: Currency) -> Result<i64, AnalyticsError> {
    let parsed = ParsedDecimal::parse(decimal).ok_or(AnalyticsError::InvalidAmount)?;
    parsed
        .to_minor(currency.minor_unit_exponent())
        .ok_or(AnalyticsError::InvalidAmount)
}

/// Converts a decimal amount given as a JSON-style number into minor units of `currency`.
///
/// The number is first written as its shortest decimal spelling (the one that reads back as the
/// same `f64`), then converted exactly as [`amount_minor_from_decimal`] does, so `19.99` gives
/// 1999 and not the 1998 that `(19.99 * 100.0) as i64` would give.
///
/// # Errors
/// [`AnalyticsError::InvalidAmount`] for NaN, infinities and values that do not fit in an `i64`
/// of minor units.
pub fn amount_minor_from_f64(value: f64, currency: Currency) -> Result<i64, AnalyticsError> {
    if !value.is_finite() {
        return Err(AnalyticsError::InvalidAmount);
    }
    // `Display` for f64 prints the shortest round-tripping decimal, never in exponent form.
    amount_minor_from_decimal(&value.to_string(), currency)
}

/// A decimal number split into sign, significant digits and a power of ten:
/// `(-1)^negative × digits × 10^exponent`.
struct ParsedDecimal {
    negative: bool,
    digits: u128,
    exponent: i64,
}

impl ParsedDecimal {
    /// The longest digit string kept: `u128` holds any 38-digit number.
    const MAX_DIGITS: usize = 38;

    fn parse(s: &str) -> Option<ParsedDecimal> {
        let (negative, unsigned) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (mantissa, exponent_part) = match unsigned.find(['e', 'E']) {
            Some(e_idx) => (&unsigned[..e_idx], Some(&unsigned[e_idx + 1..])),
            None => (unsigned, None),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((int_part, frac_part)) => (int_part, frac_part),
            None => (mantissa, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part)
        {
            return None;
        }
        let mut exponent: i64 = match exponent_part {
            // Bounded so that the arithmetic below cannot overflow; anything this large is not
            // an amount of money anyway.
            Some(part) if !part.is_empty() && part.len() <= 6 => {
                let (sign, digits) = match part.as_bytes()[0] {
                    b'-' => (-1, &part[1..]),
                    b'+' => (1, &part[1..]),
                    _ => (1, part),
                };
                if digits.is_empty() || !all_digits(digits) {
                    return None;
                }
                sign * digits.parse::<i64>().ok()?
            }
            Some(_) => return None,
            None => 0,
        };
        // Leading zeros carry no value and trailing fractional zeros carry no precision; drop
        // both so that `0.000…01` and `19.990000…` do not overflow the digit budget.
        let frac_part = frac_part.trim_end_matches('0');
        let joined = format!("{int_part}{frac_part}");
        let significant = joined.trim_start_matches('0');
        exponent -= frac_part.len() as i64;
        if significant.len() > Self::MAX_DIGITS {
            return None;
        }
        let digits = if significant.is_empty() {
            0
        } else {
            significant.parse::<u128>().ok()?
        };
        Some(ParsedDecimal {
            negative,
            digits,
            exponent,
        })
    }

    /// The value in units of `10^-minor_exponent`, rounded half away from zero; `None` if it does
    /// not fit in an `i64`.
    fn to_minor(&self, minor_exponent: u32) -> Option<i64> {
        if self.digits == 0 {
            return Some(0);
        }
        let scale = self.exponent + i64::from(minor_exponent);
        let magnitude: u128 = if scale >= 0 {
            let factor = 10u128.checked_pow(u32::try_from(scale).ok()?)?;
            self.digits.checked_mul(factor)?
        } else {
            match 10u128.checked_pow(u32::try_from(-scale).ok()?) {
                Some(divisor) => {
                    let quotient = self.digits / divisor;
                    let remainder = self.digits % divisor;
                    // Half away from zero: round up when the remainder is at least half.
                    if remainder >= divisor - remainder {
                        quotient + 1
                    } else {
                        quotient
                    }
                }
                // 10^39 and beyond exceed any 38-digit value: it rounds to zero.
                None => 0,
            }
        };
        let magnitude = i128::try_from(magnitude).ok()?;
        let signed = if self.negative { -magnitude } else { magnitude };
        i64::try_from(signed).ok()
    }
}

/// Exchange rates into one base currency, from configuration: one major unit of `currency` is
/// worth `rate` major units of `base`.
///
/// The JSON / TOML shape is `{"base": "EUR", "rates": {"USD": 0.92, "JPY": 0.0061}}`. The base
/// converts to itself at 1 whether or not it is listed; listing it at any other rate is an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RateTableRepr", into = "RateTableRepr")]
pub struct RateTable {
    base: Currency,
    rates: BTreeMap<Currency, f64>,
}

impl RateTable {
    /// A table with only the base currency.
    pub fn new(base: Currency) -> RateTable {
        RateTable {
            base,
            rates: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) the rate of `currency`: one major unit of it is worth `rate_to_base`
    /// major units of the base.
    ///
    /// # Errors
    /// [`AnalyticsError::InvalidRate`] if the rate is not finite and above zero, or if
    /// `currency` is the base and the rate is not 1.
    pub fn with_rate(
        mut self,
        currency: Currency,
        rate_to_base: f64,
    ) -> Result<RateTable, AnalyticsError> {
        if !(rate_to_base.is_finite() && rate_to_base > 0.0) {
            return Err(AnalyticsError::InvalidRate);
        }
        if currency == self.base {
            return if rate_to_base == 1.0 {
                Ok(self)
            } else {
                Err(AnalyticsError::InvalidRate)
            };
        }
        self.rates.insert(currency, rate_to_base);
        Ok(self)
    }

    /// The base currency.
    pub fn base(&self) -> Currency {
        self.base
    }

    /// The rate of `currency` into the base (1 for the base itself), if the table has one.
    pub fn rate(&self, currency: Currency) -> Option<f64> {
        if currency == self.base {
            Some(1.0)
        } else {
            self.rates.get(&currency).copied()
        }
    }

    /// Converts `amount_minor` minor units of `from` into minor units of `to` (unrounded), going
    /// through the base and each side's minor-unit exponent; `None` if either rate is missing.
    pub fn convert_minor(&self, amount_minor: f64, from: Currency, to: Currency) -> Option<f64> {
        if from == to {
            return Some(amount_minor);
        }
        let in_base_major = amount_minor / from.minor_per_major() * self.rate(from)?;
        Some(in_base_major / self.rate(to)? * to.minor_per_major())
    }
}

/// The configuration shape of [`RateTable`], validated on the way in.
#[derive(Serialize, Deserialize)]
struct RateTableRepr {
    base: Currency,
    #[serde(default)]
    rates: BTreeMap<Currency, f64>,
}

impl TryFrom<RateTableRepr> for RateTable {
    type Error = AnalyticsError;

    fn try_from(repr: RateTableRepr) -> Result<RateTable, AnalyticsError> {
        repr.rates
            .into_iter()
            .try_fold(RateTable::new(repr.base), |table, (currency, rate)| {
                table.with_rate(currency, rate)
            })
    }
}

impl From<RateTable> for RateTableRepr {
    fn from(table: RateTable) -> RateTableRepr {
        RateTableRepr {
            base: table.base,
            rates: table.rates,
        }
    }
}
