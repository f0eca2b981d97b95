//! Round trips, known answers and corruption handling of the record encodings and key parsers.

use std::fmt::Debug;

use custodia_core::{ApiKeyId, EventId, RoleName, SubjectId, TenantId, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::keys;

fn tenant() -> impl Strategy<Value = TenantId> {
    "[a-z0-9][a-z0-9_-]{0,31}".prop_map(|s| s.parse().unwrap())
}

fn subject_id() -> impl Strategy<Value = SubjectId> {
    any::<[u8; 16]>().prop_map(SubjectId::from_bytes)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<i64>().prop_map(Timestamp::from_unix_micros)
}

fn blob() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300)
}

fn lookup_kind() -> impl Strategy<Value = LookupKind> {
    prop_oneof![Just(LookupKind::UserId), Just(LookupKind::AnonymousId)]
}

prop_compose! {
    fn subject_record()(
        tenant in tenant(),
        id in subject_id(),
        created_at in timestamp(),
        updated_at in timestamp(),
        sealed_profile in blob(),
        lookups in proptest::collection::vec((lookup_kind(), any::<[u8; 32]>()), 0..4),
        blind in proptest::collection::vec(
            ("\\PC{0,12}", proptest::collection::vec(any::<u8>(), 0..20)),
            0..4,
        ),
    ) -> SubjectRecord {
        SubjectRecord { tenant, id, created_at, updated_at, sealed_profile, lookups, blind }
    }
}

prop_compose! {
    fn event_record()(
        tenant in tenant(),
        subject in subject_id(),
        id in any::<[u8; 16]>().prop_map(EventId::from_bytes),
        received_at in timestamp(),
        sealed in blob(),
    ) -> EventRecord {
        EventRecord { tenant, subject, id, received_at, sealed }
    }
}

prop_compose! {
    fn merge_record()(
        tenant in tenant(),
        merged in subject_id(),
        into in subject_id(),
        at in timestamp(),
        n_events_moved in any::<u64>(),
    ) -> MergeRecord {
        MergeRecord { tenant, merged, into, at, n_events_moved }
    }
}

prop_compose! {
    fn api_key_record()(
        id in any::<[u8; 8]>().prop_map(ApiKeyId::from_random),
        tenant in tenant(),
        role in "[a-z][a-z0-9_]{0,63}".prop_map(|s| s.parse::<RoleName>().unwrap()),
        secret_hash in any::<[u8; 32]>(),
        created_at in timestamp(),
        revoked in any::<bool>(),
    ) -> ApiKeyRecord {
        ApiKeyRecord { id, tenant, role, secret_hash, created_at, revoked }
    }
}

/// The codec property for one record: it round-trips, and every damaged form of its encoding
/// (each truncation, each other version byte, a trailing byte) decodes to `Corrupt`.
fn check_codec<T: PartialEq + Debug>(
    record: &T,
    encoded: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, StoreError>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&decode(encoded)?, record);
    for cut in 0..encoded.len() {
        prop_assert!(is_corrupt(decode(&encoded[..cut])), "truncated at {}", cut);
    }
    for version in [0u8, 2, 0x7f, 0xff] {
        let mut bumped = encoded.to_vec();
        bumped[0] = version;
        prop_assert!(is_corrupt(decode(&bumped)), "version {}", version);
    }
    let mut trailing = encoded.to_vec();
    trailing.push(0);
    prop_assert!(is_corrupt(decode(&trailing)), "trailing byte");
    Ok(())
}

fn is_corrupt<T>(result: Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Corrupt { .. }))
}

proptest! {
    #[test]
    fn subject_records_round_trip(record in subject_record()) {
        let encoded = record.encode_value().unwrap();
        check_codec(&record, &encoded, |bytes| {
            SubjectRecord::decode_value(record.tenant.clone(), record.id, bytes)
        })?;
    }

    #[test]
    fn event_records_round_trip(record in event_record()) {
        let encoded = record.encode_value().unwrap();
        check_codec(&record, &encoded, |bytes| {
            EventRecord::decode_value(record.tenant.clone(), record.subject, record.id, bytes)
        })?;
    }

    #[test]
    fn merge_records_round_trip(record in merge_record()) {
        let encoded = record.encode_value().unwrap();
        check_codec(&record, &encoded, |bytes| {
            MergeRecord::decode_value(record.tenant.clone(), record.merged, bytes)
        })?;
    }

    #[test]
    fn api_key_records_round_trip(record in api_key_record()) {
        let encoded = record.encode_value().unwrap();
        check_codec(&record, &encoded, |bytes| ApiKeyRecord::decode_value(record.id.clone(), bytes))?;
        let key = keys::api_key_key(&record.id).unwrap();
        prop_assert_eq!(keys::parse_api_key_key(&key).unwrap(), record.id);
    }

    #[test]
    fn lookup_values_round_trip(subject in subject_id()) {
        check_codec(&subject, &encode_lookup_value(subject), decode_lookup_value)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let tenant = TenantId::default_tenant();
        let subject = SubjectId::from_bytes([1; 16]);
        let event = EventId::from_bytes([2; 16]);
        let _ = SubjectRecord::decode_value(tenant.clone(), subject, &bytes);
        let _ = EventRecord::decode_value(tenant.clone(), subject, event, &bytes);
        let _ = MergeRecord::decode_value(tenant, subject, &bytes);
        let _ = ApiKeyRecord::decode_value(ApiKeyId::from_random([3; 8]), &bytes);
        let _ = decode_lookup_value(&bytes);
        let _ = check_blind_value(&bytes);
        let _ = keys::parse_api_key_key(&bytes);
    }
}

#[test]
fn blind_values_are_the_version_byte() {
    assert!(check_blind_value(BLIND_VALUE).is_ok());
    for bad in [&[][..], &[0], &[2], &[1, 0]] {
        assert!(is_corrupt(check_blind_value(bad)));
    }
}

#[test]
fn corrupt_fields_are_refused() {
    let tenant = TenantId::default_tenant();
    let id = SubjectId::from_bytes([1; 16]);
    // A subject record with look-up kind 3, which no version-1 writer produces.
    let mut subject = sample_subject();
    subject.lookups = vec![(LookupKind::UserId, [0; 32])];
    let mut bytes = subject.encode_value().unwrap();
    let kind_at = 1 + 8 + 8 + 4 + subject.sealed_profile.len() + 4;
    assert_eq!(bytes[kind_at], 1);
    bytes[kind_at] = 3;
    assert!(is_corrupt(SubjectRecord::decode_value(
        tenant.clone(),
        id,
        &bytes
    )));
    // A look-up count far larger than the bytes that follow fails before allocating.
    let mut bytes = sample_subject().encode_value().unwrap();
    let count_at = 1 + 8 + 8 + 4 + sample_subject().sealed_profile.len();
    bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(is_corrupt(SubjectRecord::decode_value(
        tenant.clone(),
        id,
        &bytes
    )));
    // A revoked flag other than 0 or 1, and a tenant id that does not parse.
    let api_key = sample_api_key();
    let mut bytes = api_key.encode_value().unwrap();
    *bytes.last_mut().unwrap() = 2;
    assert!(is_corrupt(ApiKeyRecord::decode_value(
        api_key.id.clone(),
        &bytes
    )));
    let mut bytes = api_key.encode_value().unwrap();
    bytes[5] = b'A';
    assert!(is_corrupt(ApiKeyRecord::decode_value(
        api_key.id.clone(),
        &bytes
    )));
}

fn sample_subject() -> SubjectRecord {
    SubjectRecord {
        tenant: "shop".parse().unwrap(),
        id: SubjectId::from_bytes([0x11; 16]),
        created_at: Timestamp::from_unix_micros(1),
        updated_at: Timestamp::from_unix_micros(-2),
        sealed_profile: b"SEALED".to_vec(),
        lookups: vec![(LookupKind::AnonymousId, [0xAA; 32])],
        blind: vec![("email".to_owned(), vec![0xB0, 0xB1])],
    }
}

fn sample_api_key() -> ApiKeyRecord {
    ApiKeyRecord {
        id: "0123456789abcdef".parse().unwrap(),
        tenant: "shop".parse().unwrap(),
        role: "admin".parse().unwrap(),
        secret_hash: [0xCC; 32],
        created_at: Timestamp::from_unix_micros(7),
        revoked: true,
    }
}

/// The persisted bytes, spelled out: these must never change for version 1.
#[test]
fn version_1_encodings_are_pinned() {
    let subject = sample_subject();
    let expected = [
        &[1u8][..],
        &1i64.to_be_bytes(),
        &(-2i64).to_be_bytes(),
        &[0, 0, 0, 6],
        b"SEALED",
        &[0, 0, 0, 1],
        &[2],
        &[0xAA; 32],
        &[0, 0, 0, 1],
        &[0, 0, 0, 5],
        b"email",
        &[0, 0, 0, 2, 0xB0, 0xB1],
    ]
    .concat();
    assert_eq!(subject.encode_value().unwrap(), expected);

    let event = EventRecord {
        tenant: "shop".parse().unwrap(),
        subject: subject.id,
        id: EventId::from_bytes([0x22; 16]),
        received_at: Timestamp::from_unix_micros(3),
        sealed: b"EV".to_vec(),
    };
    let expected = [&[1u8][..], &3i64.to_be_bytes(), &[0, 0, 0, 2], b"EV"].concat();
    assert_eq!(event.encode_value().unwrap(), expected);

    let merge = MergeRecord {
        tenant: "shop".parse().unwrap(),
        merged: subject.id,
        into: SubjectId::from_bytes([0x33; 16]),
        at: Timestamp::from_unix_micros(4),
        n_events_moved: 5,
    };
    let expected = [
        &[1u8][..],
        &[0x33; 16],
        &4i64.to_be_bytes(),
        &5u64.to_be_bytes(),
    ]
    .concat();
    assert_eq!(merge.encode_value().unwrap(), expected);

    let api_key = sample_api_key();
    let expected = [
        &[1u8][..],
        &[0, 0, 0, 4],
        b"shop",
        &[0, 0, 0, 5],
        b"admin",
        &[0xCC; 32],
        &7i64.to_be_bytes(),
        &[1],
    ]
    .concat();
    assert_eq!(api_key.encode_value().unwrap(), expected);

    assert_eq!(
        encode_lookup_value(subject.id),
        [&[1u8][..], &[0x11; 16]].concat()
    );
    assert_eq!(BLIND_VALUE, [1]);
}

/// The key layout, spelled out: these must never change.
#[test]
fn keys_are_pinned() {
    let tenant: TenantId = "shop".parse().unwrap();
    let subject = SubjectId::from_bytes([0x11; 16]);
    let event = EventId::from_bytes([0x22; 16]);
    let scoped = |tag: u8| [&[tag][..], &[0, 0, 0, 4], b"shop"].concat();

    let expected = [&scoped(b'S')[..], &[0x11; 16]].concat();
    assert_eq!(keys::subject_key(&tenant, subject).unwrap(), expected);

    let expected = [&scoped(b'L')[..], &[1], &[0xAA; 32]].concat();
    assert_eq!(
        keys::lookup_key(&tenant, LookupKind::UserId, &[0xAA; 32]).unwrap(),
        expected
    );

    let expected = [
        &scoped(b'B')[..],
        &[0, 0, 0, 5],
        b"email",
        &[0, 0, 0, 1, 0xB0],
        &[0x11; 16],
    ]
    .concat();
    assert_eq!(
        keys::blind_key(&tenant, "email", &[0xB0], subject).unwrap(),
        expected
    );

    let expected = [&scoped(b'E')[..], &[0x11; 16], &[0x22; 16]].concat();
    assert_eq!(keys::event_key(&tenant, subject, event).unwrap(), expected);

    let expected = [&scoped(b'M')[..], &[0x11; 16]].concat();
    assert_eq!(keys::merge_key(&tenant, subject).unwrap(), expected);

    let id: ApiKeyId = "0123456789abcdef".parse().unwrap();
    let expected = [&b"K"[..], &[0, 0, 0, 16], b"0123456789abcdef"].concat();
    assert_eq!(keys::api_key_key(&id).unwrap(), expected);

    let expected = [&b"G"[..], &[0, 0, 0, 7], b"version"].concat();
    assert_eq!(keys::meta_key("version").unwrap(), expected);
}

#[test]
fn debug_never_shows_blobs_or_hashes() {
    let canary = b"CANARY-CIPHERTEXT".to_vec();
    let canary_decimal = "67, 65, 78, 65, 82, 89";
    let subject = SubjectRecord {
        sealed_profile: canary.clone(),
        lookups: vec![(LookupKind::UserId, [0xAB; 32])],
        blind: vec![("email".to_owned(), vec![0xAB; 8])],
        ..sample_subject()
    };
    let event = EventRecord {
        tenant: "shop".parse().unwrap(),
        subject: subject.id,
        id: EventId::from_bytes([0; 16]),
        received_at: Timestamp::from_unix_micros(0),
        sealed: canary.clone(),
    };
    let api_key = ApiKeyRecord {
        secret_hash: [0xAB; 32],
        ..sample_api_key()
    };
    for printed in [
        format!("{subject:?}"),
        format!("{event:?}"),
        format!("{api_key:?}"),
    ] {
        for leak in ["CANARY", canary_decimal, "171", "abab", "ABAB", "176"] {
            assert!(!printed.contains(leak), "{printed} shows {leak}");
        }
    }
    assert!(format!("{subject:?}").contains("sealed_profile_len: 17"));
    assert!(format!("{event:?}").contains("sealed_len: 17"));
    assert!(format!("{api_key:?}").contains("[redacted]"));
}
