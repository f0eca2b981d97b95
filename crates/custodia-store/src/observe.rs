//! What a write changed in the records an in-memory copy follows (the analytics projection, the
//! consent view, the subject flags), told to an observer once the write has applied.

use custodia_core::{EventId, Pseudonym, PurposeId, TenantId, Timestamp};

use crate::{ConsentState, SubjectFlagsRecord};

/// One change a write made that an observer may mirror. Fact bytes are the engine's own
/// encoding, as stored; no change carries personal data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProjectionChange {
    /// A fact was stored (or replaced) under `(tenant, subject, event)`.
    PutFact {
        /// The tenant.
        tenant: TenantId,
        /// The subject's pseudonym.
        subject: Pseudonym,
        /// The event the fact comes from.
        event: EventId,
        /// The fact, encoded.
        fact: Vec<u8>,
    },
    /// A fact was deleted.
    DeleteFact {
        /// The tenant.
        tenant: TenantId,
        /// The subject's pseudonym.
        subject: Pseudonym,
        /// The event the fact came from.
        event: EventId,
    },
    /// A subject's current consent to a purpose was set.
    Consent {
        /// The tenant.
        tenant: TenantId,
        /// The subject's pseudonym.
        subject: Pseudonym,
        /// The purpose.
        purpose: PurposeId,
        /// The latest decision.
        state: ConsentState,
        /// When it was made.
        since: Timestamp,
    },
    /// A subject's flags were set (all clear included).
    Flags {
        /// The tenant.
        tenant: TenantId,
        /// The subject's pseudonym.
        subject: Pseudonym,
        /// The flags.
        flags: SubjectFlagsRecord,
    },
}

/// Told of every write's [`ProjectionChange`]s right after the write applied, in the order the
/// writes applied (the store holds one lock across applying a batch that has changes and
/// telling the observer, so an observer never sees two writes in another order than the
/// store). It must not write to the store, and should be quick: writes wait for it.
pub trait WriteObserver: Send + Sync {
    /// The changes of one applied write, in the order the batch made them.
    fn applied(&self, changes: &[ProjectionChange]);
}
