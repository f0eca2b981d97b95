//! Unit tests: the default policies load and say what api.md promises, bad policies fail with the
//! right file, line, column and message, and the look-ups answer as documented.

use std::path::{Path, PathBuf};

use custodia_core::{ErrorCode, LawfulBasis, Operation, PurposeId, RoleName};

use super::*;
use crate::error::line_column;

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn purpose_id(id: &str) -> PurposeId {
    id.parse().unwrap()
}

fn role_name(name: &str) -> RoleName {
    name.parse().unwrap()
}

/// The built-in files, with `name` replaced by `text`, or added if it is not one of them.
fn builtin_with<'a>(name: &'a str, text: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut files: Vec<(&str, &str)> = BUILTIN_FILES.to_vec();
    match files.iter_mut().find(|(known, _)| *known == name) {
        Some(file) => file.1 = text,
        None => files.push((name, text)),
    }
    files
}

#[test]
fn builtin_policies_load() {
    let policies = Policies::builtin();
    assert_eq!(policies.version(), "2026-12-07.2");
    assert_eq!(policies.controller().name, "Example Shop GmbH");
    assert_eq!(policies.controller().contact, "privacy@example.com");
    assert_eq!(policies.rights().len(), 7);
}

#[test]
fn policies_directory_validates_and_matches_builtin() {
    let from_dir = Policies::load_dir(&policies_dir()).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        from_dir.canonical_bytes(),
        Policies::builtin().canonical_bytes()
    );
    assert_eq!(from_dir.version(), Policies::builtin().version());
}

#[test]
fn default_purposes_are_the_ones_api_md_promises() {
    let policies = Policies::builtin();
    let expected = [
        ("order_fulfillment", LawfulBasis::Contract),
        ("customer_support", LawfulBasis::Contract),
        ("fraud_prevention", LawfulBasis::LegitimateInterest),
        ("accounting", LawfulBasis::LegalObligation),
        ("marketing_email", LawfulBasis::Consent),
        ("personalization", LawfulBasis::Consent),
        ("analytics", LawfulBasis::Consent),
        ("third_party_sharing", LawfulBasis::Consent),
    ];
    for (id, basis) in expected {
        let purpose = policies.purpose(&purpose_id(id)).unwrap();
        assert_eq!(purpose.lawful_basis, basis, "{id}");
        assert_eq!(
            purpose.requires_consent,
            basis == LawfulBasis::Consent,
            "{id}"
        );
    }
    let searchable: Vec<&str> = policies
        .purposes()
        .iter()
        .filter(|p| p.search)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(
        searchable,
        ["order_fulfillment", "customer_support", "fraud_prevention"]
    );
    let gpc: Vec<&str> = policies
        .purposes()
        .iter()
        .filter(|p| p.gpc_opt_out)
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(gpc, ["third_party_sharing"]);
    let marketing = policies.purpose(&purpose_id("marketing_email")).unwrap();
    assert_eq!(marketing.consent_expiry_days, Some(395));
    assert!(policies.purpose(&purpose_id("no_such_purpose")).is_none());
}

/// The purposes as `GET /v1/purposes` shows them (api.md), so a change of wording or basis shows
/// up in review.
#[test]
fn default_purposes_snapshot() {
    let policies = Policies::builtin();
    let purposes: Vec<serde_json::Value> = policies
        .purposes()
        .iter()
        .map(|purpose| {
            serde_json::json!({
                "id": purpose.id,
                "name": purpose.name,
                "description": purpose.description,
                "lawful_basis": purpose.lawful_basis,
                "requires_consent": purpose.requires_consent,
                "categories": purpose.categories,
                "retention": policies.retention_days(purpose),
                "recipients": purpose.recipients,
            })
        })
        .collect();
    let body = serde_json::json!({
        "purposes": purposes,
        "policy_version": policies.version(),
    });
    insta::assert_json_snapshot!("default_purposes", body);
}

/// Who may do what by default: a security-relevant table, reviewed as a snapshot.
#[test]
fn default_roles_snapshot() {
    insta::assert_json_snapshot!("default_roles", Policies::builtin().roles());
}

#[test]
fn roles_may_and_may_use_with_wildcards_expanded() {
    let policies = Policies::builtin();
    let role = |name: &str| policies.role(&role_name(name)).unwrap();

    let admin = role("admin");
    assert!(Operation::ALL.into_iter().all(|op| admin.may(op)));
    assert!(
        policies
            .purposes()
            .iter()
            .all(|purpose| admin.may_use(&purpose.id))
    );
    assert_eq!(admin.purposes.len(), policies.purposes().len());

    let app = role("app");
    assert!(app.may(Operation::Ingest) && app.may(Operation::ConsentWrite));
    assert!(!app.may(Operation::Ledger) && !app.may(Operation::ManageKeys));
    assert!(app.may_use(&purpose_id("marketing_email")));
    assert!(!app.may_use(&purpose_id("accounting")));

    let compliance = role("compliance");
    assert!(compliance.may(Operation::Ledger) && compliance.may(Operation::DsrQueue));
    assert!(!compliance.may(Operation::Ingest));
    assert!(compliance.may_use(&purpose_id("accounting")));
    assert!(!compliance.may_use(&purpose_id("marketing_email")));

    let support = role("support");
    assert!(support.may(Operation::Search) && !support.may(Operation::WriteProfile));
    assert!(support.may_use(&purpose_id("customer_support")));
    assert!(!support.may_use(&purpose_id("fraud_prevention")));

    assert!(policies.role(&role_name("intern")).is_none());
}

#[test]
fn wildcard_covers_purposes_added_later() {
    let roles = "[[role]]\nname = \"app\"\ndescription = \"A.\"\noperations = [\"ingest\"]\npurposes = [\"*\"]\n\n\
                 [[role]]\nname = \"compliance\"\ndescription = \"C.\"\noperations = [\"*\"]\npurposes = []\n\n\
                 [[role]]\nname = \"admin\"\ndescription = \"D.\"\noperations = [\"*\"]\npurposes = [\"*\"]\n";
    let policies = Policies::from_sources(&builtin_with("roles.toml", roles)).unwrap();
    let app = policies.role(&role_name("app")).unwrap();
    assert_eq!(app.operations.len(), 1);
    assert_eq!(app.purposes.len(), policies.purposes().len());
    let compliance = policies.role(&role_name("compliance")).unwrap();
    assert!(compliance.purposes.is_empty());
    assert_eq!(compliance.operations.len(), Operation::ALL.len());
}

#[test]
fn traits_and_events_find_their_category() {
    let policies = Policies::builtin();
    assert_eq!(policies.category_of_trait("email").id, "contact");
    assert_eq!(policies.category_of_trait("firstName").id, "identity");
    // Unlisted traits, including differently-cased ones, fall back to the default category.
    assert_eq!(
        policies.category_of_trait("favoriteColor").id,
        "preferences"
    );
    assert_eq!(policies.category_of_trait("Email").id, "preferences");
    assert!(
        policies
            .category_of_trait("favoriteColor")
            .default_for_traits
    );

    assert_eq!(
        policies.category_of_event("Order Completed").unwrap().id,
        "purchases"
    );
    assert_eq!(
        policies.category_of_event("NPS Answered").unwrap().id,
        "feedback"
    );
    assert_eq!(
        policies.category_of_event("Product Viewed").unwrap().id,
        "behaviour"
    );
    assert!(policies.category_of_event("Rocket Launched").is_none());

    let purchases = policies.category("purchases").unwrap();
    assert_eq!(purchases.retention_days, 3650);
    let hold = purchases.legal_hold.as_ref().unwrap();
    assert_eq!(hold.purpose, purpose_id("accounting"));
    assert_eq!(policies.category("behaviour").unwrap().retention_days, 395);
    assert!(policies.category("nope").is_none());
}

#[test]
fn purpose_retention_is_its_own_or_its_longest_category() {
    let policies = Policies::builtin();
    let retention = |id: &str| policies.retention_days(policies.purpose(&purpose_id(id)).unwrap());
    assert_eq!(retention("accounting"), 3650);
    assert_eq!(retention("marketing_email"), 1095);
    assert_eq!(retention("order_fulfillment"), 1095);
    assert_eq!(retention("analytics"), 730);
}

#[test]
fn canonical_bytes_are_length_prefixed_files_sorted_by_name() {
    let policies = Policies::builtin();
    let bytes = policies.canonical_bytes();
    // The first file by name is categories.toml.
    assert_eq!(&bytes[..4], &15u32.to_be_bytes());
    assert_eq!(&bytes[4..19], b"categories.toml");
    let expected_len: usize = policies
        .files()
        .map(|(name, text)| 8 + name.len() + text.len())
        .sum();
    assert_eq!(bytes.len(), expected_len);
    let names: Vec<&str> = policies.files().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            "categories.toml",
            "policy.toml",
            "purposes.toml",
            "roles.toml"
        ]
    );
    // The order of the sources given does not matter.
    let mut reversed = BUILTIN_FILES.to_vec();
    reversed.reverse();
    assert_eq!(
        Policies::from_sources(&reversed).unwrap().canonical_bytes(),
        bytes
    );
}

#[test]
fn canonical_bytes_change_when_any_file_changes() {
    let original = Policies::builtin().canonical_bytes();
    for (name, text) in BUILTIN_FILES {
        let changed_text = format!("{text}\n# a comment is a change too\n");
        let changed = Policies::from_sources(&builtin_with(name, &changed_text)).unwrap();
        assert_ne!(changed.canonical_bytes(), original, "{name}");
    }
}

/// One bad input: the file it replaces (or adds), its text, and how the error must begin.
struct BadCase {
    file: &'static str,
    text: &'static str,
    expected: &'static str,
}

/// A purpose whose fields start at known lines: `id` on 2, `lawful_basis` on 5,
/// `requires_consent` on 6, `categories` on 7.
macro_rules! purpose {
    ($id:literal, $basis:literal, $consent:literal, $categories:literal, $extra:literal) => {
        concat!(
            "[[purpose]]\n",
            "id = \"",
            $id,
            "\"\n",
            "name = \"X\"\n",
            "description = \"An x.\"\n",
            "lawful_basis = \"",
            $basis,
            "\"\n",
            "requires_consent = ",
            $consent,
            "\n",
            "categories = [",
            $categories,
            "]\n",
            $extra,
        )
    };
}

const CATEGORIES_WITH_HOLD_ON: &str = "category = [
  { id = \"identity\", name = \"I\", description = \"I.\", retention_days = 1, default_for_traits = true },
  { id = \"contact\", name = \"C\", description = \"C.\", retention_days = 1 },
  { id = \"feedback\", name = \"F\", description = \"F.\", retention_days = 1 },
  { id = \"preferences\", name = \"P\", description = \"P.\", retention_days = 1 },
  { id = \"behaviour\", name = \"B\", description = \"B.\", retention_days = 1 },
  { id = \"purchases\", name = \"O\", description = \"O.\", retention_days = 1, legal_hold = { purpose = \"analytics\", reason = \"Tax.\" } },
]
";

const BAD_CASES: &[BadCase] = &[
    BadCase {
        file: "purposes.toml",
        text: "[[purpose]]\nid = \"x\nname = \"X\"\n",
        expected: "purposes.toml:2:8: invalid basic string",
    },
    BadCase {
        file: "purposes.toml",
        text: "[[purpose]]\nid = \"x\"\nlawfull_basis = \"consent\"\n",
        expected: "purposes.toml:3:1: unknown field `lawfull_basis`, expected one of `id`, `name`",
    },
    BadCase {
        file: "purposes.toml",
        text: "[[purposes]]\nid = \"x\"\n",
        expected: "purposes.toml:1:3: unknown field `purposes`, expected `purpose`",
    },
    BadCase {
        file: "purposes.toml",
        text: "[[purpose]]\nid = \"x\"\nname = \"X\"\n",
        expected: "purposes.toml:1:1: missing field `description`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!(
            "x",
            "consent",
            "true",
            "\"contact\"",
            "retention_days = -1\n"
        ),
        expected: "purposes.toml:8:18: invalid value: integer `-1`, expected u32",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("Order", "contract", "false", "\"contact\"", ""),
        expected: "purposes.toml:2:6: invalid purpose id `Order`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "contrac", "false", "\"contact\"", ""),
        expected: "purposes.toml:5:16: unknown lawful basis `contrac`; expected one of consent, contract,",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "consent", "false", "\"contact\"", ""),
        expected: "purposes.toml:6:20: lawful basis `consent` needs `requires_consent = true`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "contract", "true", "\"contact\"", ""),
        expected: "purposes.toml:6:20: `requires_consent = true` but lawful basis is `contract`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "contract", "false", "\"contact\", \"contacts\"", ""),
        expected: "purposes.toml:7:26: unknown category `contacts`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "contract", "false", "", ""),
        expected: "purposes.toml:7:14: `categories` must list the data categories",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!(
            "x",
            "contract",
            "false",
            "\"contact\"",
            "consent_expiry_days = 30\n"
        ),
        expected: "purposes.toml:8:23: `consent_expiry_days` is only for purposes whose lawful basis is `consent`",
    },
    BadCase {
        file: "purposes.toml",
        text: concat!(
            purpose!("x", "contract", "false", "\"contact\"", "\n"),
            purpose!("x", "consent", "true", "\"contact\"", ""),
        ),
        expected: "purposes.toml:10:6: duplicate purpose id `x`",
    },
    BadCase {
        file: "purposes.toml",
        text: purpose!("x", "contract", "false", "\"contact\"", ""),
        expected: "purposes.toml: missing purpose `order_fulfillment`",
    },
    BadCase {
        file: "roles.toml",
        text: "[[role]]\nname = \"app\"\ndescription = \"The shop.\"\noperations = [\"ingest\"]\npurposes = [\"order_fulfillment\", \"marketing\"]\n",
        expected: "roles.toml:5:34: unknown purpose `marketing`",
    },
    BadCase {
        file: "roles.toml",
        text: "[[role]]\nname = \"app\"\ndescription = \"The shop.\"\noperations = [\"ingest\", \"fly\"]\npurposes = []\n",
        expected: "roles.toml:4:25: unknown operation `fly`; expected `*` or one of ingest, read_profile,",
    },
    BadCase {
        file: "roles.toml",
        text: "[[role]]\nname = \"app\"\ndescription = \"The shop.\"\noperations = [\"*\", \"ingest\"]\npurposes = []\n",
        expected: "roles.toml:4:15: `*` already means every operation; list it alone",
    },
    BadCase {
        file: "roles.toml",
        text: "[[role]]\nname = \"compliance\"\ndescription = \"DPO.\"\noperations = [\"ledger\"]\npurposes = []\n\n\
               [[role]]\nname = \"admin\"\ndescription = \"All.\"\noperations = [\"*\"]\npurposes = [\"*\"]\n",
        expected: "roles.toml: missing role `app`",
    },
    BadCase {
        file: "roles.toml",
        text: "[[role]]\nname = \"app\"\ndescription = \"A.\"\noperations = []\npurposes = []\n\n\
               [[role]]\nname = \"app\"\ndescription = \"B.\"\noperations = []\npurposes = []\n",
        expected: "roles.toml:8:8: duplicate role `app`",
    },
    BadCase {
        file: "categories.toml",
        text: "[[category]]\nid = \"identity\"\nname = \"Identity\"\ndescription = \"Who you are.\"\nretention_days = 30\ntraits = [\"name\", \"email\"]\n\n\
               [[category]]\nid = \"contact\"\nname = \"Contact\"\ndescription = \"How to reach you.\"\nretention_days = 30\ntraits = [\"email\"]\ndefault_for_traits = true\n",
        expected: "categories.toml:13:11: trait `email` is already listed in category `identity`",
    },
    BadCase {
        file: "categories.toml",
        text: "[[category]]\nid = \"a\"\nname = \"A\"\ndescription = \"A.\"\nretention_days = 1\ndefault_for_traits = true\n\n\
               [[category]]\nid = \"b\"\nname = \"B\"\ndescription = \"B.\"\nretention_days = 1\ndefault_for_traits = true\n",
        expected: "categories.toml:13:22: category `a` already has `default_for_traits = true`",
    },
    BadCase {
        file: "categories.toml",
        text: "[[category]]\nid = \"a\"\nname = \"A\"\ndescription = \"A.\"\nretention_days = 1\n",
        expected: "categories.toml: no category has `default_for_traits = true`",
    },
    BadCase {
        file: "categories.toml",
        text: "[[category]]\nid = \"a\"\nname = \"A\"\ndescription = \"A.\"\nretention_days = 0\n",
        expected: "categories.toml:5:18: `retention_days` must be at least 1 day",
    },
    BadCase {
        file: "categories.toml",
        text: CATEGORIES_WITH_HOLD_ON,
        expected: "categories.toml:7:100: legal hold purpose `analytics` has lawful basis `consent`",
    },
    BadCase {
        file: "policy.toml",
        text: "version = \"2026-11-01\"\nrights = [\"You may complain.\"]\n\n[controller]\nname = \"Example Shop GmbH\"\n\
               contact = \"https://example.com/privacy\"\n\n[supervisory_authority]\nname = \"Authority\"\nurl = \"https://dpa.example.org/\"\n",
        expected: "policy.toml:6:11: `contact` must be the e-mail address of the data protection officer",
    },
    BadCase {
        file: "policy.toml",
        text: "version = \"1 Nov\"\nrights = [\"You may complain.\"]\n\n[controller]\nname = \"Example Shop GmbH\"\n\
               contact = \"privacy@example.com\"\n\n[supervisory_authority]\nname = \"Authority\"\nurl = \"https://dpa.example.org/\"\n",
        expected: "policy.toml:1:11: invalid version `1 Nov`",
    },
    BadCase {
        file: "purpose.toml",
        text: "",
        expected: "purpose.toml: unknown policy file; the policies are policy.toml, categories.toml,",
    },
];

#[test]
fn bad_policies_name_file_line_and_problem() {
    for case in BAD_CASES {
        let error = match Policies::from_sources(&builtin_with(case.file, case.text)) {
            Ok(_) => panic!("accepted, expected `{}`", case.expected),
            Err(error) => error,
        };
        let shown = error.to_string();
        assert!(
            shown.starts_with(case.expected),
            "got:      {shown}\nexpected: {}",
            case.expected
        );
        assert_eq!(error.file, case.file);
        assert_eq!(error.code(), ErrorCode::Internal);
        // The structured fields agree with the text.
        let location = match (error.line, error.column) {
            (Some(line), Some(column)) => format!("{}:{line}:{column}: ", error.file),
            _ => format!("{}: ", error.file),
        };
        assert_eq!(shown, format!("{location}{}", error.message));
    }
}

#[test]
fn the_legal_hold_case_points_at_the_purpose_value() {
    // The column in the table above is counted here rather than by hand.
    let line = CATEGORIES_WITH_HOLD_ON.lines().nth(6).unwrap();
    assert_eq!(line.find("\"analytics\"").unwrap() + 1, 100);
}

#[test]
fn legal_hold_purpose_must_use_the_held_category() {
    let text = CATEGORIES_WITH_HOLD_ON.replace("\"analytics\"", "\"accounting\"").replace(
        "{ id = \"contact\", name = \"C\", description = \"C.\", retention_days = 1 }",
        "{ id = \"contact\", name = \"C\", description = \"C.\", retention_days = 1, legal_hold = { purpose = \"accounting\", reason = \"R.\" } }",
    );
    let error = Policies::from_sources(&builtin_with("categories.toml", &text)).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "categories.toml:3:98: legal hold purpose `accounting` does not list category `contact`"
        ),
        "{error}"
    );
}

#[test]
fn every_file_is_required_and_given_once() {
    let without_roles: Vec<(&str, &str)> = BUILTIN_FILES
        .into_iter()
        .filter(|(name, _)| *name != "roles.toml")
        .collect();
    let error = Policies::from_sources(&without_roles).unwrap_err();
    assert_eq!(
        error.to_string(),
        "roles.toml: missing policy file; the policies are policy.toml, categories.toml, purposes.toml and roles.toml"
    );

    let mut twice = BUILTIN_FILES.to_vec();
    twice.push(BUILTIN_FILES[0]);
    let error = Policies::from_sources(&twice).unwrap_err();
    assert_eq!(error.to_string(), "policy.toml: policy file given twice");
}

#[test]
fn load_dir_refuses_unknown_toml_files_and_names_paths() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in BUILTIN_FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("README.md"), "Not a policy.").unwrap();
    let loaded = Policies::load_dir(dir.path()).unwrap();
    assert_eq!(
        loaded.canonical_bytes(),
        Policies::builtin().canonical_bytes()
    );

    let typo = dir.path().join("purpose.toml");
    std::fs::write(&typo, "").unwrap();
    let error = Policies::load_dir(dir.path()).unwrap_err();
    assert_eq!(error.file, typo.display().to_string());
    assert!(error.message.starts_with("unknown policy file"), "{error}");
    std::fs::remove_file(&typo).unwrap();

    let roles = dir.path().join("roles.toml");
    std::fs::write(&roles, "[[role]]\nname = \"app\"\nrole = 1\n").unwrap();
    let error = Policies::load_dir(dir.path()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{}:3:1: unknown field `role`", roles.display())),
        "{error}"
    );

    std::fs::remove_file(&roles).unwrap();
    let error = Policies::load_dir(dir.path()).unwrap_err();
    assert_eq!(error.file, roles.display().to_string());
    assert!(error.message.starts_with("missing policy file"), "{error}");

    let error = Policies::load_dir(&dir.path().join("nowhere")).unwrap_err();
    assert!(error.message.starts_with("cannot read"), "{error}");
}

#[test]
fn line_and_column_count_characters_from_one() {
    let text = "ab\ncd\nü = \"x\"";
    assert_eq!(line_column(text, 0), (1, 1));
    assert_eq!(line_column(text, 2), (1, 3));
    assert_eq!(line_column(text, 3), (2, 1));
    // `=` follows a two-byte character: byte 8, column 3.
    assert_eq!(line_column(text, 9), (3, 3));
    // Inside a multi-byte character and past the end are pulled back, never a panic.
    assert_eq!(line_column(text, 7), (3, 1));
    assert_eq!(line_column(text, 1000), (3, 8));
}

#[test]
fn error_display_leaves_out_unknown_positions() {
    let error = PolicyError {
        file: "roles.toml".into(),
        line: Some(3),
        column: None,
        message: "bad".into(),
    };
    assert_eq!(error.to_string(), "roles.toml:3: bad");
}

#[test]
fn debug_shows_file_sizes_not_texts() {
    let shown = format!("{:?}", Policies::builtin());
    assert!(shown.contains("\"roles.toml\": \""), "{shown}");
    assert!(!shown.contains("# Custodia roles"));
}

#[test]
fn dormant_profiles_and_unlisted_events_have_a_retention() {
    let policies = Policies::builtin();
    assert_eq!(policies.dormant_profile_days(), Some(1095));
    assert_eq!(
        policies.retention_category_of_event("Rocket Launched").id,
        "preferences"
    );
    assert_eq!(
        policies.retention_category_of_event("Product Viewed").id,
        "behaviour"
    );

    let policy = include_str!("../../../policies/policy.toml");
    let without = policy.replace("[retention]\ndormant_profile_days = 1095\n", "");
    assert_ne!(without, policy);
    let loaded = Policies::from_sources(&builtin_with("policy.toml", &without)).unwrap();
    assert_eq!(loaded.dormant_profile_days(), None);

    let zero = policy.replace("dormant_profile_days = 1095", "dormant_profile_days = 0");
    let err = Policies::from_sources(&builtin_with("policy.toml", &zero)).unwrap_err();
    assert!(err.to_string().contains("dormant_profile_days"), "{err}");
}

#[test]
fn the_privacy_center_table_is_optional_and_checked() {
    let builtin = Policies::builtin();
    let branding = builtin.privacy_center();
    assert_eq!(branding.shop_name, "Example Shop");
    assert_eq!(branding.accent_colour, "#8a2d52");
    assert_eq!(
        branding.logo_url.as_deref(),
        Some("/privacy/assets/logo.svg")
    );
    assert_eq!(branding.contact, builtin.controller().contact);
    assert!(branding.frame_ancestors.is_empty());

    let policy = include_str!("../../../policies/policy.toml");
    let table = &policy[policy.find("[privacy_center]").unwrap()..];
    let without = policy.replace(table, "");
    let loaded = Policies::from_sources(&builtin_with("policy.toml", &without)).unwrap();
    let defaults = loaded.privacy_center();
    assert_eq!(defaults.shop_name, loaded.controller().name);
    assert_eq!(defaults.contact, loaded.controller().contact);
    assert_eq!(defaults.accent_colour, "#1f4fa3");
    assert_eq!(defaults.logo_url, None);
    assert_eq!(defaults.privacy_policy_url, None);

    let framed = policy.replace(
        "frame_ancestors = []",
        "frame_ancestors = [\"https://shop.example\", \"'self'\", \"https://*.shop.example:8443\"]\ncontact = \"dpo@shop.example\"",
    );
    let loaded = Policies::from_sources(&builtin_with("policy.toml", &framed)).unwrap();
    assert_eq!(
        loaded.privacy_center().frame_ancestors,
        [
            "https://shop.example",
            "'self'",
            "https://*.shop.example:8443"
        ]
    );
    assert_eq!(loaded.privacy_center().contact, "dpo@shop.example");

    // Each bad value is refused with its line, and nothing of it leaks into a header.
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (from, to, says) in [
        (
            "accent_colour = \"#8a2d52\"",
            "accent_colour = \"#f2b01e\"",
            "too light",
        ),
        (
            "accent_colour = \"#8a2d52\"",
            "accent_colour = \"red\"",
            "#rrggbb",
        ),
        (
            "logo_url = \"/privacy/assets/logo.svg\"",
            "logo_url = \"http://shop.example/logo.png\"",
            "`logo_url` must be",
        ),
        (
            "logo_url = \"/privacy/assets/logo.svg\"",
            "logo_url = \"//evil.example/logo.png\"",
            "`logo_url` must be",
        ),
        (
            "frame_ancestors = []",
            "frame_ancestors = [\"https://shop.example; script-src *\"]",
            "`frame_ancestors` entries must be",
        ),
        (
            "frame_ancestors = []",
            "frame_ancestors = [\"*\"]",
            "`frame_ancestors` entries must be",
        ),
        (
            "privacy_policy_url = \"https://shop.example/privacy-policy\"",
            "privacy_policy_url = \"javascript:alert(1)\"",
            "`privacy_policy_url` must be",
        ),
        (
            "shop_name = \"Example Shop\"",
            "shop_name = \" \"",
            "must not be empty",
        ),
    ] {
        let bad = policy.replace(from, to);
        assert_ne!(bad, policy, "{from}");
        let err = Policies::from_sources(&builtin_with("policy.toml", &bad)).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(err.line, Some(line_of(&bad, to)), "{err}");
    }
}

#[test]
fn french_wording_is_part_of_the_policies_and_checked() {
    let builtin = Policies::builtin();
    let marketing = builtin.purpose(&purpose_id("marketing_email")).unwrap();
    let fr = &marketing.translations["fr"];
    assert_eq!(fr.name, "E-mails promotionnels");
    assert_eq!(
        fr.recipients.as_ref().map(Vec::len),
        Some(marketing.recipients.len())
    );
    assert!(
        builtin
            .purposes()
            .iter()
            .all(|p| p.translations.contains_key("fr"))
    );
    assert!(
        builtin
            .categories()
            .iter()
            .all(|c| c.translations.contains_key("fr"))
    );
    assert_eq!(
        builtin.rights_translations()["fr"].len(),
        builtin.rights().len()
    );

    // A legal hold's reason is translated with its category.
    let purchases = builtin
        .categories()
        .iter()
        .find(|c| c.legal_hold.is_some())
        .unwrap();
    assert!(
        purchases.translations["fr"]
            .legal_hold_reason
            .as_deref()
            .is_some_and(|r| r.contains("§ 147 AO"))
    );

    let purposes = include_str!("../../../policies/purposes.toml");
    let categories = include_str!("../../../policies/categories.toml");
    let policy = include_str!("../../../policies/policy.toml");
    for (file, text, from, to, says) in [
        (
            "categories.toml",
            categories,
            "name = \"Identité\"",
            "name = \"Identité\"\nlegal_hold_reason = \"Aucune\"",
            "this entry has none",
        ),
        (
            "purposes.toml",
            purposes,
            "[purpose.translations.fr]\nname = \"E-mails promotionnels\"",
            "[purpose.translations.de]\nname = \"Werbe-E-Mails\"",
            "no translation into `de`",
        ),
        (
            "purposes.toml",
            purposes,
            "recipients = [\"Prestataire d'envoi d'e-mails (sous-traitant agissant pour notre compte)\"]",
            "recipients = [\"Un\", \"Deux\"]",
            "`recipients` lists 2 names but the purpose has 1",
        ),
        (
            "policy.toml",
            policy,
            "    \"Vous pouvez introduire une réclamation",
            "    \"\",\n    \"Vous pouvez introduire une réclamation",
            "`rights` lists 8 sentences but the English text has 7",
        ),
    ] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{from}");
        let err = Policies::from_sources(&builtin_with(file, &bad)).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert!(err.line.is_some(), "{err}");
    }
}
