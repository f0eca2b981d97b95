//! The signed-note parsers on arbitrary text.
//!
//! - `Checkpoint::parse` accepts only text that `to_text` reproduces byte for byte, and parsing
//!   that text again gives the same checkpoint.
//! - A checkpoint that verifies under our key carries exactly the signature line we would make
//!   (Ed25519 is deterministic), so accepted text is never a forgery; a checkpoint we sign for a
//!   parsed origin, size and root round-trips and verifies, also with the parsed signature lines
//!   kept beside ours as cosignatures.
//! - `VerifierKey::from_str` never panics, accepts only text that `Display` reproduces, and agrees
//!   with `VerifierKey::new`.

#![no_main]

use custodia_ledger::{Checkpoint, NoteSigner, VerifierKey};
use custodia_vault::SigningKey;
use libfuzzer_sys::fuzz_target;

/// The seed of the key that signs the checkpoint seeds in `seeds/checkpoint`.
const KEY_SEED: [u8; 32] = [7; 32];
/// The most signature lines a checkpoint may carry (as the parser).
const MAX_SIGNATURES: usize = 100;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_verifier_key(text);
    for line in text.lines() {
        check_verifier_key(line);
    }
    check_checkpoint(text);
});

fn check_verifier_key(text: &str) {
    let Ok(key) = text.parse::<VerifierKey>() else {
        return;
    };
    assert_eq!(key.to_string(), text, "a verifier key does not print back");
    assert_eq!(
        key.to_string().parse::<VerifierKey>().ok().as_ref(),
        Some(&key)
    );
    assert_eq!(VerifierKey::new(&key.name, key.public_key).ok(), Some(key));
}

fn check_checkpoint(text: &str) {
    let Ok(checkpoint) = Checkpoint::parse(text) else {
        return;
    };
    assert_eq!(
        checkpoint.to_text(),
        text,
        "a checkpoint does not print back"
    );
    assert_eq!(
        Checkpoint::parse(&checkpoint.to_text()).ok().as_ref(),
        Some(&checkpoint)
    );

    // Our key under the checkpoint's origin (other logs' origins may hold spaces; not ours).
    let key = SigningKey::from_seed(&KEY_SEED).expect("a fixed seed is a key");
    let Ok(signer) = NoteSigner::new(&checkpoint.origin, key) else {
        return;
    };
    let verifier_key = signer.verifier_key();
    let signed = signer.sign(checkpoint.tree_size, &checkpoint.root);
    let our_line = &signed.signatures[0];
    if checkpoint.verify(&verifier_key) {
        assert!(
            checkpoint.signatures.contains(our_line),
            "a signature line verified that our key did not make"
        );
    }
    assert_eq!(
        Checkpoint::parse(&signed.to_text()).ok().as_ref(),
        Some(&signed)
    );
    assert!(signed.verify(&verifier_key));

    if checkpoint.signatures.len() < MAX_SIGNATURES {
        let mut cosigned = checkpoint.clone();
        cosigned.signatures.push(our_line.clone());
        let reparsed =
            Checkpoint::parse(&cosigned.to_text()).expect("a cosigned checkpoint parses");
        assert_eq!(reparsed, cosigned);
        assert!(reparsed.verify(&verifier_key));
    }
}
