//! The access log (P4): every read of a subject's personal data — allowed or refused at the
//! subject — is an entry in the tenant's second Merkle log, `DATA/audit/<tenant>/`, with the
//! same hashing, checkpoints, proofs and offline verification as the consent ledger.
//!
//! An allowed read is appended (and synced) before the data leaves the engine: a read whose log
//! append fails is refused. Concurrent readers share syncs (the log group-commits). An entry names
//! the subject by pseudonym, the purpose and its lawful basis, and in attributes the API key id,
//! its role, the operation, what was read and the result — never the data.

use custodia_core::{ErrorCode, SubjectId, Timestamp};
use custodia_ledger::LedgerEntry;

use crate::ledger::new_entry;
use crate::{Engine, EngineError, ReadGrant};

/// Entry kinds of the access log.
pub mod kind {
    /// Personal data was returned.
    pub const READ: &str = "access.read";
    /// A read was refused by the subject's own rules (consent, restriction, objection).
    pub const REFUSED: &str = "access.refused";
}

impl Engine {
    /// Appends one entry per subject to the access log; durable when it returns.
    pub(crate) fn record_access(
        &self,
        grant: &ReadGrant,
        what: &str,
        subjects: &[SubjectId],
        refused: Option<ErrorCode>,
    ) -> Result<(), EngineError> {
        if subjects.is_empty() || !self.record_reads {
            return Ok(());
        }
        let tenant = grant.tenant();
        let log = self.access_log(tenant)?;
        let keys = self.keys(tenant)?;
        let now = self.clock.now();
        let entries = subjects
            .iter()
            .map(|subject| {
                let entry = access_entry(grant, what, now, keys.pseudonym(*subject), refused);
                entry.validate()?;
                Ok(entry)
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        // A read waits while an online backup holds the write gate: recording it is a write.
        // Concurrent readers' entries are appended together, with one sync (`group`).
        self.append_to_log(tenant, &log, entries)?;
        Ok(())
    }
}

fn access_entry(
    grant: &ReadGrant,
    what: &str,
    time: Timestamp,
    subject: custodia_core::Pseudonym,
    refused: Option<ErrorCode>,
) -> LedgerEntry {
    let kind = if refused.is_some() {
        kind::REFUSED
    } else {
        kind::READ
    };
    let mut entry = new_entry(time, grant.tenant(), kind);
    entry.subject = Some(subject);
    entry.purpose = Some(grant.purpose().clone());
    entry.lawful_basis = Some(grant.basis());
    let attributes = &mut entry.attributes;
    attributes.insert("key_id".to_owned(), grant.key_id().to_string());
    attributes.insert("role".to_owned(), grant.role_name().to_string());
    attributes.insert(
        "operation".to_owned(),
        grant.operation().as_str().to_owned(),
    );
    attributes.insert("what".to_owned(), what.to_owned());
    let result = match refused {
        Some(code) => format!("refused:{code}"),
        None => "allowed".to_owned(),
    };
    attributes.insert("result".to_owned(), result);
    entry
}
