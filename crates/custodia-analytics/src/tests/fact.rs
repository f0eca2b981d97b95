//! The projection's binary encoding and domain checks.

use custodia_core::{Pseudonym, Timestamp};
use proptest::prelude::*;

use crate::{AnalyticsError, Currency, Fact, FactKind};

use super::{fact, order, subject};

fn arb_currency() -> impl Strategy<Value = Currency> {
    proptest::array::uniform3(b'A'..=b'Z').prop_map(|bytes| Currency::from_bytes(bytes).unwrap())
}

fn arb_kind() -> impl Strategy<Value = FactKind> {
    prop_oneof![
        (0..=i64::MAX, arb_currency()).prop_map(|(amount_minor, currency)| FactKind::Order {
            amount_minor,
            currency
        }),
        (0..=i64::MAX, arb_currency()).prop_map(|(amount_minor, currency)| FactKind::Refund {
            amount_minor,
            currency
        }),
        (0u8..=10).prop_map(|score| FactKind::Nps { score }),
        (1u8..=5).prop_map(|rating| FactKind::Review { rating }),
        Just(FactKind::ProductViewed),
        Just(FactKind::ProductAdded),
        Just(FactKind::CheckoutStarted),
        Just(FactKind::Identified),
    ]
}

fn arb_fact() -> impl Strategy<Value = Fact> {
    (any::<[u8; 16]>(), any::<i64>(), arb_kind()).prop_map(|(pseudonym, micros, kind)| Fact {
        pseudonym: Pseudonym(pseudonym),
        time: Timestamp::from_unix_micros(micros),
        kind,
    })
}

proptest! {
    #[test]
    fn encode_decode_roundtrip(fact in arb_fact()) {
        let bytes = fact.encode();
        prop_assert_eq!(bytes[0], Fact::ENCODING_VERSION);
        prop_assert!((26..=37).contains(&bytes.len()));
        prop_assert_eq!(Fact::decode(&bytes), Ok(fact));
    }

    #[test]
    fn truncated_or_extended_encodings_are_refused(fact in arb_fact(), extra in any::<u8>()) {
        let bytes = fact.encode();
        for len in 0..bytes.len() {
            prop_assert_eq!(Fact::decode(&bytes[..len]), Err(AnalyticsError::CorruptFact));
        }
        let mut longer = bytes.clone();
        longer.push(extra);
        prop_assert_eq!(Fact::decode(&longer), Err(AnalyticsError::CorruptFact));
    }

    #[test]
    fn the_stored_encoding_leaves_out_the_pseudonym_and_reads_back(fact in arb_fact(), other in any::<[u8; 16]>()) {
        let stored = fact.encode_stored();
        prop_assert_eq!(stored[0], Fact::STORED_ENCODING_VERSION);
        prop_assert_eq!(stored.len(), fact.encode().len() - 16);
        prop_assert_eq!(Fact::decode_stored(fact.pseudonym, &stored), Ok(fact));
        for len in 0..stored.len() {
            prop_assert_eq!(
                Fact::decode_stored(fact.pseudonym, &stored[..len]),
                Err(AnalyticsError::CorruptFact)
            );
        }
        // The first format still reads, for its own pseudonym only.
        prop_assert_eq!(Fact::decode_stored(fact.pseudonym, &fact.encode()), Ok(fact));
        if other != fact.pseudonym.0 {
            prop_assert_eq!(
                Fact::decode_stored(Pseudonym(other), &fact.encode()),
                Err(AnalyticsError::CorruptFact)
            );
        }
    }

    #[test]
    fn arbitrary_stored_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(fact) = Fact::decode_stored(Pseudonym([3; 16]), &bytes) {
            prop_assert!(fact.encode_stored() == bytes || fact.encode() == bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        if let Ok(fact) = Fact::decode(&bytes) {
            prop_assert_eq!(fact.encode(), bytes);
        }
    }
}

#[test]
fn encoding_is_pinned() {
    // version 1 | pseudonym 07×16 | 2024-01-01T00:00:00Z = 1_704_067_200_000_000 µs
    // | tag 1 (order) | 1999 | "EUR"
    let order = fact(7, "2024-01-01T00:00:00Z", order(1999, "EUR"));
    let mut expected = vec![1];
    expected.extend([7; 16]);
    expected.extend(1_704_067_200_000_000i64.to_be_bytes());
    expected.push(1);
    expected.extend(1999i64.to_be_bytes());
    expected.extend(b"EUR");
    assert_eq!(order.encode(), expected);

    let nps = fact(7, "2024-01-01T00:00:00Z", FactKind::Nps { score: 9 });
    assert_eq!(nps.encode()[25..], [3, 9]);
    let viewed = fact(7, "2024-01-01T00:00:00Z", FactKind::ProductViewed);
    assert_eq!(viewed.encode().len(), 26);
}

#[test]
fn corrupt_encodings_are_refused() {
    let good = fact(1, "2024-01-01T00:00:00Z", FactKind::Review { rating: 4 }).encode();
    let with = |idx: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[idx] = byte;
        bytes
    };
    for bad in [
        with(0, 2),  // unknown version
        with(25, 0), // unknown tag
        with(25, 9), // unknown tag
        with(26, 0), // rating 0
        with(26, 6), // rating 6
    ] {
        assert_eq!(Fact::decode(&bad), Err(AnalyticsError::CorruptFact));
    }
    let mut lower_case = fact(1, "2024-01-01T00:00:00Z", order(5, "EUR")).encode();
    lower_case[34] = b'r';
    assert_eq!(Fact::decode(&lower_case), Err(AnalyticsError::CorruptFact));
    let mut negative = fact(1, "2024-01-01T00:00:00Z", order(5, "EUR")).encode();
    negative[26] = 0xff;
    assert_eq!(Fact::decode(&negative), Err(AnalyticsError::CorruptFact));
    assert_eq!(AnalyticsError::CorruptFact.code().as_str(), "internal");
}

#[test]
fn facts_out_of_domain_are_refused() {
    let cases = [
        (FactKind::Nps { score: 11 }, "nps score"),
        (FactKind::Review { rating: 0 }, "review rating"),
        (FactKind::Review { rating: 6 }, "review rating"),
        (
            FactKind::Refund {
                amount_minor: -1,
                currency: Currency::EUR,
            },
            "amount",
        ),
    ];
    for (kind, what) in cases {
        assert_eq!(
            Fact::new(subject(1), Timestamp::from_unix_micros(0), kind),
            Err(AnalyticsError::OutOfRange { what })
        );
    }
    for ok in [
        FactKind::Nps { score: 0 },
        FactKind::Nps { score: 10 },
        FactKind::Review { rating: 1 },
    ] {
        assert!(ok.check().is_ok());
    }
}
