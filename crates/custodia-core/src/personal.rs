//! `Personal<T>`: a value that is personal data, so its `Debug` never prints it.

use std::fmt;

/// Wraps personal data (decrypted traits, event payloads, e-mail addresses) so that it cannot reach
/// a log line, an error message or a panic through `Debug` or `Display`.
///
/// Serialization is transparent, because the one place plaintext goes out on purpose is a response
/// body to a caller whose purpose was checked.
#[derive(Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Personal<T>(pub T);

impl<T> Personal<T> {
    /// Unwraps the value; the caller takes over the duty not to log it.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Borrows the value.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Personal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
