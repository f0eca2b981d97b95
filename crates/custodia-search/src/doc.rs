//! What goes into the index and what comes out: searchable fields, facets, documents, queries and
//! results. Plaintext lives here only in memory, on its way to being hashed.

use std::fmt;

use custodia_core::Pseudonym;
use zeroize::Zeroize;

/// A searchable personal-data field. Its words enter the index only as keyed hashes bound to the
/// field's name, so the same word in two fields gives two unrelated terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TextField {
    /// The person's name: `name`, `firstName`, `lastName`.
    Name,
    /// An e-mail address: the words of its local part and of its domain.
    Email,
    /// A phone number: its digit groups, and all of them joined.
    Phone,
    /// A city.
    City,
    /// A postal address other than the city.
    Address,
    /// Any other free-text trait.
    Note,
    /// An order id, from events.
    OrderId,
}

impl TextField {
    /// Every text field, in a fixed order.
    pub const ALL: [TextField; 7] = [
        TextField::Name,
        TextField::Email,
        TextField::Phone,
        TextField::City,
        TextField::Address,
        TextField::Note,
        TextField::OrderId,
    ];

    /// The stable name bound into the field's whole-word terms. Changing it means rebuilding
    /// every index.
    pub fn as_str(self) -> &'static str {
        match self {
            TextField::Name => "name",
            TextField::Email => "email",
            TextField::Phone => "phone",
            TextField::City => "city",
            TextField::Address => "address",
            TextField::Note => "note",
            TextField::OrderId => "order_id",
        }
    }

    /// The stable name bound into the field's prefix terms: `"<as_str>/prefix"`.
    pub fn prefix_name(self) -> &'static str {
        match self {
            TextField::Name => "name/prefix",
            TextField::Email => "email/prefix",
            TextField::Phone => "phone/prefix",
            TextField::City => "city/prefix",
            TextField::Address => "address/prefix",
            TextField::Note => "note/prefix",
            TextField::OrderId => "order_id/prefix",
        }
    }
}

/// A non-personal facet, indexed in plain text for exact filtering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Facet {
    /// A marketing segment.
    Segment,
    /// A loyalty or pricing tier.
    Tier,
    /// A journey stage.
    Stage,
    /// A country code.
    Country,
    /// A purpose id the subject has granted consent for; multi-valued.
    ConsentGranted,
}

impl Facet {
    /// Every facet, in a fixed order.
    pub const ALL: [Facet; 5] = [
        Facet::Segment,
        Facet::Tier,
        Facet::Stage,
        Facet::Country,
        Facet::ConsentGranted,
    ];

    /// The stable name of the facet; also the name of its index field.
    pub fn as_str(self) -> &'static str {
        match self {
            Facet::Segment => "segment",
            Facet::Tier => "tier",
            Facet::Stage => "stage",
            Facet::Country => "country",
            Facet::ConsentGranted => "consent_granted",
        }
    }
}

/// One subject's searchable document. Indexing it replaces the subject's previous document.
///
/// The text is personal data: `Debug` does not print it, and it is wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchDoc {
    /// The subject.
    pub pseudonym: Pseudonym,
    /// Personal-data text by field; a field may appear several times.
    pub text: Vec<(TextField, String)>,
    /// Non-personal facet values; a facet may appear several times (multi-valued).
    pub facets: Vec<(Facet, String)>,
}

impl SearchDoc {
    /// A document with no text and no facets.
    pub fn new(pseudonym: Pseudonym) -> SearchDoc {
        SearchDoc {
            pseudonym,
            text: Vec::new(),
            facets: Vec::new(),
        }
    }

    /// Adds a text value.
    #[must_use]
    pub fn with_text(mut self, field: TextField, value: impl Into<String>) -> SearchDoc {
        self.text.push((field, value.into()));
        self
    }

    /// Adds a facet value.
    #[must_use]
    pub fn with_facet(mut self, facet: Facet, value: impl Into<String>) -> SearchDoc {
        self.facets.push((facet, value.into()));
        self
    }
}

impl fmt::Debug for SearchDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchDoc")
            .field("pseudonym", &self.pseudonym)
            .field(
                "text",
                &format_args!("[{} values redacted]", self.text.len()),
            )
            .field("facets", &self.facets)
            .finish()
    }
}

impl Drop for SearchDoc {
    fn drop(&mut self) {
        for (_, value) in &mut self.text {
            value.zeroize();
        }
    }
}

/// A search: words to match and facet filters.
///
/// The text is personal data (it is what someone typed to find a person): `Debug` does not print
/// it, and it is wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The words, normalized like indexed text. Every word but the last must match a whole token
    /// of some text field; the last matches a whole token or the start of one. Empty text
    /// matches every document (then only the facets filter).
    pub text: String,
    /// Exact facet values that every hit must have.
    pub facets: Vec<(Facet, String)>,
    /// Most hits returned; capped at [`MAX_LIMIT`](crate::MAX_LIMIT). Zero returns only the
    /// total.
    pub limit: usize,
}

impl SearchQuery {
    /// A query for `text` with no facet filter, returning at most `limit` hits.
    pub fn text(text: impl Into<String>, limit: usize) -> SearchQuery {
        SearchQuery {
            text: text.into(),
            facets: Vec::new(),
            limit,
        }
    }

    /// Adds a facet filter.
    #[must_use]
    pub fn with_facet(mut self, facet: Facet, value: impl Into<String>) -> SearchQuery {
        self.facets.push((facet, value.into()));
        self
    }
}

impl fmt::Debug for SearchQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchQuery")
            .field("text", &"[redacted]")
            .field("facets", &self.facets)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Drop for SearchQuery {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

/// One matching subject.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SearchHit {
    /// The subject.
    pub pseudonym: Pseudonym,
    /// Its BM25 relevance; 0 for a filter-only query.
    pub score: f32,
}

/// The best hits of a search, best first (ties by ascending pseudonym), and how many documents
/// matched in all.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResults {
    /// At most `limit` hits.
    pub hits: Vec<SearchHit>,
    /// The number of matching documents, beyond `limit` too.
    pub total: usize,
}
