//! Loads and validates Custodia's policies — purposes, data categories with retention and legal
//! holds, roles, the controller and the subject's rights — from the TOML files in `policies/`.
//!
//! A bad policy file stops start-up with a [`PolicyError`] naming the file, line, column and
//! problem. Loaded [`Policies`] are immutable; [`Policies::canonical_bytes`] identifies the exact
//! text in force so that every consent can point at it.
//!
//! Architecture invariant: this crate reads files only in [`Policies::load_dir`] and knows nothing
//! of HTTP, storage or crypto; hashing the canonical bytes is the caller's business.

mod error;
mod load;
mod model;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use custodia_core::{LengthPrefixed, PurposeId, RoleName};

pub use error::PolicyError;
pub use model::{Category, Controller, LegalHold, PrivacyCenter, Purpose, Role, Translation};

/// Purposes the API promises clients (api.md, `GET /v1/purposes`); policies without them are
/// refused.
pub const REQUIRED_PURPOSES: [&str; 8] = [
    "order_fulfillment",
    "customer_support",
    "fraud_prevention",
    "accounting",
    "marketing_email",
    "personalization",
    "analytics",
    "third_party_sharing",
];

/// Roles the API promises clients (api.md, "Conventions"); policies without them are refused.
pub const REQUIRED_ROLES: [&str; 3] = ["app", "compliance", "admin"];

/// The names of the policy files, the only `*.toml` files allowed in a policy directory.
pub const POLICY_FILES: [&str; 4] = load::FILE_NAMES;

/// The repository's default policies, compiled in.
const BUILTIN_FILES: [(&str, &str); 4] = [
    ("policy.toml", include_str!("../../../policies/policy.toml")),
    (
        "categories.toml",
        include_str!("../../../policies/categories.toml"),
    ),
    (
        "purposes.toml",
        include_str!("../../../policies/purposes.toml"),
    ),
    ("roles.toml", include_str!("../../../policies/roles.toml")),
];

/// A loaded, validated set of policies: every cross-reference resolves, every required purpose and
/// role exists, and each trait and event belongs to at most one category.
#[derive(Clone, Debug)]
pub struct Policies {
    version: String,
    controller: Controller,
    privacy_center: PrivacyCenter,
    rights: Vec<String>,
    rights_translations: std::collections::BTreeMap<String, Vec<String>>,
    dormant_profile_days: Option<u32>,
    purposes: Vec<Purpose>,
    categories: Vec<Category>,
    default_category_idx: usize,
    category_idx_by_trait: HashMap<String, usize>,
    category_idx_by_event: HashMap<String, usize>,
    roles: Vec<Role>,
    files: SourceFiles,
}

impl Policies {
    /// Loads `policy.toml`, `categories.toml`, `purposes.toml` and `roles.toml` from `dir`.
    ///
    /// Any other `*.toml` file in `dir` is an error, so that nobody believes a misspelled file is
    /// in force; other files (a README) are ignored. Errors name files by their path under `dir`.
    pub fn load_dir(dir: &Path) -> Result<Policies, PolicyError> {
        load::load_dir(dir)
    }

    /// Loads the policies from in-memory `(file name, text)` pairs, with the same checks as
    /// [`Policies::load_dir`]; errors name files as given.
    pub fn from_sources(files: &[(&str, &str)]) -> Result<Policies, PolicyError> {
        let files = files
            .iter()
            .map(|&(name, text)| load::NamedText {
                name: name.to_owned(),
                shown: name.to_owned(),
                text: text.to_owned(),
            })
            .collect();
        load::load(files, str::to_owned)
    }

    /// The repository's default policies (`policies/` at build time), compiled in so that tools
    /// work without a policy directory.
    ///
    /// # Panics
    /// Never in a tested build: the crate's tests load these very files.
    pub fn builtin() -> Policies {
        static BUILTIN: OnceLock<Policies> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Policies::from_sources(&BUILTIN_FILES)
                    .unwrap_or_else(|error| panic!("the built-in policies are invalid: {error}"))
            })
            .clone()
    }

    /// The published version label (`version` in `policy.toml`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The exact text in force, as bytes to hash: for each policy file sorted by name, the name's
    /// length (u32, big-endian), the name, the text's length (u32, big-endian), the text.
    ///
    /// It depends only on file names and texts, not on where the files were read from.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.files
            .0
            .iter()
            .fold(LengthPrefixed::new(), |encoding, (name, text)| {
                encoding.part(name).part(text)
            })
            .into_bytes()
    }

    /// The policy files in force, `(file name, text)`, sorted by name.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files
            .0
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
    }

    /// The controller and its supervisory authority.
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// How the privacy center presents the shop.
    pub fn privacy_center(&self) -> &PrivacyCenter {
        &self.privacy_center
    }

    /// The subject's rights, one sentence each, in the order of `policy.toml`.
    pub fn rights(&self) -> &[String] {
        &self.rights
    }

    /// The rights in other languages (`[translations.<lang>]` in `policy.toml`), by language
    /// code; each list matches [`Policies::rights`] sentence by sentence.
    pub fn rights_translations(&self) -> &std::collections::BTreeMap<String, Vec<String>> {
        &self.rights_translations
    }

    /// Every purpose, in file order.
    pub fn purposes(&self) -> &[Purpose] {
        &self.purposes
    }

    /// The purpose with this id, if the policies define it.
    pub fn purpose(&self, id: &PurposeId) -> Option<&Purpose> {
        self.purposes.iter().find(|purpose| &purpose.id == id)
    }

    /// How long data is used for `purpose`, in days: its own `retention_days` if set, else the
    /// longest retention of its categories. This is the `retention` shown in `GET /v1/purposes`.
    pub fn retention_days(&self, purpose: &Purpose) -> u32 {
        purpose.retention_days.unwrap_or_else(|| {
            purpose
                .categories
                .iter()
                .filter_map(|id| self.category(id))
                .map(|category| category.retention_days)
                .max()
                .unwrap_or(0)
        })
    }

    /// Every data category, in file order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The category with this id, if the policies define it.
    pub fn category(&self, id: &str) -> Option<&Category> {
        self.categories.iter().find(|category| category.id == id)
    }

    /// The category a trait belongs to: the one listing it, else the `default_for_traits` one.
    pub fn category_of_trait(&self, trait_name: &str) -> &Category {
        let category_idx = self
            .category_idx_by_trait
            .get(trait_name)
            .copied()
            .unwrap_or(self.default_category_idx);
        &self.categories[category_idx]
    }

    /// After how many days without any activity (no profile change, no event) a whole profile
    /// is removed by the retention sweep, if the policies say so (`[retention]` in policy.toml).
    pub fn dormant_profile_days(&self) -> Option<u32> {
        self.dormant_profile_days
    }

    /// The category whose retention applies to an event: the one listing it, else the
    /// `default_for_traits` one (an event nobody classified is kept no longer than other
    /// unclassified data).
    pub fn retention_category_of_event(&self, event_name: &str) -> &Category {
        self.category_of_event(event_name)
            .unwrap_or(&self.categories[self.default_category_idx])
    }

    /// The category listing this event, if any.
    pub fn category_of_event(&self, event_name: &str) -> Option<&Category> {
        let category_idx = self.category_idx_by_event.get(event_name)?;
        Some(&self.categories[*category_idx])
    }

    /// Every role, in file order.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// The role with this name, if the policies define it.
    pub fn role(&self, name: &RoleName) -> Option<&Role> {
        self.roles.iter().find(|role| &role.name == name)
    }
}

/// The loaded files' `(name, text)`, sorted by name; `Debug` shows names and sizes, not the text.
#[derive(Clone)]
struct SourceFiles(Vec<(String, String)>);

impl SourceFiles {
    fn new(files: [load::NamedText; 4]) -> SourceFiles {
        let mut files: Vec<(String, String)> = files
            .into_iter()
            .map(|file| (file.name, file.text))
            .collect();
        files.sort();
        SourceFiles(files)
    }
}

impl fmt::Debug for SourceFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.0
                    .iter()
                    .map(|(name, text)| (name, format!("{} bytes", text.len()))),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests;
