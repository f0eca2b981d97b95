//! `SearchIndex`: one tenant's tantivy index of keyed-hash terms, its writer, its reader, and the
//! commit, watermark and purge protocol around them.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use custodia_core::Pseudonym;
use custodia_vault::TenantVault;
use tantivy::collector::sort_key::{SortBySimilarityScore, SortByString};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{
    FAST, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, TantivyError, Term,
};
use zeroize::Zeroizing;

use crate::normalize::{MAX_TOKENS_PER_FIELD, field_tokens, prefixes, query_prefix, query_words};
use crate::{Facet, SearchDoc, SearchError, SearchHit, SearchQuery, SearchResults, TextField};

/// Most hits one search returns, whatever its `limit`.
pub const MAX_LIMIT: usize = 10_000;

/// How much more a whole-word match of the last query word weighs than a prefix match.
const WHOLE_WORD_BOOST: f32 = 2.0;

/// Indexing threads of the writer. Hashing, the costly part of indexing a document, happens in
/// the caller's thread before the writer sees it; one thread also means one new segment per
/// commit rather than one per thread.
const WRITER_THREADS: usize = 1;

/// Memory the writer buffers before it flushes a segment (tantivy wants at least 15 MB per
/// thread).
const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// Index field names. Whole-word terms of every text field share one field (the text field's
/// name is bound into each hash), prefix terms another; each facet has a field of its own.
const PSEUDONYM: &str = "pseudonym";
const WORDS: &str = "words";
const PREFIXES: &str = "prefixes";

/// One tenant's search index. Shared as `Arc<SearchIndex>`: every method takes `&self`; writes
/// are serialized on one writer, searches run concurrently on one reader.
///
/// Writes become visible to [`search`](SearchIndex::search) and durable together, at
/// [`commit`](SearchIndex::commit).
pub struct SearchIndex {
    vault: Arc<TenantVault>,
    index: Index,
    fields: Fields,
    /// `None` only after a failure left no writer (see [`SearchError::WriterUnavailable`]).
    writer: Mutex<Option<IndexWriter>>,
    reader: IndexReader,
    /// The watermark of the last commit; written under the writer lock.
    watermark: AtomicU64,
}

// `Fields::facet` and the per-field token counts index arrays by discriminant, in `ALL` order.
const _: () = {
    let mut idx = 0;
    while idx < Facet::ALL.len() {
        assert!(Facet::ALL[idx] as usize == idx);
        idx += 1;
    }
    let mut idx = 0;
    while idx < TextField::ALL.len() {
        assert!(TextField::ALL[idx] as usize == idx);
        idx += 1;
    }
};

/// The fields of the index schema.
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    /// The pseudonym as 32 lower-case hex characters: the delete key, the only stored value,
    /// and a fast column that breaks score ties and names hits without reading the store.
    pub(crate) pseudonym: Field,
    /// Keyed hashes of whole tokens, as hex.
    pub(crate) words: Field,
    /// Keyed hashes of token prefixes, as hex.
    pub(crate) prefixes: Field,
    /// One plain, untokenized field per facet, in [`Facet::ALL`] order.
    facets: [Field; Facet::ALL.len()],
}

impl Fields {
    fn schema() -> Schema {
        let mut builder = Schema::builder();
        builder.add_text_field(PSEUDONYM, STRING | STORED | FAST);
        // Each hex term is one value of the field, kept whole by the raw tokenizer; term
        // frequencies and field lengths feed BM25, positions are not needed.
        let hashed = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        builder.add_text_field(WORDS, hashed.clone());
        builder.add_text_field(PREFIXES, hashed);
        for facet in Facet::ALL {
            builder.add_text_field(facet.as_str(), STRING);
        }
        builder.build()
    }

    fn resolve(schema: &Schema) -> Result<Fields, TantivyError> {
        let mut facets = [Field::from_field_id(0); Facet::ALL.len()];
        for (slot, facet) in facets.iter_mut().zip(Facet::ALL) {
            *slot = schema.get_field(facet.as_str())?;
        }
        Ok(Fields {
            pseudonym: schema.get_field(PSEUDONYM)?,
            words: schema.get_field(WORDS)?,
            prefixes: schema.get_field(PREFIXES)?,
            facets,
        })
    }

    fn facet(&self, facet: Facet) -> Field {
        self.facets[facet as usize]
    }
}

/// The hashed terms of one document, as they are indexed.
pub(crate) struct DocTerms {
    pub(crate) words: Vec<String>,
    pub(crate) prefixes: Vec<String>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if needed.
    ///
    /// `vault` is the tenant's: its search key hashes every term, so an index opened with another
    /// tenant's vault finds nothing.
    pub fn open(dir: &Path, vault: Arc<TenantVault>) -> Result<SearchIndex, SearchError> {
        std::fs::create_dir_all(dir).map_err(SearchError::Directory)?;
        let directory = MmapDirectory::open(dir).map_err(TantivyError::from)?;
        let index = Index::open_or_create(directory, Fields::schema())?;
        let fields = Fields::resolve(&index.schema())?;
        let watermark = match index.load_metas()?.payload {
            None => 0,
            Some(payload) => payload.parse().map_err(|_| SearchError::BadWatermark)?,
        };
        let writer = new_writer(&index)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            vault,
            index,
            fields,
            writer: Mutex::new(Some(writer)),
            reader,
            watermark: AtomicU64::new(watermark),
        })
    }

    /// Indexes `doc`, replacing the subject's previous document. Visible after the next commit.
    ///
    /// The replaced document's terms stay in its segment, marked deleted, until that segment is
    /// merged; erasure must use [`purge`](SearchIndex::purge), which compacts them away.
    pub fn upsert(&self, doc: &SearchDoc) -> Result<(), SearchError> {
        let document = self.document(doc);
        let guard = self.lock_writer()?;
        let writer = guard.as_ref().ok_or(SearchError::WriterUnavailable)?;
        writer.delete_term(self.pseudonym_term(doc.pseudonym));
        writer.add_document(document)?;
        Ok(())
    }

    /// Removes the subject's document, if any. Visible after the next commit; like
    /// [`upsert`](SearchIndex::upsert), it leaves the terms on disk until a merge.
    pub fn remove(&self, pseudonym: Pseudonym) -> Result<(), SearchError> {
        let guard = self.lock_writer()?;
        let writer = guard.as_ref().ok_or(SearchError::WriterUnavailable)?;
        writer.delete_term(self.pseudonym_term(pseudonym));
        Ok(())
    }

    /// Makes every write so far durable and visible, and records `watermark` (the position in
    /// the store that the index now reflects) in the same commit.
    pub fn commit(&self, watermark: u64) -> Result<(), SearchError> {
        let mut guard = self.lock_writer()?;
        let writer = guard.as_mut().ok_or(SearchError::WriterUnavailable)?;
        commit_with_watermark(writer, watermark)?;
        self.watermark.store(watermark, Ordering::Release);
        self.reader.reload()?;
        Ok(())
    }

    /// The watermark of the last commit; 0 for a new index. After a crash, the writes after it
    /// must be indexed again (upserts are idempotent).
    pub fn watermark(&self) -> u64 {
        self.watermark.load(Ordering::Acquire)
    }

    /// Erases subjects from the index and from the disk: [`delete`](SearchIndex::delete), then
    /// [`compact`](SearchIndex::compact).
    ///
    /// Afterwards no index file contains a term that only these subjects had, or their
    /// pseudonyms; [`SearchError::PurgeIncomplete`] if a check of that fails.
    ///
    /// Purging an empty list only commits.
    pub fn purge(&self, pseudonyms: &[Pseudonym]) -> Result<(), SearchError> {
        self.delete(pseudonyms)?;
        self.compact(pseudonyms)
    }

    /// Deletes subjects' documents and commits (with the current watermark, along with any other
    /// pending writes): from the return on, no search finds them. Their terms stay in the segment
    /// files until [`compact`](SearchIndex::compact) rewrites those.
    pub fn delete(&self, pseudonyms: &[Pseudonym]) -> Result<(), SearchError> {
        let mut guard = self.lock_writer()?;
        let writer = guard.as_mut().ok_or(SearchError::WriterUnavailable)?;
        for &pseudonym in pseudonyms {
            writer.delete_term(self.pseudonym_term(pseudonym));
        }
        commit_with_watermark(writer, self.watermark())?;
        self.reader.reload()?;
        Ok(())
    }

    /// Removes deleted subjects' terms from the disk: waits for running merges, rewrites every
    /// segment that held a document of theirs — current or replaced — without it, and deletes
    /// the files no longer in use. A subject whose document is still live is not removed by this
    /// (delete it first). A search running meanwhile keeps reading the old segments it opened:
    /// their files are unlinked at once, and the file system frees their blocks when it ends.
    pub fn compact(&self, pseudonyms: &[Pseudonym]) -> Result<(), SearchError> {
        let mut guard = self.lock_writer()?;
        let writer = guard.take().ok_or(SearchError::WriterUnavailable)?;
        // A merge that was already running would hand back a segment with the deleted documents
        // still in it, and segments in a merge cannot be merged again: let every merge finish.
        // That consumes the writer, so a fresh one takes its place.
        let waited = writer.wait_merging_threads();
        let mut writer = new_writer(&self.index)?;
        let result = waited
            .map_err(SearchError::from)
            .and_then(|()| self.compact_segments(&mut writer, pseudonyms));
        *guard = Some(writer);
        result
    }

    /// Searches. See [`SearchQuery`] for the matching rules; hits come best first (BM25), ties
    /// by ascending pseudonym.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        let tantivy_query = self.query(query);
        let searcher = self.reader.searcher();
        let limit = query.limit.min(MAX_LIMIT);
        if limit == 0 {
            let total = searcher.search(&tantivy_query, &Count)?;
            return Ok(SearchResults {
                hits: Vec::new(),
                total,
            });
        }
        // Ties on the score go to the lower pseudonym, read from the pseudonym's fast column.
        let top = TopDocs::with_limit(limit).order_by((
            SortBySimilarityScore,
            (SortByString::for_field(PSEUDONYM), Order::Asc),
        ));
        let (top, total) = searcher.search(&tantivy_query, &(top, Count))?;
        let hits = top
            .into_iter()
            .map(|((score, pseudonym), _)| {
                let pseudonym = pseudonym
                    .and_then(|hex| hex.parse().ok())
                    .ok_or(SearchError::MissingPseudonym)?;
                Ok(SearchHit { pseudonym, score })
            })
            .collect::<Result<_, SearchError>>()?;
        Ok(SearchResults { hits, total })
    }

    /// The number of documents visible to search (as of the last commit).
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// [`num_docs`](SearchIndex::num_docs) as a `usize`.
    pub fn len(&self) -> usize {
        usize::try_from(self.num_docs()).unwrap_or(usize::MAX)
    }

    /// Whether no document is visible to search.
    pub fn is_empty(&self) -> bool {
        self.num_docs() == 0
    }

    /// Makes search see the last commit. [`commit`](SearchIndex::commit) and
    /// [`purge`](SearchIndex::purge) already do this; it is only needed if another process
    /// wrote the directory.
    pub fn reload(&self) -> Result<(), SearchError> {
        self.reader.reload()?;
        Ok(())
    }

    /// The hashed terms of `doc`: for each token `t` of text field `F`, `hex(search_token(F, t))`
    /// and, for each prefix `p` of `t`, `hex(search_token("F/prefix", p))`.
    pub(crate) fn doc_terms(&self, doc: &SearchDoc) -> DocTerms {
        let mut terms = DocTerms {
            words: Vec::new(),
            prefixes: Vec::new(),
        };
        let mut n_tokens = [0usize; TextField::ALL.len()];
        for (field, value) in &doc.text {
            let tokens = Zeroizing::new(field_tokens(*field, value));
            let n_field_tokens = &mut n_tokens[*field as usize];
            for token in tokens.iter() {
                if *n_field_tokens == MAX_TOKENS_PER_FIELD {
                    break;
                }
                *n_field_tokens += 1;
                terms.words.push(self.hashed(field.as_str(), token));
                for prefix in prefixes(token) {
                    terms
                        .prefixes
                        .push(self.hashed(field.prefix_name(), prefix));
                }
            }
        }
        terms
    }

    /// The tantivy document for `doc`: the pseudonym, the hashed terms, the facets.
    fn document(&self, doc: &SearchDoc) -> TantivyDocument {
        let terms = self.doc_terms(doc);
        let mut document = TantivyDocument::default();
        document.add_text(self.fields.pseudonym, doc.pseudonym.to_string());
        for word in &terms.words {
            document.add_text(self.fields.words, word);
        }
        for prefix in &terms.prefixes {
            document.add_text(self.fields.prefixes, prefix);
        }
        for (facet, value) in &doc.facets {
            document.add_text(self.fields.facet(*facet), value);
        }
        document
    }

    /// The tantivy query for `query`: every word a `Must` clause, each an OR over the text
    /// fields; the facets `Must` clauses that add nothing to the score.
    fn query(&self, query: &SearchQuery) -> BooleanQuery {
        let words = Zeroizing::new(query_words(&query.text));
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some((last, leading)) = words.split_last() {
            for word in leading {
                clauses.push((Occur::Must, Box::new(self.whole_word_query(word))));
            }
            clauses.push((Occur::Must, Box::new(self.last_word_query(last))));
        }
        for (facet, value) in &query.facets {
            let term = Term::from_field_text(self.fields.facet(*facet), value);
            let filter = TermQuery::new(term, IndexRecordOption::Basic);
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(filter), 0.0)),
            ));
        }
        if clauses.is_empty() {
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(AllQuery), 0.0)),
            ));
        }
        BooleanQuery::new(clauses)
    }

    /// Matches `word` as a whole token of any text field.
    fn whole_word_query(&self, word: &str) -> BooleanQuery {
        BooleanQuery::new(
            TextField::ALL
                .into_iter()
                .map(|field| {
                    let query: Box<dyn Query> =
                        Box::new(self.term_query(self.fields.words, field.as_str(), word));
                    (Occur::Should, query)
                })
                .collect(),
        )
    }

    /// Matches `word` as a whole token (boosted) or as the start of a longer token, in any text
    /// field.
    fn last_word_query(&self, word: &str) -> BooleanQuery {
        let prefix = query_prefix(word);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for field in TextField::ALL {
            let whole = self.term_query(self.fields.words, field.as_str(), word);
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(whole), WHOLE_WORD_BOOST)),
            ));
            let start = self.term_query(self.fields.prefixes, field.prefix_name(), prefix);
            clauses.push((Occur::Should, Box::new(start)));
        }
        BooleanQuery::new(clauses)
    }

    fn term_query(&self, index_field: Field, name: &str, token: &str) -> TermQuery {
        let term = Term::from_field_text(index_field, &self.hashed(name, token));
        TermQuery::new(term, IndexRecordOption::WithFreqs)
    }

    /// `hex(search_token(name, token))`: the form in which a token enters the index.
    fn hashed(&self, name: &str, token: &str) -> String {
        hex::encode(self.vault.search_token(name, token).0)
    }

    fn pseudonym_term(&self, pseudonym: Pseudonym) -> Term {
        Term::from_field_text(self.fields.pseudonym, &pseudonym.to_string())
    }

    fn lock_writer(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>, SearchError> {
        // A panic while the lock was held may have left a subject half-written: refuse to go on.
        self.writer
            .lock()
            .map_err(|_| SearchError::WriterUnavailable)
    }

    /// The second half of [`purge`](SearchIndex::purge), with the deletes committed and no merge
    /// running: rewrites the segments that hold any of `pseudonyms` and collects the garbage.
    fn compact_segments(
        &self,
        writer: &mut IndexWriter,
        pseudonyms: &[Pseudonym],
    ) -> Result<(), SearchError> {
        self.reader.reload()?;
        let targets = self.segments_holding(pseudonyms)?;
        if !targets.is_empty() {
            // Merging drops deleted documents, and with them every term no live document has.
            writer.merge(&targets).wait()?;
        }
        self.reader.reload()?;
        if !self.segments_holding(pseudonyms)?.is_empty() {
            return Err(SearchError::PurgeIncomplete);
        }
        // The merge already collected the garbage; this catches a deletion that failed then.
        let collected = writer.garbage_collect_files().wait()?;
        if !collected.failed_to_delete_files.is_empty() {
            return Err(SearchError::PurgeIncomplete);
        }
        Ok(())
    }

    /// The searchable segments whose pseudonym field has a term of `pseudonyms`, deleted or not.
    fn segments_holding(&self, pseudonyms: &[Pseudonym]) -> Result<Vec<SegmentId>, SearchError> {
        let searcher = self.reader.searcher();
        let terms: Vec<Term> = pseudonyms.iter().map(|&p| self.pseudonym_term(p)).collect();
        let mut holding = Vec::new();
        for segment in searcher.segment_readers() {
            let inverted_index = segment.inverted_index(self.fields.pseudonym)?;
            for term in &terms {
                // The term dictionary still lists terms whose documents are all deleted.
                if inverted_index.doc_freq(term).map_err(TantivyError::from)? > 0 {
                    holding.push(segment.segment_id());
                    break;
                }
            }
        }
        Ok(holding)
    }
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex")
            .field("tenant", self.vault.tenant())
            .field("num_docs", &self.num_docs())
            .field("watermark", &self.watermark())
            .finish_non_exhaustive()
    }
}

fn new_writer(index: &Index) -> Result<IndexWriter, SearchError> {
    Ok(index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES)?)
}

/// Commits with the watermark as tantivy's commit payload, which tantivy writes into `meta.json`
/// atomically with the segment list and carries over when a merge rewrites `meta.json`.
fn commit_with_watermark(writer: &mut IndexWriter, watermark: u64) -> Result<(), SearchError> {
    let mut prepared = writer.prepare_commit()?;
    prepared.set_payload(&watermark.to_string());
    prepared.commit()?;
    Ok(())
}

/// The index schema, for tests that write an index behind the crate's back.
#[cfg(test)]
pub(crate) fn schema_for_tests() -> Schema {
    Fields::schema()
}
