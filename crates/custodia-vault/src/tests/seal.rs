//! Properties of `DataKey::seal` / `open`: round trip, and the same opaque refusal for every
//! tampering, wrong key or moved ciphertext.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::{assert_opaque, tenant};
use custodia_core::SubjectId;

use crate::{Aad, DataKey, SEAL_OVERHEAD};

fn fixed_subject(byte: u8) -> SubjectId {
    SubjectId::from_random([byte; 16])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn open_inverts_seal(plaintext in vec(any::<u8>(), 0..512), kind in "[a-z:_]{0,24}") {
        let key = DataKey::generate().unwrap();
        let tenant = tenant("acme");
        let aad = Aad { tenant: &tenant, subject: fixed_subject(1), kind: &kind };
        let sealed = key.seal(&aad, &plaintext).unwrap();
        prop_assert_eq!(sealed.len(), plaintext.len() + SEAL_OVERHEAD);
        prop_assert_eq!(sealed[0], 1);
        let opened = key.open(&aad, &sealed).unwrap();
        prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused(plaintext in vec(any::<u8>(), 0..128), bit in any::<Index>()) {
        let key = DataKey::generate().unwrap();
        let tenant = tenant("acme");
        let aad = Aad { tenant: &tenant, subject: fixed_subject(1), kind: "trait:email" };
        let mut sealed = key.seal(&aad, &plaintext).unwrap();
        let bit = bit.index(sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        assert_opaque(key.open(&aad, &sealed));
    }

    #[test]
    fn a_truncated_input_is_refused(plaintext in vec(any::<u8>(), 0..128), cut in any::<Index>()) {
        let key = DataKey::generate().unwrap();
        let tenant = tenant("acme");
        let aad = Aad { tenant: &tenant, subject: fixed_subject(1), kind: "event" };
        let sealed = key.seal(&aad, &plaintext).unwrap();
        let len = cut.index(sealed.len());
        assert_opaque(key.open(&aad, &sealed[..len]));
    }

    #[test]
    fn a_ciphertext_opens_only_where_it_was_sealed(plaintext in vec(any::<u8>(), 0..128)) {
        let key = DataKey::generate().unwrap();
        let acme = tenant("acme");
        let other_tenant = tenant("acme2");
        let aad = Aad { tenant: &acme, subject: fixed_subject(1), kind: "trait:email" };
        let sealed = key.seal(&aad, &plaintext).unwrap();

        let other_key = DataKey::generate().unwrap();
        assert_opaque(other_key.open(&aad, &sealed));
        assert_opaque(key.open(&Aad { tenant: &other_tenant, ..aad }, &sealed));
        assert_opaque(key.open(&Aad { subject: fixed_subject(2), ..aad }, &sealed));
        assert_opaque(key.open(&Aad { kind: "trait:phone", ..aad }, &sealed));
        // Length prefixing: moving a byte between the parts changes the associated data.
        assert_opaque(key.open(&Aad { kind: "trait:emai", ..aad }, &sealed));
    }
}

#[test]
fn every_refusal_reads_the_same() {
    let key = DataKey::generate().unwrap();
    let acme = tenant("acme");
    let aad = Aad {
        tenant: &acme,
        subject: fixed_subject(1),
        kind: "k",
    };
    let sealed = key.seal(&aad, b"jane@example.com").unwrap();
    let mut bad_version = sealed.clone();
    bad_version[0] = 2;
    let mut bad_tag = sealed.clone();
    *bad_tag.last_mut().unwrap() ^= 1;
    let messages: Vec<String> = [
        key.open(&aad, &[]),
        key.open(&aad, &sealed[..SEAL_OVERHEAD - 1]),
        key.open(&aad, &bad_version),
        key.open(&aad, &bad_tag),
        key.open(&Aad { kind: "j", ..aad }, &sealed),
        DataKey::generate().unwrap().open(&aad, &sealed),
    ]
    .into_iter()
    .map(|result| result.unwrap_err().to_string())
    .collect();
    assert!(
        messages
            .iter()
            .all(|m| m == "cryptographic operation failed"),
        "{messages:?}"
    );
}

#[test]
fn opens_a_known_answer_from_an_independent_implementation() {
    // Produced by Python's `cryptography` AESGCM: key 07×32, nonce 00..0b, plaintext
    // "jane@example.com", AAD lp("custodia-data") ‖ lp("acme") ‖ lp(00..0f) ‖ lp("trait:email")
    // ‖ lp([1]).
    let sealed = "01000102030405060708090a0b72e087155d6ca1281ac289f9cc3b0397ee1dac4db1c4cf9f499bd76a5a870d01";
    let sealed: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sealed[i..i + 2], 16).unwrap())
        .collect();
    let mut key = DataKey::zeroed();
    key.as_bytes_mut().fill(7);
    let acme = tenant("acme");
    let subject = SubjectId::from_bytes(std::array::from_fn(|i| i as u8));
    let aad = Aad {
        tenant: &acme,
        subject,
        kind: "trait:email",
    };
    assert_eq!(
        key.open(&aad, &sealed).unwrap().as_slice(),
        b"jane@example.com"
    );
}

#[test]
fn sealing_twice_uses_fresh_nonces() {
    let key = DataKey::generate().unwrap();
    let acme = tenant("acme");
    let aad = Aad {
        tenant: &acme,
        subject: fixed_subject(1),
        kind: "k",
    };
    let a = key.seal(&aad, b"same").unwrap();
    let b = key.seal(&aad, b"same").unwrap();
    assert_ne!(a[1..13], b[1..13]);
    assert_ne!(a, b);
}
