//! Normalization: one table of inputs and their tokens, then field tokens, prefixes and the
//! last-word rule.

use crate::TextField;
use crate::normalize::{
    MAX_PREFIX_CHARS, MAX_QUERY_WORDS, MAX_TOKEN_CHARS, field_tokens, last_word_matches, prefixes,
    query_prefix, query_words, tokens,
};

#[test]
fn tokens_fold_case_accents_and_special_letters() {
    let table: &[(&str, &[&str])] = &[
        ("Müller", &["muller"]),
        ("MULLER", &["muller"]),
        ("muller", &["muller"]),
        ("MÜLLER", &["muller"]),
        // Already decomposed: u followed by a combining diaeresis.
        ("Mu\u{0308}ller", &["muller"]),
        ("José García", &["jose", "garcia"]),
        ("Straße", &["strasse"]),
        ("STRAẞE", &["strasse"]),
        ("Ærø Bjørn", &["aero", "bjorn"]),
        ("Łódź", &["lodz"]),
        ("Đorđević", &["dordevic"]),
        ("Þór Guðmundsson", &["thor", "gudmundsson"]),
        ("İstanbul Yılmaz", &["istanbul", "yilmaz"]),
        ("Œuvre", &["oeuvre"]),
        ("Dvořák Čapek", &["dvorak", "capek"]),
        // Compatibility forms: ligatures and full-width letters and digits.
        ("ﬁne", &["fine"]),
        ("ＡＢＣ１２３", &["abc123"]),
        // Greek final sigma is σ.
        ("ΟΔΥΣΣΕΥΣ Οδυσσεύς", &["οδυσσευσ", "οδυσσευσ"]),
        // Other scripts stay as they are, lower-cased.
        ("Москва 東京", &["москва", "東京"]),
        // Punctuation and spaces split.
        ("jane.doe@example.com", &["jane", "doe", "example", "com"]),
        ("O'Brien-Smith, Jr.", &["o", "brien", "smith", "jr"]),
        ("+49 (30) 1234-5678", &["49", "30", "1234", "5678"]),
        ("ORD-2024/000123", &["ord", "2024", "000123"]),
        ("  tab\tnew\nline  ", &["tab", "new", "line"]),
        ("", &[]),
        ("  ,;:!?  ", &[]),
    ];
    for (input, expected) in table {
        assert_eq!(tokens(input), *expected, "tokens of {input:?}");
    }
}

#[test]
fn long_tokens_are_truncated() {
    let long = "a".repeat(100);
    assert_eq!(
        tokens(&format!("{long} b")),
        ["a".repeat(MAX_TOKEN_CHARS), "b".into()]
    );
    // Counted in characters, not bytes.
    let long = "ü".repeat(100);
    assert_eq!(tokens(&long), ["u".repeat(MAX_TOKEN_CHARS)]);
}

#[test]
fn phone_numbers_also_give_their_digits_joined() {
    assert_eq!(
        field_tokens(TextField::Phone, "+49 (30) 1234-5678"),
        ["49", "30", "1234", "5678", "493012345678"]
    );
    assert_eq!(field_tokens(TextField::Phone, "+4930123"), ["4930123"]);
    // Only phone numbers.
    assert_eq!(field_tokens(TextField::Name, "Anna Lena"), ["anna", "lena"]);
}

#[test]
fn query_words_are_capped() {
    let text = vec!["w"; MAX_QUERY_WORDS + 5].join(" ");
    assert_eq!(query_words(&text).len(), MAX_QUERY_WORDS);
}

#[test]
fn prefixes_stop_short_of_the_token_and_at_the_cap() {
    assert_eq!(
        prefixes("muller").collect::<Vec<_>>(),
        ["m", "mu", "mul", "mull", "mulle"]
    );
    assert_eq!(prefixes("a").count(), 0);
    assert_eq!(prefixes("東京都").collect::<Vec<_>>(), ["東", "東京"]);
    let long = "abcdefghijklmnopqrstuvwxyz";
    let all: Vec<_> = prefixes(long).collect();
    assert_eq!(all.len(), MAX_PREFIX_CHARS);
    assert_eq!(all.last().unwrap().len(), MAX_PREFIX_CHARS);
    assert_eq!(query_prefix(long), &long[..MAX_PREFIX_CHARS]);
    assert_eq!(query_prefix("mul"), "mul");
}

#[test]
fn last_word_matches_whole_tokens_and_starts_of_longer_ones() {
    assert!(last_word_matches("muller", "muller"));
    assert!(last_word_matches("mul", "muller"));
    assert!(last_word_matches("m", "muller"));
    assert!(!last_word_matches("mullers", "muller"));
    assert!(!last_word_matches("ul", "muller"));
    // Past the prefix cap only the first MAX_PREFIX_CHARS characters are compared.
    let token = "abcdefghijklmnopqrstuvwxyz";
    assert!(last_word_matches("abcdefghijklmnopq", token));
    assert!(last_word_matches("abcdefghijklmnopzzz", token));
    assert!(!last_word_matches("abcdefghijklmnoz", token));
}
