//! The index agrees with a scan of the plaintext: for generated upserts, removals and commits over
//! a small vocabulary, every generated query finds exactly the subjects that the matching rules,
//! applied to the plaintext with the same normalization, say it should.

use std::collections::{BTreeMap, BTreeSet};

use custodia_core::Pseudonym;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use super::{Fixture, pseudonym};
use crate::normalize::{field_tokens, last_word_matches, query_words};
use crate::{Facet, SearchDoc, SearchIndex, SearchQuery, TextField};

/// Words chosen to collide after normalization, and to be prefixes of one another.
const VOCABULARY: &[&str] = &[
    "Anna", "anne", "Annabel", "ann", "Jo", "jonas", "Müller", "MULLER", "mueller", "mül",
    "García", "gar", "Berlin", "bern", "x", "xy", "Straße", "strasse",
];
const SEPARATORS: &[&str] = &[" ", "-", ", ", ".", " & "];
const SEGMENTS: &[&str] = &["a", "b"];

#[derive(Clone, Debug)]
enum Op {
    Upsert {
        subject: u8,
        text: Vec<(TextField, String)>,
        segment: Option<&'static str>,
    },
    Remove {
        subject: u8,
    },
    Commit,
}

fn text_value() -> impl Strategy<Value = String> {
    prop::collection::vec((select(VOCABULARY), select(SEPARATORS)), 1..=3).prop_map(|words| {
        words
            .iter()
            .enumerate()
            .map(|(idx, (word, sep))| {
                if idx == 0 {
                    word.to_string()
                } else {
                    format!("{sep}{word}")
                }
            })
            .collect()
    })
}

fn op() -> impl Strategy<Value = Op> {
    let field = select(&[TextField::Name, TextField::City, TextField::Email][..]);
    let upsert = (
        0u8..6,
        prop::collection::vec((field, text_value()), 0..=3),
        prop::option::of(select(SEGMENTS)),
    )
        .prop_map(|(subject, text, segment)| Op::Upsert {
            subject,
            text,
            segment,
        });
    prop_oneof![
        6 => upsert,
        1 => (0u8..6).prop_map(|subject| Op::Remove { subject }),
        1 => Just(Op::Commit),
    ]
}

/// A query word: a vocabulary word, or the first few characters of one.
fn query_word() -> impl Strategy<Value = String> {
    (select(VOCABULARY), 1usize..8).prop_map(|(word, n_chars)| word.chars().take(n_chars).collect())
}

fn query() -> impl Strategy<Value = (String, Option<&'static str>)> {
    (
        prop::collection::vec(query_word(), 0..=3).prop_map(|words| words.join(" ")),
        prop::option::of(select(SEGMENTS)),
    )
}

/// One subject's current plaintext document, as the model keeps it.
struct Plain {
    text: Vec<(TextField, String)>,
    segment: Option<&'static str>,
}

/// The subjects that the matching rules select, scanning the plaintext.
fn scan(
    docs: &BTreeMap<Pseudonym, Plain>,
    text: &str,
    segment: Option<&str>,
) -> BTreeSet<Pseudonym> {
    let words = query_words(text);
    docs.iter()
        .filter(|(_, doc)| segment.is_none() || doc.segment == segment)
        .filter(|(_, doc)| {
            // A word may match in any field, so the fields' tokens pool together.
            let tokens: BTreeSet<String> = doc
                .text
                .iter()
                .flat_map(|(field, value)| field_tokens(*field, value))
                .collect();
            match words.split_last() {
                None => true,
                Some((last, leading)) => {
                    leading.iter().all(|word| tokens.contains(word))
                        && tokens.iter().any(|token| last_word_matches(last, token))
                }
            }
        })
        .map(|(pseudonym, _)| *pseudonym)
        .collect()
}

fn check(
    fixture: &Fixture,
    ops: &[Op],
    queries: &[(String, Option<&'static str>)],
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let index = SearchIndex::open(dir.path(), fixture.vault.clone()).unwrap();
    let mut docs = BTreeMap::new();
    for op in ops {
        match op {
            Op::Upsert {
                subject,
                text,
                segment,
            } => {
                let mut doc = SearchDoc::new(pseudonym(*subject));
                doc.text = text.clone();
                if let Some(segment) = segment {
                    doc = doc.with_facet(Facet::Segment, *segment);
                }
                index.upsert(&doc).unwrap();
                let plain = Plain {
                    text: text.clone(),
                    segment: *segment,
                };
                docs.insert(pseudonym(*subject), plain);
            }
            Op::Remove { subject } => {
                index.remove(pseudonym(*subject)).unwrap();
                docs.remove(&pseudonym(*subject));
            }
            Op::Commit => index.commit(0).unwrap(),
        }
    }
    index.commit(1).unwrap();
    prop_assert_eq!(index.len(), docs.len());

    for (text, segment) in queries {
        let mut query = SearchQuery::text(text.as_str(), 100);
        if let Some(segment) = segment {
            query = query.with_facet(Facet::Segment, *segment);
        }
        let results = index.search(&query).unwrap();
        let got: BTreeSet<Pseudonym> = results.hits.iter().map(|hit| hit.pseudonym).collect();
        let expected = scan(&docs, text, *segment);
        prop_assert_eq!(&got, &expected, "query {:?} segment {:?}", text, segment);
        prop_assert_eq!(results.total, expected.len());
        for pair in results.hits.windows(2) {
            prop_assert!(
                pair[0].score > pair[1].score
                    || (pair[0].score == pair[1].score && pair[0].pseudonym < pair[1].pseudonym),
                "hits out of order: {:?}",
                pair
            );
        }
    }
    Ok(())
}

#[test]
fn index_agrees_with_a_plaintext_scan() {
    // One vault for all cases; each case builds its own index.
    let fixture = Fixture::new();
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let strategy = (
        prop::collection::vec(op(), 1..16),
        prop::collection::vec(query(), 1..8),
    );
    TestRunner::new(config)
        .run(&strategy, |(ops, queries)| check(&fixture, &ops, &queries))
        .unwrap();
}
