//! Normalization tables for e-mail addresses and phone numbers.

use crate::{normalize_email, normalize_phone};

fn check(normalize: fn(&str) -> Option<String>, table: &[(&str, Option<&str>)]) {
    for &(raw, expected) in table {
        assert_eq!(normalize(raw).as_deref(), expected, "input {raw:?}");
    }
}

#[test]
fn emails() {
    check(
        normalize_email,
        &[
            ("  Jane.Doe@Example.COM ", Some("jane.doe@example.com")),
            ("jane@example.com", Some("jane@example.com")),
            // Full-width letters and at sign, and an ideographic space, folded by NFKC.
            (
                "\u{3000}ＪＡＮＥ＠ｅｘａｍｐｌｅ．ｃｏｍ",
                Some("jane@example.com"),
            ),
            ("ÉLODIE@EXAMPLE.FR", Some("élodie@example.fr")),
            ("\tx@y\n", Some("x@y")),
            ("abc", None),
            ("", None),
            ("@example.com", None),
            ("jane@", None),
            ("jane@@example.com", None),
            ("a@b@example.com", None),
            ("jane@exa mple.com", None),
        ],
    );
}

#[test]
fn phones() {
    check(
        normalize_phone,
        &[
            ("+49 (30) 1234-5678", Some("+493012345678")),
            ("0049 30 12345678", Some("+493012345678")),
            ("+1.415.555.2671", Some("+14155552671")),
            ("+44 20/7946 0958", Some("+442079460958")),
            ("＋４９ ３０ １２３４５６７８", Some("+493012345678")),
            ("+12345678", Some("+12345678")),
            ("+123456789012345", Some("+123456789012345")),
            ("030 1234567", None),
            ("abc", None),
            ("", None),
            ("+", None),
            ("+1234567", None),
            ("+1234567890123456", None),
            ("+0 30 1234567", None),
            ("000 30 1234567", None),
            ("+49 30 1234x5678", None),
            ("++493012345678", None),
        ],
    );
}
