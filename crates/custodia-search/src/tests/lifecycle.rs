//! The index over time: the watermark survives reopening, upserts replace, removals and writes
//! show at commit, tenants do not see each other's terms, and nothing personal is printed.

use super::{Fixture, found, pseudonym};
use crate::{Facet, SearchDoc, SearchError, SearchIndex, SearchQuery, TextField, generate};

fn named(n: u8, name: &str) -> SearchDoc {
    SearchDoc::new(pseudonym(n)).with_text(TextField::Name, name)
}

#[test]
fn watermark_survives_reopening() {
    let fixture = Fixture::new();
    let index = fixture.open();
    assert_eq!(index.watermark(), 0);
    assert!(index.is_empty());
    index.upsert(&named(1, "Anna Müller")).unwrap();
    index.commit(42).unwrap();
    assert_eq!(index.watermark(), 42);
    drop(index);

    let index = fixture.open();
    assert_eq!(index.watermark(), 42);
    assert_eq!(found(&index, "anna"), [pseudonym(1)]);
    // A commit with nothing new still records the watermark.
    index.commit(43).unwrap();
    drop(index);
    assert_eq!(fixture.open().watermark(), 43);
}

#[test]
fn upsert_replaces_the_subjects_document() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.upsert(&named(1, "Anna Müller")).unwrap();
    index.upsert(&named(2, "Jonas Weber")).unwrap();
    index.commit(1).unwrap();
    index.upsert(&named(1, "Anna Schmidt")).unwrap();
    // Not visible before the commit.
    assert_eq!(found(&index, "müller"), [pseudonym(1)]);
    index.commit(2).unwrap();
    assert!(found(&index, "müller").is_empty());
    assert_eq!(found(&index, "schmidt"), [pseudonym(1)]);
    assert_eq!(found(&index, "anna"), [pseudonym(1)]);
    assert_eq!(index.len(), 2);

    // Twice within one commit: the last one wins.
    index.upsert(&named(2, "Jonas Fischer")).unwrap();
    index.upsert(&named(2, "Jonas Becker")).unwrap();
    index.commit(3).unwrap();
    assert!(found(&index, "fischer").is_empty());
    assert_eq!(found(&index, "becker"), [pseudonym(2)]);
    assert_eq!(index.len(), 2);
}

#[test]
fn remove_takes_effect_at_commit() {
    let fixture = Fixture::new();
    let index = fixture.open();
    index.upsert(&named(1, "Anna Müller")).unwrap();
    index.upsert(&named(2, "Anna Weber")).unwrap();
    index.commit(1).unwrap();
    index.remove(pseudonym(1)).unwrap();
    // Removing a subject that has no document is fine.
    index.remove(pseudonym(9)).unwrap();
    assert_eq!(index.len(), 2);
    index.commit(2).unwrap();
    assert_eq!(found(&index, "anna"), [pseudonym(2)]);
    assert_eq!(index.len(), 1);
}

#[test]
fn another_tenants_key_finds_nothing() {
    let acme = Fixture::for_tenant("acme");
    let index = acme.open();
    index
        .upsert(&named(1, "Anna Müller").with_facet(Facet::Tier, "gold"))
        .unwrap();
    index.commit(1).unwrap();
    drop(index);

    // The same files, hashed with another tenant's search key.
    let globex = Fixture::for_tenant("globex");
    let index = SearchIndex::open(acme.dir(), globex.vault.clone()).unwrap();
    assert_eq!(index.len(), 1);
    assert!(found(&index, "anna").is_empty());
    assert!(found(&index, "müller").is_empty());
    // Facets are plain, so they still filter.
    let gold = SearchQuery::text("", 10).with_facet(Facet::Tier, "gold");
    assert_eq!(index.search(&gold).unwrap().total, 1);
}

#[test]
fn an_empty_index_answers() {
    let fixture = Fixture::new();
    let index = fixture.open();
    let results = index.search(&SearchQuery::text("anna", 10)).unwrap();
    assert_eq!(results.total, 0);
    assert!(results.hits.is_empty());
    index.purge(&[pseudonym(1)]).unwrap();
    index.purge(&[]).unwrap();
    assert_eq!(index.watermark(), 0);
}

#[test]
fn nothing_personal_is_printed() {
    let doc = named(1, "Anna Müller").with_facet(Facet::Tier, "gold");
    let printed = format!("{doc:?}");
    assert!(
        !printed.contains("Anna") && !printed.contains("Müller"),
        "{printed}"
    );
    assert!(printed.contains(&pseudonym(1).to_string()));
    let query = SearchQuery::text("Anna Müller", 10);
    let printed = format!("{query:?}");
    assert!(!printed.contains("Anna"), "{printed}");

    let fixture = Fixture::new();
    let index = fixture.open();
    index.upsert(&doc).unwrap();
    index.commit(1).unwrap();
    let printed = format!("{index:?}");
    assert!(!printed.contains("Anna"), "{printed}");

    for err in [
        SearchError::BadWatermark,
        SearchError::MissingPseudonym,
        SearchError::PurgeIncomplete,
        SearchError::WriterUnavailable,
    ] {
        let message = err.to_string();
        assert_eq!(message, message.to_lowercase());
        assert!(!message.ends_with('.'));
    }
}

#[test]
fn a_foreign_payload_is_refused() {
    let fixture = Fixture::new();
    {
        let index = tantivy::Index::open_or_create(
            tantivy::directory::MmapDirectory::open(fixture.dir()).unwrap(),
            crate::index::schema_for_tests(),
        )
        .unwrap();
        let mut writer: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 15_000_000).unwrap();
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload("not a number");
        prepared.commit().unwrap();
    }
    let err = SearchIndex::open(fixture.dir(), fixture.vault.clone()).unwrap_err();
    assert!(matches!(err, SearchError::BadWatermark), "{err:?}");
}

#[test]
fn the_index_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SearchIndex>();
}

#[test]
fn generated_profiles_are_deterministic_and_findable() {
    assert_eq!(generate::profile(7), generate::profile(7));
    assert_ne!(generate::profile(7), generate::profile(8));
    assert_eq!(generate::pseudonym(7), generate::profile(7).pseudonym);
    assert_eq!(generate::query(3, 50, 10), generate::query(3, 50, 10));

    let fixture = Fixture::new();
    let index = fixture.open();
    let population = 200;
    for i in 0..population {
        index.upsert(&generate::profile(i)).unwrap();
    }
    index.commit(population).unwrap();
    assert_eq!(index.num_docs(), population);
    for i in 0..20 {
        let query = generate::query(i, population, 10);
        let results = index.search(&query).unwrap();
        assert!(results.total >= 1, "generated query {i} finds its profile");
    }
}
