//! Deterministic synthetic profiles and queries, for benchmarks (`custodia bench search`) and
//! tests: the same number always gives the same document, on every machine.
//!
//! The names, streets and cities come from small built-in lists, with accents and letters such as
//! ß, ø and ł so that normalization is exercised; none of it is real personal data.

use custodia_core::Pseudonym;

use crate::normalize::tokens;
use crate::{Facet, SearchDoc, SearchQuery, TextField};

const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Jonas",
    "Léa",
    "Mateo",
    "Zoë",
    "Søren",
    "Łukasz",
    "José",
    "Amélie",
    "Björn",
    "Chloé",
    "Dário",
    "Emma",
    "Fatma",
    "Günter",
    "Hannah",
    "Inès",
    "Jürgen",
    "Karolína",
    "Lars",
    "Marta",
    "Noah",
    "Olívia",
    "Paweł",
    "Ramón",
    "Sofía",
    "Timo",
    "Ulrike",
    "Valentín",
    "Wiebke",
    "Xaver",
    "Yusuf",
];

const LAST_NAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Weißmann",
    "García",
    "Martínez",
    "Nowak",
    "Kowalski",
    "Wójcik",
    "Dubois",
    "Lefèvre",
    "Rossi",
    "Bianchi",
    "Jensen",
    "Hansen",
    "Møller",
    "Novák",
    "Dvořák",
    "Silva",
    "Pereira",
    "Öztürk",
    "Yılmaz",
    "Papadopoulos",
    "O'Brien",
    "Van der Berg",
    "De Luca",
    "Fernández",
    "Nieminen",
    "Johansson",
    "Horváth",
    "Kovač",
    "Đorđević",
    "Sørensen",
];

/// Cities with their country codes.
const CITIES: &[(&str, &str)] = &[
    ("Berlin", "DE"),
    ("München", "DE"),
    ("Köln", "DE"),
    ("Hamburg", "DE"),
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Madrid", "ES"),
    ("Sevilla", "ES"),
    ("Kraków", "PL"),
    ("Gdańsk", "PL"),
    ("København", "DK"),
    ("Aarhus", "DK"),
    ("Praha", "CZ"),
    ("Brno", "CZ"),
    ("Lisboa", "PT"),
    ("Porto", "PT"),
    ("Wien", "AT"),
    ("Zürich", "CH"),
    ("Milano", "IT"),
    ("Göteborg", "SE"),
];

const STREETS: &[&str] = &[
    "Hauptstraße",
    "Bahnhofstraße",
    "Rue de la Paix",
    "Calle Mayor",
    "Ulica Długa",
    "Via Roma",
    "Nørregade",
    "Rua Augusta",
];

const DOMAINS: &[&str] = &["example.com", "example.org", "mail.example", "post.example"];
const SEGMENTS: &[&str] = &["vip", "newsletter", "churn-risk", "new"];
const TIERS: &[&str] = &["bronze", "silver", "gold"];
const STAGES: &[&str] = &["lead", "customer", "repeat", "lapsed"];
const PURPOSES: &[&str] = &["marketing", "analytics", "personalization"];

/// The synthetic pseudonym of profile `i` (not a vault pseudonym: benchmarks need no subjects).
pub fn pseudonym(i: u64) -> Pseudonym {
    let mut rng = Rng::new(i ^ 0x7073_6575_646f_6e79);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng.next().to_be_bytes());
    bytes[8..].copy_from_slice(&rng.next().to_be_bytes());
    Pseudonym(bytes)
}

/// Synthetic profile `i`: name, e-mail, phone, city, address, a few order ids, and facets.
pub fn profile(i: u64) -> SearchDoc {
    let mut rng = Rng::new(i);
    let first = rng.pick(FIRST_NAMES);
    let last = rng.pick(LAST_NAMES);
    let (city, country) = *rng.pick(CITIES);
    let email = format!(
        "{}.{}{}@{}",
        tokens(first).concat(),
        tokens(last).concat(),
        rng.below(100),
        rng.pick(DOMAINS)
    );
    let phone = format!("+49 {} {:08}", 30 + rng.below(70), rng.below(100_000_000));
    let address = format!("{} {}", rng.pick(STREETS), 1 + rng.below(200));
    let mut doc = SearchDoc::new(pseudonym(i))
        .with_text(TextField::Name, format!("{first} {last}"))
        .with_text(TextField::Email, email)
        .with_text(TextField::Phone, phone)
        .with_text(TextField::City, city)
        .with_text(TextField::Address, address)
        .with_facet(Facet::Segment, *rng.pick(SEGMENTS))
        .with_facet(Facet::Tier, *rng.pick(TIERS))
        .with_facet(Facet::Stage, *rng.pick(STAGES))
        .with_facet(Facet::Country, country);
    for _ in 0..rng.below(4) {
        doc = doc.with_text(
            TextField::OrderId,
            format!("ORD-{:07}", rng.below(10_000_000)),
        );
    }
    for purpose in PURPOSES {
        if rng.below(2) == 1 {
            doc = doc.with_facet(Facet::ConsentGranted, *purpose);
        }
    }
    doc
}

/// Synthetic query `i` over a population of profiles `0..population`: the surname of one of
/// them, or first name and surname, or city and surname, or the first three letters of a
/// surname as typed so far. Returns at most `limit` hits.
pub fn query(i: u64, population: u64, limit: usize) -> SearchQuery {
    let mut rng = Rng::new(i ^ 0x7175_6572_7900_0000);
    let target = profile(rng.below(population.max(1)));
    let name = text_of(&target, TextField::Name);
    let city = text_of(&target, TextField::City);
    let surname = name.split_once(' ').map_or(name, |(_, surname)| surname);
    let text = match rng.below(4) {
        0 => surname.to_owned(),
        1 => name.to_owned(),
        2 => format!("{city} {surname}"),
        _ => tokens(surname)
            .first()
            .map(|token| token.chars().take(3).collect())
            .unwrap_or_default(),
    };
    SearchQuery::text(text, limit)
}

fn text_of(doc: &SearchDoc, field: TextField) -> &str {
    doc.text
        .iter()
        .find(|(f, _)| *f == field)
        .map_or("", |(_, value)| value.as_str())
}

/// SplitMix64: tiny, seedable, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.below(items.len() as u64)) as usize]
    }
}
