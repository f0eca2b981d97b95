//! Normalization of e-mail addresses and phone numbers before they are blind-indexed, so that
//! spellings of the same value meet in the same index entry.

use unicode_normalization::UnicodeNormalization;

/// Normalizes an e-mail address: NFKC, surrounding whitespace trimmed, lower-cased. `None` unless
/// the result has exactly one `@`, a non-empty local part, and a non-empty domain without
/// whitespace.
///
/// This is not full RFC 5322 validation; it only gives one spelling per address for look-ups.
pub fn normalize_email(raw: &str) -> Option<String> {
    let folded: String = raw.nfkc().collect();
    let email = folded.trim().to_lowercase();
    let (local, domain) = email.split_once('@')?;
    let valid = !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.chars().any(char::is_whitespace);
    valid.then_some(email)
}

/// Normalizes a phone number to E.164: NFKC (so full-width digits count), then whitespace and
/// `-` `.` `(` `)` `/` removed, and a leading `00` read as `+`. `None` unless the result is `+`
/// followed by 8 to 15 digits, the first not `0`.
///
/// National numbers (without a country code) are refused rather than guessed.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let compact: String = raw
        .nfkc()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '.' | '(' | ')' | '/'))
        .collect();
    let digits = match compact.strip_prefix("00") {
        Some(rest) => rest,
        None => compact.strip_prefix('+')?,
    };
    let valid = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    valid.then(|| format!("+{digits}"))
}
