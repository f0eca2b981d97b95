//! Unit tests for the core types.

use proptest::prelude::*;

use super::*;

#[test]
fn length_prefixing_separates_parts() {
    let a = LengthPrefixed::new().part("ab").part("c").into_bytes();
    let b = LengthPrefixed::new().part("a").part("bc").into_bytes();
    assert_ne!(a, b);
    assert_eq!(a, [0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'c']);
}

#[test]
fn personal_never_prints() {
    let p = Personal("jane@example.com".to_owned());
    assert_eq!(format!("{p:?}"), "[redacted]");
    assert_eq!(serde_json::to_string(&p).unwrap(), "\"jane@example.com\"");
}

#[test]
fn tenant_ids_are_file_name_safe() {
    for ok in ["default", "shop-1", "a", "0_x"] {
        assert!(ok.parse::<TenantId>().is_ok(), "{ok}");
    }
    for bad in ["", "Shop", "../x", "a/b", "-a", "a b", &"x".repeat(33)] {
        assert!(bad.parse::<TenantId>().is_err(), "{bad}");
    }
}

#[test]
fn purpose_ids_are_snake_case() {
    assert!("marketing_email".parse::<PurposeId>().is_ok());
    for bad in ["", "Marketing", "1st", "a-b", "a b"] {
        assert!(bad.parse::<PurposeId>().is_err(), "{bad}");
    }
}

#[test]
fn id_errors_do_not_echo_input() {
    let err = "jane@example.com".parse::<SubjectId>().unwrap_err();
    assert_eq!(err.to_string(), "invalid subject id");
}

#[test]
fn event_ids_sort_by_time() {
    let a = EventId::from_parts(1_000, [0xff; 10]);
    let b = EventId::from_parts(1_001, [0; 10]);
    assert!(a < b);
    assert!(a.to_bytes() < b.to_bytes());
}

#[test]
fn event_id_successor_stays_v7_and_sorts_after() {
    let a = EventId::from_parts(1_000, [0x11; 10]);
    let b = a.successor().unwrap();
    assert!(a < b);
    assert_eq!(b.as_uuid().get_version_num(), 7);
    assert_eq!(b.as_uuid().get_variant(), uuid::Variant::RFC4122);
    assert_eq!(b.as_uuid().get_timestamp(), a.as_uuid().get_timestamp());
    let last = EventId::from_parts(1_000, [0xff; 10]);
    assert!(last.successor().is_none());
}

#[test]
fn subject_ids_are_v4() {
    let id = SubjectId::from_random([7; 16]);
    assert_eq!(id.as_uuid().get_version_num(), 4);
}

#[test]
fn timestamps_print_rfc3339_utc() {
    let t = Timestamp::parse_rfc3339("2026-11-24T10:00:00+01:00").unwrap();
    assert_eq!(t.to_string(), "2026-11-24T09:00:00Z");
    assert_eq!(t.plus_days(1).to_string(), "2026-11-25T09:00:00Z");
}

proptest! {
    #[test]
    fn subject_id_round_trips(bytes in any::<[u8; 16]>()) {
        let id = SubjectId::from_random(bytes);
        prop_assert_eq!(id.to_string().parse::<SubjectId>().unwrap(), id);
        prop_assert_eq!(SubjectId::from_bytes(id.to_bytes()), id);
    }

    #[test]
    fn pseudonym_round_trips(bytes in any::<[u8; 16]>()) {
        let p = Pseudonym(bytes);
        prop_assert_eq!(p.to_string().parse::<Pseudonym>().unwrap(), p);
    }

    #[test]
    fn timestamp_round_trips(micros in -62_000_000_000_000_000i64..200_000_000_000_000_000i64) {
        let t = Timestamp::from_unix_micros(micros);
        prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
    }
}

#[test]
fn error_code_list_names_every_code_once() {
    // Exhaustive: a new variant does not compile here until it has a place, and then the
    // assertions fail until `ErrorCode::ALL` lists it in that place.
    fn position(code: ErrorCode) -> usize {
        match code {
            ErrorCode::MalformedJson => 0,
            ErrorCode::InvalidField => 1,
            ErrorCode::InvalidId => 2,
            ErrorCode::PayloadTooLarge => 3,
            ErrorCode::UnsupportedMediaType => 4,
            ErrorCode::Unauthenticated => 5,
            ErrorCode::RoleNotPermitted => 6,
            ErrorCode::PurposeMissing => 7,
            ErrorCode::UnknownPurpose => 8,
            ErrorCode::PurposeNotPermitted => 9,
            ErrorCode::ConsentRequired => 10,
            ErrorCode::ProcessingRestricted => 11,
            ErrorCode::ObjectionRecorded => 12,
            ErrorCode::SubjectNotFound => 13,
            ErrorCode::SubjectMerged => 14,
            ErrorCode::NotFound => 15,
            ErrorCode::Conflict => 16,
            ErrorCode::InvalidHeader => 17,
            ErrorCode::IdempotencyKeyReused => 18,
            ErrorCode::IdempotencyKeyInFlight => 19,
            ErrorCode::SubjectSuppressed => 20,
            ErrorCode::LegalHold => 21,
            ErrorCode::RateLimited => 22,
            ErrorCode::RequestTimeout => 23,
            ErrorCode::InsufficientStorage => 24,
            ErrorCode::Internal => 25,
        }
    }
    for (idx, code) in ErrorCode::ALL.iter().enumerate() {
        assert_eq!(position(*code), idx, "{code}");
    }
    assert_eq!(ErrorCode::ALL.len(), position(ErrorCode::Internal) + 1);
}
