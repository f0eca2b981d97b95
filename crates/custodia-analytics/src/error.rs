//! The one error type of this crate. No variant carries the rejected value: inputs come from
//! shops' event payloads, and an error message is no place for them.

use custodia_core::ErrorCode;

/// Why an analytics input was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnalyticsError {
    /// A currency code is not three upper-case ASCII letters (`EUR`, `JPY`).
    #[error("invalid currency code")]
    InvalidCurrency,
    /// A decimal amount is not a finite number, has a malformed spelling, or does not fit in
    /// 64-bit minor units.
    #[error("invalid amount")]
    InvalidAmount,
    /// A fact holds a value outside its domain: a negative amount, an NPS score above 10, a
    /// review rating outside 1–5. `what` names the field.
    #[error("{what} out of range")]
    OutOfRange {
        /// The field at fault (`"nps score"`, `"review rating"`, `"amount"`).
        what: &'static str,
    },
    /// An exchange rate is not a finite number above zero.
    #[error("invalid exchange rate")]
    InvalidRate,
    /// The analytics parameters are inconsistent. `what` names the parameter.
    #[error("invalid analytics parameter: {what}")]
    InvalidParams {
        /// The parameter at fault (`"period"`, `"expected_lifespan_years"`, `"k_anonymity"`).
        what: &'static str,
    },
    /// Stored fact bytes failed to decode: unknown version, unknown kind, truncated, trailing
    /// bytes, or a value out of its domain.
    #[error("corrupt analytics fact")]
    CorruptFact,
}

impl AnalyticsError {
    /// The transport-neutral code: bad inputs are the client's ([`ErrorCode::InvalidField`]); a
    /// fact that fails to decode was written by Custodia itself, so it is internal.
    pub fn code(&self) -> ErrorCode {
        match self {
            AnalyticsError::InvalidCurrency
            | AnalyticsError::InvalidAmount
            | AnalyticsError::OutOfRange { .. }
            | AnalyticsError::InvalidRate
            | AnalyticsError::InvalidParams { .. } => ErrorCode::InvalidField,
            AnalyticsError::CorruptFact => ErrorCode::Internal,
        }
    }
}
