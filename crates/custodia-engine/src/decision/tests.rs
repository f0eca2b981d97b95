//! The access decision as a table: every lawful basis × consent status × restriction × objection,
//! plus the role rules.

use std::collections::BTreeSet;

use custodia_core::{LawfulBasis, Operation};
use custodia_policy::{Purpose, Role};

use super::*;

fn purpose(basis: LawfulBasis) -> Purpose {
    Purpose {
        id: "p".parse().unwrap(),
        name: "P".to_owned(),
        description: String::new(),
        lawful_basis: basis,
        requires_consent: basis == LawfulBasis::Consent,
        categories: vec![],
        recipients: vec![],
        retention_days: None,
        consent_expiry_days: None,
        gpc_opt_out: false,
        search: false,
        translations: Default::default(),
    }
}

fn role(ops: &[Operation], may_use_p: bool) -> Role {
    Role {
        name: "r".parse().unwrap(),
        description: String::new(),
        operations: ops.iter().copied().collect(),
        purposes: if may_use_p {
            ["p".parse().unwrap()].into_iter().collect()
        } else {
            BTreeSet::new()
        },
    }
}

const BASES: [LawfulBasis; 6] = [
    LawfulBasis::Consent,
    LawfulBasis::Contract,
    LawfulBasis::LegalObligation,
    LawfulBasis::VitalInterests,
    LawfulBasis::PublicTask,
    LawfulBasis::LegitimateInterest,
];
const STATUSES: [ConsentStatus; 4] = [
    ConsentStatus::NotSet,
    ConsentStatus::Granted,
    ConsentStatus::Withdrawn,
    ConsentStatus::Expired,
];

/// The expected answer, written independently of `decide` as the table of the module docs.
fn expected(
    basis: LawfulBasis,
    consent: ConsentStatus,
    restricted: bool,
    objected: bool,
) -> Result<(), Refusal> {
    use LawfulBasis::*;
    match (basis, restricted, objected, consent) {
        (LegalObligation, _, _, _) => Ok(()),
        (_, true, _, _) => Err(Refusal::ProcessingRestricted),
        (LegitimateInterest, false, true, _) => Err(Refusal::ObjectionRecorded),
        (Consent, false, _, ConsentStatus::Granted) => Ok(()),
        (Consent, false, _, _) => Err(Refusal::ConsentRequired),
        (Contract | VitalInterests | PublicTask | LegitimateInterest, false, _, _) => Ok(()),
    }
}

#[test]
fn every_basis_consent_and_flag_combination() {
    let reader = role(&[Operation::ReadProfile], true);
    let mut n_cases = 0;
    for basis in BASES {
        let p = purpose(basis);
        for consent in STATUSES {
            for restricted in [false, true] {
                for objected in [false, true] {
                    let flags = SubjectFlags {
                        restricted,
                        objected,
                    };
                    let got = decide(&reader, Operation::ReadProfile, &p, consent, flags);
                    assert_eq!(
                        got,
                        expected(basis, consent, restricted, objected),
                        "{basis:?} {consent:?} restricted={restricted} objected={objected}"
                    );
                    n_cases += 1;
                }
            }
        }
    }
    assert_eq!(n_cases, 6 * 4 * 2 * 2);
}

#[test]
fn role_rules_come_first() {
    let p = purpose(LawfulBasis::Consent);
    let flags = SubjectFlags {
        restricted: true,
        objected: true,
    };
    let no_op = role(&[Operation::Search], true);
    assert_eq!(
        decide(
            &no_op,
            Operation::ReadProfile,
            &p,
            ConsentStatus::NotSet,
            flags
        ),
        Err(Refusal::RoleNotPermitted)
    );
    let no_purpose = role(&[Operation::ReadProfile], false);
    assert_eq!(
        decide(
            &no_purpose,
            Operation::ReadProfile,
            &p,
            ConsentStatus::Granted,
            flags
        ),
        Err(Refusal::PurposeNotPermitted)
    );
    assert_eq!(
        decide_caller(&no_purpose, Operation::ReadProfile, &p),
        Err(Refusal::PurposeNotPermitted)
    );
    assert_eq!(
        decide_caller(
            &role(&[Operation::ReadProfile], true),
            Operation::ReadProfile,
            &p
        ),
        Ok(())
    );
}

#[test]
fn refusals_map_to_the_api_codes() {
    assert_eq!(Refusal::ConsentRequired.code().as_str(), "consent_required");
    assert_eq!(
        Refusal::ProcessingRestricted.code().as_str(),
        "processing_restricted"
    );
    assert_eq!(
        Refusal::ObjectionRecorded.code().as_str(),
        "objection_recorded"
    );
    assert_eq!(
        Refusal::PurposeNotPermitted.code().as_str(),
        "purpose_not_permitted"
    );
    assert_eq!(
        Refusal::RoleNotPermitted.code().as_str(),
        "role_not_permitted"
    );
}
