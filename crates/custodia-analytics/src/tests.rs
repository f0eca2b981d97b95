//! Unit tests of the analytics, one module per capability, with the fixture helpers they share.

mod currency;
mod dashboard;
mod fact;
mod journey;
mod kpis;
mod rfm;
mod segments;

use custodia_core::{Pseudonym, Timestamp};

use crate::{Currency, Fact, FactKind};

/// The pseudonym of test subject `n`.
fn subject(n: u8) -> Pseudonym {
    Pseudonym([n; 16])
}

/// An RFC 3339 instant.
fn at(rfc3339: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc3339).unwrap()
}

/// A fact of subject `n` at an RFC 3339 instant.
fn fact(n: u8, rfc3339: &str, kind: FactKind) -> Fact {
    Fact::new(subject(n), at(rfc3339), kind).unwrap()
}

fn currency(code: &str) -> Currency {
    code.parse().unwrap()
}

fn order(amount_minor: i64, code: &str) -> FactKind {
    FactKind::Order {
        amount_minor,
        currency: currency(code),
    }
}

fn refund(amount_minor: i64, code: &str) -> FactKind {
    FactKind::Refund {
        amount_minor,
        currency: currency(code),
    }
}

fn nps(score: u8) -> FactKind {
    FactKind::Nps { score }
}

fn review(rating: u8) -> FactKind {
    FactKind::Review { rating }
}

/// Groups a flat list of facts into the `(pseudonym, facts)` pairs the computations take, one
/// pair per subject in order of first appearance.
fn by_subject(facts: &[Fact]) -> Vec<(Pseudonym, Vec<Fact>)> {
    let mut subjects: Vec<(Pseudonym, Vec<Fact>)> = Vec::new();
    for fact in facts {
        match subjects.iter_mut().find(|(p, _)| *p == fact.pseudonym) {
            Some((_, list)) => list.push(*fact),
            None => subjects.push((fact.pseudonym, vec![*fact])),
        }
    }
    subjects
}

/// The borrowed form of [`by_subject`]'s output.
fn pairs(subjects: &[(Pseudonym, Vec<Fact>)]) -> impl Iterator<Item = (Pseudonym, &[Fact])> {
    subjects.iter().map(|(p, facts)| (*p, facts.as_slice()))
}
