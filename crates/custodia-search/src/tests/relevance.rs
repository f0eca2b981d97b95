//! Relevance over a small population: the right subject comes first for full names, folded
//! surnames, prefixes, and city plus name; words are ANDed; facets filter; ties and limits are
//! deterministic.

use custodia_core::Pseudonym;

use super::{Fixture, found, pseudonym};
use crate::{Facet, SearchDoc, SearchIndex, SearchQuery, TextField};

/// Name, city, e-mail and segment of each test person; person `i` has pseudonym `i + 1`.
const PEOPLE: &[(&str, &str, &str, &str)] = &[
    ("Anna Müller", "Berlin", "anna.mueller@example.com", "vip"),
    ("Jonas Müller", "Hamburg", "jonas@example.org", "new"),
    ("Anna Schmidt", "Berlin", "a.schmidt@example.net", "new"),
    ("José García", "Madrid", "jose@example.es", "vip"),
    ("Lucía García", "Sevilla", "lucia.garcia@example.es", "new"),
    ("Ann Smith", "London", "ann@example.co.uk", "new"),
    ("Annabel Lee", "Boston", "annabel@example.com", "new"),
    ("Fox Mulder", "Washington", "fox@example.gov", "vip"),
    ("Peter Weißmann", "Köln", "peter@example.de", "new"),
    ("Søren Jensen", "København", "soren@example.dk", "new"),
    ("Łukasz Nowak", "Kraków", "lukasz@example.pl", "new"),
    ("Zoë Dubois", "Paris", "zoe@example.fr", "vip"),
    ("Chloé Lefèvre", "Lyon", "chloe@example.fr", "new"),
    ("Mateo Rossi", "Milano", "mateo@example.it", "new"),
    ("Giulia Bianchi", "Roma", "giulia@example.it", "new"),
    ("Lars Hansen", "Aarhus", "lars@example.dk", "new"),
    ("Jan Novák", "Praha", "jan@example.cz", "new"),
    ("Petra Dvořák", "Brno", "petra@example.cz", "new"),
    ("Ana Silva", "Lisboa", "ana@example.pt", "new"),
    ("João Pereira", "Porto", "joao@example.pt", "new"),
    ("Emre Öztürk", "Berlin", "emre@example.de", "new"),
    ("Ayşe Yılmaz", "München", "ayse@example.de", "new"),
    ("Nikos Papadopoulos", "Athína", "nikos@example.gr", "new"),
    ("Seán O'Brien", "Dublin", "sean@example.ie", "new"),
    (
        "Pieter van der Berg",
        "Amsterdam",
        "pieter@example.nl",
        "new",
    ),
    ("Marco De Luca", "Napoli", "marco@example.it", "new"),
    ("Sofía Fernández", "Madrid", "sofia@example.es", "new"),
    ("Mika Nieminen", "Helsinki", "mika@example.fi", "new"),
    ("Erik Johansson", "Göteborg", "erik@example.se", "new"),
    ("Miloš Đorđević", "Beograd", "milos@example.rs", "new"),
];

/// The pseudonym of the person named `name` in [`PEOPLE`].
fn person(name: &str) -> Pseudonym {
    let idx = PEOPLE.iter().position(|p| p.0 == name).unwrap();
    pseudonym(idx as u8 + 1)
}

fn population(fixture: &Fixture) -> SearchIndex {
    let index = fixture.open();
    for (idx, (name, city, email, segment)) in PEOPLE.iter().enumerate() {
        let doc = SearchDoc::new(pseudonym(idx as u8 + 1))
            .with_text(TextField::Name, *name)
            .with_text(TextField::City, *city)
            .with_text(TextField::Email, *email)
            .with_text(TextField::Phone, format!("+49 30 5550{idx:04}"))
            .with_facet(Facet::Segment, *segment);
        index.upsert(&doc).unwrap();
    }
    index.commit(1).unwrap();
    assert_eq!(index.len(), PEOPLE.len());
    index
}

#[test]
fn ranks_the_right_subject_first() {
    let fixture = Fixture::new();
    let index = population(&fixture);

    // Full name: only one person has both words.
    assert_eq!(found(&index, "Anna Müller"), [person("Anna Müller")]);
    assert_eq!(found(&index, "müller anna"), [person("Anna Müller")]);
    // Surname, with accents folded either way.
    let mullers = [person("Anna Müller"), person("Jonas Müller")];
    for text in ["Müller", "MULLER", "muller"] {
        let hits = found(&index, text);
        assert_eq!(hits.len(), 2, "{text}");
        assert!(mullers.iter().all(|p| hits.contains(p)), "{text}");
    }
    assert_eq!(found(&index, "Garcia Jose"), [person("José García")]);
    assert_eq!(found(&index, "dordevic"), [person("Miloš Đorđević")]);
    assert_eq!(found(&index, "WEISSMANN"), [person("Peter Weißmann")]);

    // Prefix of the last word, typed with or without the umlaut.
    for text in ["mül", "mul"] {
        let hits = found(&index, text);
        let mut expected = vec![
            person("Anna Müller"),
            person("Jonas Müller"),
            person("Fox Mulder"),
        ];
        expected.sort();
        let mut sorted = hits.clone();
        sorted.sort();
        assert_eq!(sorted, expected, "{text}");
    }
    assert_eq!(found(&index, "anna mül"), [person("Anna Müller")]);
    assert_eq!(found(&index, "Jonas Mü"), [person("Jonas Müller")]);
    // Only the last word may be a prefix.
    assert!(found(&index, "mül anna").is_empty());

    // City and name.
    assert_eq!(found(&index, "Berlin Müller"), [person("Anna Müller")]);
    assert_eq!(found(&index, "madrid garcía"), [person("José García")]);
    let berlin_annas = found(&index, "berlin anna");
    assert_eq!(berlin_annas.len(), 2);
    assert!(berlin_annas.contains(&person("Anna Schmidt")));

    // E-mail words and phone numbers, however they are grouped.
    assert_eq!(found(&index, "anna mueller"), [person("Anna Müller")]);
    assert_eq!(found(&index, "493055500000"), [person("Anna Müller")]);
    let mut first_ten = found(&index, "+49 30 5550000");
    first_ten.sort();
    assert_eq!(first_ten, (1..=10).map(pseudonym).collect::<Vec<_>>());
}

#[test]
fn whole_words_outrank_prefixes() {
    let fixture = Fixture::new();
    let index = population(&fixture);
    // "ann" is Ann Smith's whole name, only the start of Anna and Annabel.
    let hits = index.search(&SearchQuery::text("ann", 10)).unwrap();
    assert_eq!(hits.hits[0].pseudonym, person("Ann Smith"));
    assert!(hits.hits[0].score > hits.hits[1].score);
    assert_eq!(hits.total, 4, "Ann, both Annas and Annabel");
}

#[test]
fn every_word_must_match() {
    let fixture = Fixture::new();
    let index = population(&fixture);
    assert!(found(&index, "anna zzyzx").is_empty());
    assert!(found(&index, "zzyzx").is_empty());
    assert!(found(&index, "zzyzx anna").is_empty());
    // Words of different people do not add up.
    assert!(found(&index, "jonas schmidt").is_empty());
    let results = index.search(&SearchQuery::text("anna zzyzx", 10)).unwrap();
    assert_eq!(results.total, 0);
}

#[test]
fn facets_narrow_and_filter_alone() {
    let fixture = Fixture::new();
    let index = population(&fixture);

    let all_annas = index.search(&SearchQuery::text("anna", 10)).unwrap();
    assert!(all_annas.total >= 2);
    let vip_annas = index
        .search(&SearchQuery::text("anna", 10).with_facet(Facet::Segment, "vip"))
        .unwrap();
    assert_eq!(vip_annas.total, 1);
    assert_eq!(vip_annas.hits[0].pseudonym, person("Anna Müller"));
    // The filter adds nothing to the score.
    let unfiltered = all_annas
        .hits
        .iter()
        .find(|hit| hit.pseudonym == person("Anna Müller"))
        .unwrap();
    assert_eq!(vip_annas.hits[0].score, unfiltered.score);

    // Filter only: every VIP, by ascending pseudonym, score 0.
    let vips = index
        .search(&SearchQuery::text("", 100).with_facet(Facet::Segment, "vip"))
        .unwrap();
    let expected: Vec<_> = ["Anna Müller", "José García", "Fox Mulder", "Zoë Dubois"]
        .map(person)
        .to_vec();
    assert_eq!(
        vips.hits
            .iter()
            .map(|hit| hit.pseudonym)
            .collect::<Vec<_>>(),
        expected
    );
    assert!(vips.hits.iter().all(|hit| hit.score == 0.0));
    // Facet values are exact, and several filters all apply.
    assert_eq!(
        index
            .search(&SearchQuery::text("", 10).with_facet(Facet::Segment, "VIP"))
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        index
            .search(
                &SearchQuery::text("", 10)
                    .with_facet(Facet::Segment, "vip")
                    .with_facet(Facet::Segment, "new")
            )
            .unwrap()
            .total,
        0
    );
}

#[test]
fn limits_and_ties_are_deterministic() {
    let fixture = Fixture::new();
    let index = population(&fixture);

    let everyone = index.search(&SearchQuery::text("", 5)).unwrap();
    assert_eq!(everyone.total, PEOPLE.len());
    assert_eq!(
        everyone
            .hits
            .iter()
            .map(|hit| hit.pseudonym)
            .collect::<Vec<_>>(),
        (1..=5).map(pseudonym).collect::<Vec<_>>()
    );

    // "example" is in every e-mail; scores tie in groups, which come in pseudonym order.
    let hits = index.search(&SearchQuery::text("example", 100)).unwrap();
    assert_eq!(hits.total, PEOPLE.len());
    for pair in hits.hits.windows(2) {
        assert!(
            pair[0].score > pair[1].score
                || (pair[0].score == pair[1].score && pair[0].pseudonym < pair[1].pseudonym),
            "{pair:?}"
        );
    }
    // A smaller limit gives a prefix of the same order.
    let top = index.search(&SearchQuery::text("example", 7)).unwrap();
    assert_eq!(top.hits, hits.hits[..7]);

    // A zero limit still counts.
    let counted = index.search(&SearchQuery::text("berlin", 0)).unwrap();
    assert!(counted.hits.is_empty());
    assert_eq!(counted.total, 3);
}
