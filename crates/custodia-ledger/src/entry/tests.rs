//! The entry encoding: a golden vector built from the documented table, round trips, strict
//! decoding of non-canonical input, and no panics on arbitrary bytes.

use proptest::prelude::*;

use super::*;

fn tenant(s: &str) -> TenantId {
    s.parse().unwrap()
}

fn purpose(s: &str) -> PurposeId {
    s.parse().unwrap()
}

fn sample() -> LedgerEntry {
    LedgerEntry {
        time: Timestamp::from_unix_micros(1_700_000_000_123_456),
        tenant: tenant("acme"),
        subject: Some(Pseudonym([0xab; 16])),
        kind: "consent.granted".to_owned(),
        purpose: Some(purpose("marketing_email")),
        lawful_basis: Some(LawfulBasis::Consent),
        policy_hash: Some([0x11; 32]),
        source: Source {
            channel: Some("web".to_owned()),
            app: Some("checkout".to_owned()),
            gpc: Some(false),
        },
        evidence: Some(vec![1, 2, 3]),
        attributes: [("form_id", "f-1"), ("request_id", "r-9")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    }
}

/// The bytes of `sample()`, written field by field from the module documentation's table — not
/// from `encode` — so a change to the format shows up here.
fn sample_bytes() -> Vec<u8> {
    let mut b = vec![0x01];
    b.extend_from_slice(&1_700_000_000_123_456i64.to_be_bytes());
    b.extend_from_slice(&[4]);
    b.extend_from_slice(b"acme");
    b.extend_from_slice(&[1]);
    b.extend_from_slice(&[0xab; 16]);
    b.extend_from_slice(&[15]);
    b.extend_from_slice(b"consent.granted");
    b.extend_from_slice(&[1, 15]);
    b.extend_from_slice(b"marketing_email");
    b.extend_from_slice(&[1]); // consent
    b.extend_from_slice(&[1]);
    b.extend_from_slice(&[0x11; 32]);
    b.extend_from_slice(&[1, 3]);
    b.extend_from_slice(b"web");
    b.extend_from_slice(&[1, 8]);
    b.extend_from_slice(b"checkout");
    b.extend_from_slice(&[1]); // gpc false
    b.extend_from_slice(&[1, 0, 0, 0, 3, 1, 2, 3]);
    b.extend_from_slice(&[2, 7]);
    b.extend_from_slice(b"form_id");
    b.extend_from_slice(&[0, 3]);
    b.extend_from_slice(b"f-1");
    b.extend_from_slice(&[10]);
    b.extend_from_slice(b"request_id");
    b.extend_from_slice(&[0, 3]);
    b.extend_from_slice(b"r-9");
    b
}

#[test]
fn encoding_matches_the_documented_layout() {
    assert_eq!(sample().encode(), sample_bytes());
    assert_eq!(LedgerEntry::decode(&sample_bytes()).unwrap(), sample());
}

#[test]
fn minimal_entry_encoding() {
    let entry = LedgerEntry {
        time: Timestamp::from_unix_micros(-1),
        tenant: tenant("t"),
        subject: None,
        kind: "policy.published".to_owned(),
        purpose: None,
        lawful_basis: None,
        policy_hash: None,
        source: Source::default(),
        evidence: None,
        attributes: BTreeMap::new(),
    };
    let mut expected = vec![
        1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, b't', 0, 16,
    ];
    expected.extend_from_slice(b"policy.published");
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(entry.encode(), expected);
    assert_eq!(LedgerEntry::decode(&expected).unwrap(), entry);
}

fn rejects(bytes: &[u8]) -> bool {
    matches!(
        LedgerEntry::decode(bytes),
        Err(LedgerError::MalformedEntry { .. })
    )
}

/// Replaces the first occurrence of `from` in the sample's bytes.
fn sample_with(from: &[u8], to: &[u8]) -> Vec<u8> {
    let bytes = sample_bytes();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in sample");
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&bytes[at + from.len()..]);
    out
}

#[test]
fn non_canonical_input_is_rejected() {
    let good = sample_bytes();
    // Trailing bytes, truncation, unknown version.
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(rejects(&trailing));
    for len in 0..good.len() {
        assert!(rejects(&good[..len]), "truncated to {len}");
    }
    let mut version = good.clone();
    version[0] = 2;
    assert!(rejects(&version));
    // Unsorted and duplicate attribute keys.
    assert!(rejects(&sample_with(
        b"\x07form_id\x00\x03f-1\x0arequest_id\x00\x03r-9",
        b"\x0arequest_id\x00\x03r-9\x07form_id\x00\x03f-1"
    )));
    assert!(rejects(&sample_with(b"\x0arequest_id", b"\x07form_id")));
    // Bad UTF-8, unknown kind characters, bad ids.
    assert!(rejects(&sample_with(b"\x03web", b"\x03w\xffb")));
    assert!(rejects(&sample_with(b"\x03f-1", b"\x03f\xc3(")));
    assert!(rejects(&sample_with(
        b"consent.granted",
        b"Consent.granted"
    )));
    assert!(rejects(&sample_with(
        b"consent.granted",
        b"consent-granted"
    )));
    assert!(rejects(&sample_with(b"\x04acme", b"\x04ACME")));
    assert!(rejects(&sample_with(
        b"marketing_email",
        b"marketing-email"
    )));
    assert!(rejects(&sample_with(b"\x0fconsent.granted", b"\x00")));
    // Empty or control-character source strings, control characters in values, bad keys.
    assert!(rejects(&sample_with(b"\x01\x03web", b"\x01\x00")));
    assert!(rejects(&sample_with(b"\x03web", b"\x03w\nb")));
    assert!(rejects(&sample_with(b"\x03f-1", b"\x03f\x001")));
    assert!(rejects(&sample_with(b"\x07form_id", b"\x07form-id")));
    // Tags and codes out of range.
    assert!(rejects(&sample_with(&[1, 0xab], &[2, 0xab])));
    assert!(rejects(&sample_with(
        b"\x01\x0fmarketing",
        b"\x02\x0fmarketing"
    )));
    assert!(rejects(&sample_with(b"email\x01\x01", b"email\x07\x01")));
    assert!(rejects(&sample_with(b"checkout\x01", b"checkout\x03")));
    assert!(rejects(&sample_with(
        b"\x01\x00\x00\x00\x03\x01\x02\x03",
        b"\x01\x00\x01\x00\x01\x01\x02\x03"
    )));
    let mut bytes = sample_bytes();
    let count_at = bytes.len() - 30;
    assert_eq!(bytes[count_at], 2);
    bytes[count_at] = 65;
    assert!(rejects(&bytes));
}

#[test]
fn validate_states_the_decoder_rules() {
    assert!(sample().validate().is_ok());
    let mut cases: Vec<LedgerEntry> = Vec::new();
    let mut e = sample();
    e.kind = "Consent".to_owned();
    cases.push(e);
    let mut e = sample();
    e.kind = "x".repeat(65);
    cases.push(e);
    let mut e = sample();
    e.kind = String::new();
    cases.push(e);
    let mut e = sample();
    e.source.channel = Some(String::new());
    cases.push(e);
    let mut e = sample();
    e.source.app = Some("é".repeat(40));
    cases.push(e);
    let mut e = sample();
    e.evidence = Some(vec![0; MAX_EVIDENCE_LEN + 1]);
    cases.push(e);
    let mut e = sample();
    e.attributes.insert("Bad".to_owned(), "v".to_owned());
    cases.push(e);
    let mut e = sample();
    e.attributes.insert("k".to_owned(), "v".repeat(1025));
    cases.push(e);
    let mut e = sample();
    for i in 0..65 {
        e.attributes.insert(format!("k{i}"), String::new());
    }
    cases.push(e);
    for entry in cases {
        assert!(entry.validate().is_err(), "{entry:?}");
        // Encoding an invalid entry does not panic, and its bytes do not decode to it.
        assert_ne!(LedgerEntry::decode(&entry.encode()).ok(), Some(entry));
    }
}

fn entry_strategy() -> impl Strategy<Value = LedgerEntry> {
    let text = "[a-zA-Z0-9 é/._-]{1,20}";
    (
        (
            any::<i64>(),
            "[a-z0-9][a-z0-9_-]{0,31}",
            prop::option::of(any::<[u8; 16]>()),
            "[a-z0-9_.]{1,64}",
            prop::option::of("[a-z][a-z0-9_]{0,63}"),
            prop::option::of(0u8..6),
            prop::option::of(any::<[u8; 32]>()),
        ),
        (
            prop::option::of(text),
            prop::option::of(text),
            prop::option::of(any::<bool>()),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            prop::collection::btree_map("[a-z0-9_]{1,64}", "[^\\p{Cc}]{0,40}", 0..8),
        ),
    )
        .prop_map(
            |(
                (time, tenant, subject, kind, purpose, basis, policy_hash),
                (channel, app, gpc, evidence, attributes),
            )| {
                LedgerEntry {
                    time: Timestamp::from_unix_micros(time),
                    tenant: tenant.parse().unwrap(),
                    subject: subject.map(Pseudonym),
                    kind,
                    purpose: purpose.map(|p| p.parse().unwrap()),
                    lawful_basis: basis.map(|b| {
                        lawful_basis_from_code(b + 1)
                            .flatten()
                            .expect("codes 1..=6 are bases")
                    }),
                    policy_hash,
                    source: Source { channel, app, gpc },
                    evidence,
                    attributes,
                }
            },
        )
}

proptest! {
    #[test]
    fn encode_decode_round_trip(entry in entry_strategy()) {
        prop_assert!(entry.validate().is_ok());
        let bytes = entry.encode();
        prop_assert_eq!(LedgerEntry::decode(&bytes).unwrap(), entry);
    }

    #[test]
    fn decode_never_panics_and_accepts_only_canonical_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(entry) = LedgerEntry::decode(&bytes) {
            prop_assert_eq!(entry.encode(), bytes);
        }
    }

    /// Mutations of valid encodings are either refused or canonical encodings of another entry.
    #[test]
    fn mutated_encodings_are_refused_or_canonical(entry in entry_strategy(), pos in any::<usize>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut bytes = entry.encode();
        let pos = pos % bytes.len();
        if cut {
            bytes.truncate(pos);
        } else {
            bytes[pos] = byte;
        }
        if let Ok(decoded) = LedgerEntry::decode(&bytes) {
            prop_assert!(decoded.validate().is_ok());
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}
