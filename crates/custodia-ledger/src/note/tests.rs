//! Signed-note known answers from outside (Go's `sumdb/note` example key, a real sum.golang.org
//! checkpoint), strict parsing, and round trips.

use proptest::prelude::*;

use super::*;

fn make_signer(origin: &str, seed: u8) -> NoteSigner {
    NoteSigner::new(origin, SigningKey::from_seed(&[seed; 32]).unwrap()).unwrap()
}

/// The example key and note of Go's `golang.org/x/mod/sumdb/note` documentation.
const NEUMANN_SKEY_DATA: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const NEUMANN_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const NEUMANN_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                            then you don't know what your problem is.\n";
const NEUMANN_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

/// sum.golang.org's checkpoint of 2024-09-23 (as quoted in sigsum-go's tests) and its key.
const SUMDB_CHECKPOINT: &str = "go.sum database tree\n\
                                30055305\n\
                                mXfgRcJ0bG0j3CPdKwgGWtUzBUbX67saZGRmFuJGGsM=\n\
                                \n\
                                \u{2014} sum.golang.org Az3grpgEild5qw7+5dtV13Kf1C2Xurm8q4fhdxvcsDHnqNTaxL2AFjBY+2TyGKevucFcAAlWFJJYle3EJlDCrQ+y3A8=\n";
const SUMDB_VKEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

#[test]
fn go_note_example_key_signs_the_known_answer() {
    let data = STANDARD.decode(NEUMANN_SKEY_DATA).unwrap();
    assert_eq!(data[0], ED25519_TYPE);
    let seed: [u8; 32] = data[1..].try_into().unwrap();
    let signer = NoteSigner::new("PeterNeumann", SigningKey::from_seed(&seed).unwrap()).unwrap();
    assert_eq!(signer.verifier_key().to_string(), NEUMANN_VKEY);
    assert_eq!(signer.verifier_key(), NEUMANN_VKEY.parse().unwrap());
    assert_eq!(signer.sign_text(NEUMANN_TEXT).to_line(), NEUMANN_LINE);
}

#[test]
fn real_sumdb_checkpoint_parses_verifies_and_round_trips() {
    let checkpoint = Checkpoint::parse(SUMDB_CHECKPOINT).unwrap();
    assert_eq!(checkpoint.origin, "go.sum database tree");
    assert_eq!(checkpoint.tree_size, 30_055_305);
    assert_eq!(checkpoint.signatures.len(), 1);
    assert_eq!(checkpoint.to_text(), SUMDB_CHECKPOINT);
    let key: VerifierKey = SUMDB_VKEY.parse().unwrap();
    assert_eq!(key.to_string(), SUMDB_VKEY);
    assert!(checkpoint.verify(&key));

    let mut other_size = checkpoint.clone();
    other_size.tree_size += 1;
    assert!(!other_size.verify(&key));
    let mut other_root = checkpoint.clone();
    other_root.root[31] ^= 1;
    assert!(!other_root.verify(&key));
    let mut other_signature = checkpoint.clone();
    other_signature.signatures[0].signature[0] ^= 1;
    assert!(!other_signature.verify(&key));
}

#[test]
fn our_checkpoints_verify_with_our_key_only() {
    let signer = make_signer("custodia.test/default/ledger", 7);
    let checkpoint = signer.sign(42, &[9u8; 32]);
    assert_eq!(
        checkpoint.body(),
        "custodia.test/default/ledger\n42\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n"
    );
    let text = checkpoint.to_text();
    assert!(text.starts_with(&checkpoint.body()));
    assert!(text.contains("\n\n\u{2014} custodia.test/default/ledger "));
    assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint);

    let key = signer.verifier_key();
    assert!(checkpoint.verify(&key));
    // Another key of the same name, the same key under another name, another key id.
    assert!(!checkpoint.verify(&make_signer("custodia.test/default/ledger", 8).verifier_key()));
    let renamed = VerifierKey::new("custodia.test/other", key.public_key).unwrap();
    assert!(!checkpoint.verify(&renamed));
    let mut wrong_id = key.clone();
    wrong_id.key_id[0] ^= 1;
    assert!(!checkpoint.verify(&wrong_id));
    // Cosignature lines of other keys are kept and do not get in the way.
    let mut cosigned = checkpoint.clone();
    cosigned.signatures.insert(
        0,
        NoteSignature {
            key_name: "witness.example".to_owned(),
            key_id: [1, 2, 3, 4],
            signature: vec![5; 72],
        },
    );
    let reparsed = Checkpoint::parse(&cosigned.to_text()).unwrap();
    assert_eq!(reparsed, cosigned);
    assert!(reparsed.verify(&key));
}

#[test]
fn signer_origins_must_be_key_names() {
    let key = || SigningKey::from_seed(&[1; 32]).unwrap();
    for bad in ["", "a b", "a+b", "a\nb", "tab\there", "nbsp\u{a0}x"] {
        assert!(
            matches!(
                NoteSigner::new(bad, key()),
                Err(LedgerError::InvalidOrigin { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(NoteSigner::new("example.com/log", key()).is_ok());
}

#[test]
fn verifier_key_parsing_is_strict() {
    let good = make_signer("log.example", 3).verifier_key().to_string();
    assert_eq!(good.parse::<VerifierKey>().unwrap().to_string(), good);
    let (name, rest) = good.split_once('+').unwrap();
    let (id, data) = rest.split_once('+').unwrap();
    let mut data_bytes = STANDARD.decode(data).unwrap();
    let wrong_type = {
        data_bytes[0] = 2;
        STANDARD.encode(&data_bytes)
    };
    let short = STANDARD.encode(&data_bytes[..32]);
    let bad = [
        String::new(),
        format!("{name}+{id}"),
        format!("{name}+{}+{data}", id.to_uppercase()),
        format!("{name}+0{id}+{data}"),
        format!("{name}+00000000+{data}"),
        format!("other+{id}+{data}"),
        format!("+{id}+{data}"),
        format!("{name}+{id}+{wrong_type}"),
        format!("{name}+{id}+{short}"),
        format!("{name}+{id}+{data}="),
        format!("{name}+{id}+{}", &data[..data.len() - 1]),
        format!("{name}+{id}+{data}\n"),
    ];
    for text in bad {
        assert!(
            matches!(
                text.parse::<VerifierKey>(),
                Err(LedgerError::MalformedVerifierKey { .. })
            ),
            "{text:?}"
        );
    }
}

#[test]
fn malformed_checkpoints_are_rejected() {
    let text = make_signer("log.example", 5).sign(7, &[1; 32]).to_text();
    let (body, signature) = text.split_once("\n\n").unwrap();
    let root = STANDARD.encode([1u8; 32]);
    let line = signature.trim_end_matches('\n');
    let mut bad = vec![
        String::new(),
        body.to_owned(),
        format!("{body}\n"),
        format!("{body}\n\n"),
        format!("{body}\n\n{line}"),
        format!("{body}\n\n{line}\n\n"),
        format!("{body}\nextension line\n\n{signature}"),
        format!("log.example\n07\n{root}\n\n{signature}"),
        format!("log.example\n+7\n{root}\n\n{signature}"),
        format!("log.example\n-7\n{root}\n\n{signature}"),
        format!("log.example\n18446744073709551616\n{root}\n\n{signature}"),
        format!(
            "log.example\n7\n{}\n\n{signature}",
            STANDARD.encode([1u8; 31])
        ),
        format!(
            "log.example\n7\n{}\n\n{signature}",
            root.trim_end_matches('=')
        ),
        format!(
            "log.example\n7\n{}\n\n{signature}",
            root.replace("AQE=", "AQF=")
        ),
        format!("\n7\n{root}\n\n{signature}"),
        format!("log\r.example\n7\n{root}\n\n{signature}"),
        format!("{body}\n\n- log.example AAAAAAAA\n"),
        format!(
            "{body}\n\n\u{2014} log+example {}\n",
            &line[line.rfind(' ').unwrap() + 1..]
        ),
        format!("{body}\n\n\u{2014} log.example\n"),
        format!("{body}\n\n\u{2014} log.example AAAA\n"),
        format!("{body}\n\n{line}\n\n{line}\n"),
    ];
    bad.push(format!("{body}\n\n{}", format!("{line}\n").repeat(101)));
    for text in bad {
        assert!(
            matches!(
                Checkpoint::parse(&text),
                Err(LedgerError::MalformedCheckpoint { .. })
            ),
            "{text:?}"
        );
    }
    assert!(Checkpoint::parse(&format!("{body}\n\n{}", format!("{line}\n").repeat(100))).is_ok());
}

fn key_name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9./_-]{1,30}"
}

fn signature() -> impl Strategy<Value = NoteSignature> {
    (
        key_name(),
        any::<[u8; 4]>(),
        prop::collection::vec(any::<u8>(), 1..100),
    )
        .prop_map(|(key_name, key_id, signature)| NoteSignature {
            key_name,
            key_id,
            signature,
        })
}

proptest! {
    #[test]
    fn checkpoint_text_round_trips(
        origin in "[a-zA-Z0-9./_ +-]{0,40}[a-z]",
        tree_size in any::<u64>(),
        root in any::<[u8; 32]>(),
        signatures in prop::collection::vec(signature(), 1..5),
    ) {
        let checkpoint = Checkpoint { origin, tree_size, root, signatures };
        let text = checkpoint.to_text();
        prop_assert_eq!(Checkpoint::parse(&text).unwrap(), checkpoint.clone());
        prop_assert_eq!(Checkpoint::parse(&text).unwrap().to_text(), text);
    }

    #[test]
    fn signed_checkpoints_round_trip_and_verify(seed in any::<u8>(), tree_size in any::<u64>(), root in any::<[u8; 32]>()) {
        let signer = make_signer("custodia.test/t/ledger", seed);
        let checkpoint = signer.sign(tree_size, &root);
        let parsed = Checkpoint::parse(&checkpoint.to_text()).unwrap();
        prop_assert!(parsed.verify(&signer.verifier_key()));
        prop_assert_eq!(parsed, checkpoint);
    }

    #[test]
    fn parse_never_panics(text in "(?s).{0,300}") {
        let _ = Checkpoint::parse(&text);
        let _ = text.parse::<VerifierKey>();
    }

    /// Accepted text is canonical: it prints back unchanged.
    #[test]
    fn accepted_text_is_canonical(seed in any::<u8>(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut text = make_signer("log.example", seed).sign(12, &[3; 32]).to_text().into_bytes();
        let pos = pos % text.len();
        text[pos] = byte;
        if let Ok(text) = String::from_utf8(text)
            && let Ok(checkpoint) = Checkpoint::parse(&text)
        {
            prop_assert_eq!(checkpoint.to_text(), text);
        }
    }
}
