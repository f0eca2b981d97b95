//! What reaches the disk: no plaintext of indexed words in any index file, and after a purge no
//! trace of the purged subject's terms, in the files or in any segment's term dictionary.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custodia_core::Pseudonym;
use tantivy::Index;
use tantivy::index::SegmentComponent;

use super::{Fixture, files_containing, files_under, found, pseudonym};
use crate::normalize::field_tokens;
use crate::{SearchDoc, SearchIndex, TextField};

/// Forms in which a string could sit in a file: as is, lower-case, upper-case, hex, base64.
fn encodings(text: &str) -> Vec<Vec<u8>> {
    vec![
        text.as_bytes().to_vec(),
        text.to_lowercase().into_bytes(),
        text.to_uppercase().into_bytes(),
        hex::encode(text).into_bytes(),
        STANDARD.encode(text).into_bytes(),
    ]
}

fn canaries() -> Vec<SearchDoc> {
    vec![
        SearchDoc::new(pseudonym(0xc1))
            .with_text(TextField::Name, "Zqxvcanary Wrbtlmuller")
            .with_text(
                TextField::Email,
                "zqxvcanary.wrbtlkmno@canarymailhost.zqcanary",
            )
            .with_text(TextField::Phone, "01579864235713")
            .with_text(TextField::City, "Qwzcanaryville")
            .with_text(TextField::Address, "Canarystraße 1234567")
            .with_text(TextField::Note, "prefers Plqmcanarytea")
            .with_text(TextField::OrderId, "ORDCNRY-7781234X"),
        SearchDoc::new(pseudonym(0xc2))
            .with_text(TextField::Name, "Jøsëfinecanary Ŋgwrbtl")
            .with_text(TextField::City, "Kxcanaryburg"),
    ]
}

#[test]
fn no_plaintext_reaches_the_index_files() {
    let fixture = Fixture::new();
    let index = fixture.open();
    for doc in canaries() {
        index.upsert(&doc).unwrap();
    }
    index.commit(1).unwrap();
    assert_eq!(found(&index, "wrbtlmuller zqxv"), [pseudonym(0xc1)]);
    // Replace one, so that a deleted document sits in a segment too.
    index.upsert(&canaries()[1]).unwrap();
    index.commit(2).unwrap();

    // Every term of a hashed field is 32 hex characters; no term of any field is a canary token.
    let hashed = terms_on_disk(fixture.dir());
    assert!(!hashed.is_empty());
    for term in &hashed {
        assert!(
            term.len() == 32
                && term
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "a hashed term that is not 32 lower-case hex characters"
        );
    }
    let all_fields = [
        "pseudonym",
        "words",
        "prefixes",
        "segment",
        "tier",
        "stage",
        "country",
        "consent_granted",
    ];
    let all_terms = terms_of_fields(fixture.dir(), &all_fields);
    for doc in canaries() {
        for (field, value) in &doc.text {
            for token in field_tokens(*field, value) {
                assert!(
                    all_terms.iter().all(|term| !term.contains(&token)),
                    "{field:?} canary token is a term"
                );
            }
        }
    }

    // No plaintext in the bytes of any file either (stored values, fast columns, metadata).
    let files = files_under(fixture.dir());
    assert!(!files.is_empty());
    // The scan sees what is there: the stored pseudonym is in the files.
    assert!(!files_containing(&files, pseudonym(0xc1).to_string().as_bytes()).is_empty());

    for doc in canaries() {
        for (field, value) in &doc.text {
            let mut needles = vec![value.clone()];
            for token in field_tokens(*field, value) {
                // Short tokens ("1234567" is the shortest here) would turn up by chance.
                assert!(
                    token.len() >= 7,
                    "canary token too short to scan for: {token}"
                );
                needles.push(token);
            }
            for needle in &needles {
                for encoded in encodings(needle) {
                    let hits = files_containing(&files, &encoded);
                    assert!(
                        hits.is_empty(),
                        "{field:?} canary in {hits:?} as {:?}",
                        String::from_utf8_lossy(&encoded)
                    );
                }
            }
        }
    }
}

/// Subject A: two versions, the first replaced by the second. Every token and prefix of A starts
/// with a letter no other subject's token starts with, so A shares no term with anyone.
fn subject_a() -> [SearchDoc; 2] {
    [
        SearchDoc::new(pseudonym(0xaa))
            .with_text(TextField::Name, "Xavera Quintessa")
            .with_text(TextField::City, "Zyrtown")
            .with_text(TextField::Email, "xavera@qvzmail.xq"),
        SearchDoc::new(pseudonym(0xaa))
            .with_text(TextField::Name, "Xyla Quorra")
            .with_text(TextField::City, "Zyrtown")
            .with_text(TextField::Email, "xyla@qvzmail.xq"),
    ]
}

fn others() -> [SearchDoc; 3] {
    [
        SearchDoc::new(pseudonym(0xbb))
            .with_text(TextField::Name, "Bruno Bellamy")
            .with_text(TextField::City, "Bergheim")
            .with_text(TextField::Email, "bruno@bmail.be"),
        SearchDoc::new(pseudonym(0xcc))
            .with_text(TextField::Name, "Carla Conti")
            .with_text(TextField::City, "Como"),
        SearchDoc::new(pseudonym(0xdd))
            .with_text(TextField::Name, "Dora Dahl")
            .with_text(TextField::City, "Dresden"),
    ]
}

/// Every term of the hashed index fields, `words` and `prefixes`, in every segment of the index
/// in `dir`, read with a fresh tantivy handle.
fn terms_on_disk(dir: &Path) -> BTreeSet<String> {
    terms_of_fields(dir, &["words", "prefixes"])
}

/// Every term of the named index fields, in every segment of the index in `dir`.
///
/// Scanning the files' bytes cannot stand in for this: tantivy keeps terms in a finite-state
/// transducer, which splits a term's bytes across shared nodes, so even a term that is there
/// does not show as one run of bytes.
fn terms_of_fields(dir: &Path, field_names: &[&str]) -> BTreeSet<String> {
    let index = Index::open_in_dir(dir).unwrap();
    let reader = index.reader().unwrap();
    let searcher = reader.searcher();
    let schema = index.schema();
    let mut terms = BTreeSet::new();
    for field_name in field_names {
        let field = schema.get_field(field_name).unwrap();
        for segment in searcher.segment_readers() {
            let inverted_index = segment.inverted_index(field).unwrap();
            let mut stream = inverted_index.terms().stream().unwrap();
            while stream.advance() {
                terms.insert(String::from_utf8(stream.key().to_vec()).unwrap());
            }
        }
    }
    terms
}

/// The files of `dir` that belong neither to a live segment nor to the index's bookkeeping.
fn stray_files(dir: &Path) -> Vec<PathBuf> {
    let index = Index::open_in_dir(dir).unwrap();
    let live: BTreeSet<PathBuf> = index
        .searchable_segment_metas()
        .unwrap()
        .iter()
        .flat_map(|meta| {
            let mut components = vec![
                SegmentComponent::Postings,
                SegmentComponent::Positions,
                SegmentComponent::Terms,
                SegmentComponent::Store,
                SegmentComponent::FastFields,
                SegmentComponent::FieldNorms,
            ];
            if meta.has_deletes() {
                components.push(SegmentComponent::Delete);
            }
            components
                .into_iter()
                .map(|component| meta.relative_path(component))
                .collect::<Vec<_>>()
        })
        .collect();
    let bookkeeping = [
        "meta.json",
        ".managed.json",
        ".tantivy-writer.lock",
        ".tantivy-meta.lock",
    ];
    files_under(dir)
        .into_iter()
        .map(|(path, _)| path.strip_prefix(dir).unwrap().to_path_buf())
        .filter(|path| {
            !live.contains(path) && !bookkeeping.iter().any(|name| path == Path::new(name))
        })
        .collect()
}

fn terms_of(index: &SearchIndex, docs: &[SearchDoc]) -> BTreeSet<String> {
    docs.iter()
        .flat_map(|doc| {
            let terms = index.doc_terms(doc);
            terms.words.into_iter().chain(terms.prefixes)
        })
        .collect()
}

#[test]
fn purge_removes_every_term_of_the_subject_from_disk() {
    let fixture = Fixture::new();
    let index = fixture.open();
    let [a_old, a_new] = subject_a();
    let [b, c, d] = others();
    // Three commits, so that A's two versions and the others sit in different segments.
    index.upsert(&a_old).unwrap();
    index.upsert(&c).unwrap();
    index.commit(1).unwrap();
    index.upsert(&a_new).unwrap();
    index.upsert(&b).unwrap();
    index.commit(2).unwrap();
    index.upsert(&d).unwrap();
    index.commit(3).unwrap();
    assert_eq!(found(&index, "xyla quorra"), [pseudonym(0xaa)]);

    let a_terms = terms_of(&index, &[a_old.clone(), a_new.clone()]);
    let other_terms = terms_of(&index, &[b.clone(), c.clone(), d.clone()]);
    assert!(a_terms.is_disjoint(&other_terms), "A must share no term");
    let before = terms_on_disk(fixture.dir());
    assert!(a_terms.is_subset(&before), "both versions of A are on disk");

    // Deleting takes A out of every search at once; its terms stay in the segments until the
    // compaction rewrites them.
    index.delete(&[pseudonym(0xaa)]).unwrap();
    assert!(found(&index, "xyla quorra").is_empty());
    assert!(
        a_terms.is_subset(&terms_on_disk(fixture.dir())),
        "a deletion alone leaves the terms on disk"
    );
    index.compact(&[pseudonym(0xaa)]).unwrap();

    let assert_gone = |when: &str| {
        let on_disk = terms_on_disk(fixture.dir());
        assert!(
            on_disk.is_disjoint(&a_terms),
            "{when}: a term of A left in a segment"
        );
        assert!(
            other_terms.is_subset(&on_disk),
            "{when}: the others' terms stay"
        );
        assert_eq!(
            stray_files(fixture.dir()),
            Vec::<PathBuf>::new(),
            "{when}: stray files"
        );
        // A byte scan for A's terms, for what it is worth: the term dictionary hides terms from
        // it (see `terms_of_fields`), other files need not.
        let files = files_under(fixture.dir());
        for term in &a_terms {
            let raw = hex::decode(term).unwrap();
            for needle in [term.as_bytes(), raw.as_slice()] {
                let hits = files_containing(&files, needle);
                assert!(hits.is_empty(), "{when}: a term of A in {hits:?}");
            }
        }
        // The scan is not blind: B's stored pseudonym is still found, A's no longer is.
        let stored = |p: Pseudonym| files_containing(&files, p.to_string().as_bytes());
        assert!(!stored(pseudonym(0xbb)).is_empty());
        assert!(
            stored(pseudonym(0xaa)).is_empty(),
            "{when}: A's pseudonym is still stored"
        );
    };
    assert_gone("after the compaction");
    assert!(found(&index, "xyla quorra").is_empty());
    assert!(found(&index, "xavera").is_empty());
    assert!(found(&index, "zyrtown").is_empty());
    assert_eq!(found(&index, "bruno bellamy"), [pseudonym(0xbb)]);
    assert_eq!(index.len(), 3);
    assert_eq!(index.watermark(), 3, "the purge commit keeps the watermark");

    drop(index);
    let index = fixture.open();
    assert!(found(&index, "xyla").is_empty());
    assert_eq!(found(&index, "bruno"), [pseudonym(0xbb)]);
    assert_eq!(index.len(), 3);
    assert_eq!(index.watermark(), 3);
    // Writing on after a purge and a reopen works.
    index.upsert(&a_new).unwrap();
    index.commit(4).unwrap();
    assert_eq!(found(&index, "xyla"), [pseudonym(0xaa)]);
    drop(index);
    assert_gone_after_reupsert(&fixture);
}

/// After A is indexed again, its terms are back: the purge test's checks are not vacuous.
fn assert_gone_after_reupsert(fixture: &Fixture) {
    let index = fixture.open();
    let [_, a_new] = subject_a();
    let a_terms = terms_of(&index, &[a_new]);
    assert!(a_terms.is_subset(&terms_on_disk(fixture.dir())));
}
