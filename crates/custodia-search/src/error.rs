//! The search crate's one error type. Messages name what failed, never a word, term or facet
//! value.

/// Why a search-index operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SearchError {
    /// The index directory could not be created.
    #[error("search index directory could not be created")]
    Directory(#[source] std::io::Error),
    /// The index engine failed: I/O, a corrupt segment, a schema that does not match this
    /// version, or an exhausted writer.
    #[error("search index operation failed")]
    Index(#[from] tantivy::TantivyError),
    /// The last commit's payload is not a watermark: the directory holds some other index.
    #[error("search index commit payload is not a watermark")]
    BadWatermark,
    /// A matching document has no pseudonym: the index is corrupt.
    #[error("search index document has no pseudonym")]
    MissingPseudonym,
    /// A purge could not make sure that the subjects left the disk: a segment still holds one
    /// of them, or an obsolete file could not be deleted. Retrying the purge is safe.
    #[error("search index purge could not remove every file of the purged subjects")]
    PurgeIncomplete,
    /// An earlier failure (a panic while writing, or a failed purge) left the index without a
    /// writer; reopen the index to continue.
    #[error("search index writer is unavailable after an earlier failure")]
    WriterUnavailable,
}
