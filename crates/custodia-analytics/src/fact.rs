//! The analytics projection: one [`Fact`] per analytically relevant event, holding a pseudonym, a
//! time and a kind with at most an amount, a currency or a score. It has no field for names,
//! contact data, order ids, product names or free text, so no such value can reach analytics.

use custodia_core::{Pseudonym, Timestamp};

use crate::{AnalyticsError, Currency};

/// One event of one subject, reduced to what loyalty analytics needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fact {
    /// The subject, pseudonymized (the only subject identifier analytics ever sees).
    pub pseudonym: Pseudonym,
    /// When the event happened.
    pub time: Timestamp,
    /// What happened, with its amount or score.
    pub kind: FactKind,
}

/// What happened. Amounts are non-negative minor units (cents) of their currency; a refund's
/// amount is what was paid back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FactKind {
    /// `Order Completed`: the order's total.
    Order {
        /// The total in minor units, at least 0.
        amount_minor: i64,
        /// The order's currency.
        currency: Currency,
    },
    /// `Order Refunded`: the amount paid back.
    Refund {
        /// The refunded amount in minor units, at least 0.
        amount_minor: i64,
        /// The refund's currency.
        currency: Currency,
    },
    /// `NPS Answered`: the score, 0–10.
    Nps {
        /// The answer on the 0–10 scale.
        score: u8,
    },
    /// `Product Reviewed`: the rating, 1–5 (the review text never enters the projection).
    Review {
        /// The star rating, 1–5.
        rating: u8,
    },
    /// `Product Viewed`.
    ProductViewed,
    /// `Product Added` (to the cart).
    ProductAdded,
    /// `Checkout Started`.
    CheckoutStarted,
    /// An `identify` call: the subject made itself known.
    Identified,
}

impl FactKind {
    /// Checks that the kind's values are in their domains: amounts at least 0, NPS scores at
    /// most 10, review ratings 1–5.
    ///
    /// # Errors
    /// [`AnalyticsError::OutOfRange`] naming the field.
    #[inline]
    pub fn check(&self) -> Result<(), AnalyticsError> {
        match *self {
            FactKind::Order { amount_minor, .. } | FactKind::Refund { amount_minor, .. }
                if amount_minor < 0 =>
            {
                Err(AnalyticsError::OutOfRange { what: "amount" })
            }
            FactKind::Nps { score } if score > 10 => {
                Err(AnalyticsError::OutOfRange { what: "nps score" })
            }
            FactKind::Review { rating } if !(1..=5).contains(&rating) => {
                Err(AnalyticsError::OutOfRange {
                    what: "review rating",
                })
            }
            _ => Ok(()),
        }
    }

    /// The tag byte of the kind in the binary encoding.
    fn tag(&self) -> u8 {
        match self {
            FactKind::Order { .. } => 1,
            FactKind::Refund { .. } => 2,
            FactKind::Nps { .. } => 3,
            FactKind::Review { .. } => 4,
            FactKind::ProductViewed => 5,
            FactKind::ProductAdded => 6,
            FactKind::CheckoutStarted => 7,
            FactKind::Identified => 8,
        }
    }
}

impl Fact {
    /// The current version of the binary encoding, its first byte.
    pub const ENCODING_VERSION: u8 = 1;

    /// The version byte of [`Fact::encode_stored`], the encoding without the pseudonym.
    pub const STORED_ENCODING_VERSION: u8 = 2;

    /// A fact whose kind has been checked with [`FactKind::check`].
    ///
    /// The fields are public, so a fact can also be built directly; the computations skip a fact
    /// whose kind is out of its domain rather than let it distort a figure.
    ///
    /// # Errors
    /// [`AnalyticsError::OutOfRange`] as [`FactKind::check`].
    pub fn new(
        pseudonym: Pseudonym,
        time: Timestamp,
        kind: FactKind,
    ) -> Result<Fact, AnalyticsError> {
        kind.check()?;
        Ok(Fact {
            pseudonym,
            time,
            kind,
        })
    }

    /// The fact in its versioned binary encoding (26 to 37 bytes):
    ///
    /// ```text
    /// version (1 byte, = 1) | pseudonym (16) | time: µs since the epoch (i64 big-endian, 8)
    /// | kind tag (1) | payload
    /// ```
    ///
    /// with tags 1 order and 2 refund (payload: amount in minor units, i64 big-endian, then the
    /// three ASCII bytes of the currency), 3 NPS (payload: score, 1 byte), 4 review (payload:
    /// rating, 1 byte), 5 product viewed, 6 product added, 7 checkout started, 8 identified (no
    /// payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(37);
        bytes.push(Fact::ENCODING_VERSION);
        bytes.extend_from_slice(&self.pseudonym.0);
        bytes.extend_from_slice(&self.time.unix_micros().to_be_bytes());
        bytes.push(self.kind.tag());
        match self.kind {
            FactKind::Order {
                amount_minor,
                currency,
            }
            | FactKind::Refund {
                amount_minor,
                currency,
            } => {
                bytes.extend_from_slice(&amount_minor.to_be_bytes());
                bytes.extend_from_slice(&currency.to_bytes());
            }
            FactKind::Nps { score } => bytes.push(score),
            FactKind::Review { rating } => bytes.push(rating),
            FactKind::ProductViewed
            | FactKind::ProductAdded
            | FactKind::CheckoutStarted
            | FactKind::Identified => {}
        }
        bytes
    }

    /// The fact as the store keeps it, beside its subject's pseudonym (10 to 21 bytes): the
    /// encoding of [`Fact::encode`] without the pseudonym, under version 2:
    ///
    /// ```text
    /// version (1 byte, = 2) | time: µs since the epoch (i64 big-endian, 8) | kind tag (1) | payload
    /// ```
    pub fn encode_stored(&self) -> Vec<u8> {
        let mut bytes = self.encode();
        bytes.drain(1..17);
        bytes[0] = Fact::STORED_ENCODING_VERSION;
        bytes
    }

    /// Reads a fact of `pseudonym` as the store keeps it: written by [`Fact::encode_stored`],
    /// or by [`Fact::encode`] (the projection's first format), whose pseudonym must then be
    /// `pseudonym`.
    ///
    /// # Errors
    /// [`AnalyticsError::CorruptFact`] as [`Fact::decode`], and for a first-format fact of
    /// another pseudonym.
    pub fn decode_stored(pseudonym: Pseudonym, bytes: &[u8]) -> Result<Fact, AnalyticsError> {
        match bytes.split_first() {
            Some((&Fact::STORED_ENCODING_VERSION, rest)) => Fact::decode_body(pseudonym, rest),
            _ => Fact::decode(bytes).and_then(|fact| {
                if fact.pseudonym == pseudonym {
                    Ok(fact)
                } else {
                    Err(AnalyticsError::CorruptFact)
                }
            }),
        }
    }

    /// Reads a fact written by [`Fact::encode`].
    ///
    /// # Errors
    /// [`AnalyticsError::CorruptFact`] for an unknown version or tag, truncated input, trailing
    /// bytes, an invalid currency or a value out of its domain.
    pub fn decode(bytes: &[u8]) -> Result<Fact, AnalyticsError> {
        let mut reader = Reader(bytes);
        if reader.array::<1>()? != [Fact::ENCODING_VERSION] {
            return Err(AnalyticsError::CorruptFact);
        }
        let pseudonym = Pseudonym(reader.array::<16>()?);
        Fact::decode_body(pseudonym, reader.0)
    }

    /// Reads what follows the version byte and the pseudonym in both encodings: the time, the
    /// kind and its payload, and nothing more.
    fn decode_body(pseudonym: Pseudonym, body: &[u8]) -> Result<Fact, AnalyticsError> {
        let mut reader = Reader(body);
        let time = Timestamp::from_unix_micros(i64::from_be_bytes(reader.array::<8>()?));
        let [tag] = reader.array::<1>()?;
        let kind = match tag {
            1 | 2 => {
                let amount_minor = i64::from_be_bytes(reader.array::<8>()?);
                let currency = Currency::from_bytes(reader.array::<3>()?)
                    .map_err(|_| AnalyticsError::CorruptFact)?;
                if tag == 1 {
                    FactKind::Order {
                        amount_minor,
                        currency,
                    }
                } else {
                    FactKind::Refund {
                        amount_minor,
                        currency,
                    }
                }
            }
            3 => FactKind::Nps {
                score: reader.array::<1>()?[0],
            },
            4 => FactKind::Review {
                rating: reader.array::<1>()?[0],
            },
            5 => FactKind::ProductViewed,
            6 => FactKind::ProductAdded,
            7 => FactKind::CheckoutStarted,
            8 => FactKind::Identified,
            _ => return Err(AnalyticsError::CorruptFact),
        };
        if !reader.0.is_empty() {
            return Err(AnalyticsError::CorruptFact);
        }
        Fact::new(pseudonym, time, kind).map_err(|_| AnalyticsError::CorruptFact)
    }
}

/// Reads fixed-size fields off the front of a byte string.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], AnalyticsError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(AnalyticsError::CorruptFact)?;
        self.0 = rest;
        Ok(*head)
    }
}

/// Gathers the facts of each subject, keyed by pseudonym, in pseudonym order (so every result is
/// deterministic), keeping only facts whose kind is in its domain.
///
/// A pseudonym that the input names twice has its facts merged, so no subject is counted twice.
/// The pseudonym of the pair names the subject; each fact's own `pseudonym` field is not read.
pub(crate) fn group_by_subject<'a>(
    facts_by_subject: impl IntoIterator<Item = (Pseudonym, &'a [Fact])>,
) -> std::collections::BTreeMap<Pseudonym, Vec<&'a Fact>> {
    let mut subjects: std::collections::BTreeMap<Pseudonym, Vec<&'a Fact>> =
        std::collections::BTreeMap::new();
    for (pseudonym, facts) in facts_by_subject {
        subjects
            .entry(pseudonym)
            .or_default()
            .extend(facts.iter().filter(|fact| fact.kind.check().is_ok()));
    }
    subjects
}
