//! The validated policy entries: controller, purposes, data categories, legal holds and roles.

use std::collections::{BTreeMap, BTreeSet};

use custodia_core::{LawfulBasis, Operation, PurposeId, RoleName};
use serde::Serialize;

/// The controller responsible for the processing, and its supervisory authority
/// (`policies/policy.toml`), as named in access exports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Controller {
    /// The controller's legal name.
    pub name: String,
    /// The e-mail address of the data protection officer.
    pub contact: String,
    /// The name of the supervisory authority responsible for the controller.
    pub supervisory_authority: String,
    /// Where the supervisory authority can be reached (an `http(s)` URL).
    pub supervisory_authority_url: String,
}

/// How the privacy center at `/privacy` presents the shop (`[privacy_center]` in
/// `policies/policy.toml`): every field has a default taken from the controller or Custodia's own
/// look, so the table is optional.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrivacyCenter {
    /// The name in the page's header (default: the controller's name).
    pub shop_name: String,
    /// The shop's logo: a path on this server (`/…`) or an `https://` URL, whose origin the
    /// page's Content-Security-Policy then allows for images only.
    pub logo_url: Option<String>,
    /// The colour of buttons, links and the selected language, `#rrggbb`; white text on it has a
    /// contrast of at least 4.5:1 (WCAG AA), checked at load.
    pub accent_colour: String,
    /// The shop's privacy policy (`http(s)://…`), linked from the page's footer.
    pub privacy_policy_url: Option<String>,
    /// Where customers write about their data (default: the controller's contact).
    pub contact: String,
    /// The sites allowed to show the page in a frame, as CSP `frame-ancestors` sources
    /// (`https://shop.example`, `https://*.shop.example:8443` or `'self'`); empty: none.
    pub frame_ancestors: Vec<String>,
}

/// A purpose of processing (`policies/purposes.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Purpose {
    /// The id clients name in `purpose=` and in consent decisions.
    pub id: PurposeId,
    /// The short name shown to customers.
    pub name: String,
    /// The text shown to customers; the wording a consent refers to.
    pub description: String,
    /// The lawful basis (GDPR Art. 6(1)).
    pub lawful_basis: LawfulBasis,
    /// Whether processing needs a current consent grant; true exactly for [`LawfulBasis::Consent`].
    pub requires_consent: bool,
    /// Ids of the data categories this purpose uses; each names a [`Category`].
    pub categories: Vec<String>,
    /// Who else receives data for this purpose; empty means nobody outside the controller.
    pub recipients: Vec<String>,
    /// How long data is used for this purpose, if it differs from its categories' retention; see
    /// [`crate::Policies::retention_days`] for the figure to show.
    pub retention_days: Option<u32>,
    /// For consent-based purposes: a grant lapses this many days after it was given.
    pub consent_expiry_days: Option<u32>,
    /// Whether a Global Privacy Control signal counts as withdrawing consent to this purpose.
    pub gpc_opt_out: bool,
    /// Whether text search over subjects may be used for this purpose.
    pub search: bool,
    /// The name, description and recipients in other languages, by language code (`fr`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, Translation>,
}

/// A purpose's or a category's customer-facing wording in another language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// A purpose's recipients, in the same order as the original (`None`: not translated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
    /// A category's `legal_hold.reason` (`None`: not translated, or no legal hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_hold_reason: Option<String>,
}

/// A data category with its default retention (`policies/categories.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Category {
    /// The id purposes refer to (`identity`, `purchases`, ...).
    pub id: String,
    /// The name shown to customers.
    pub name: String,
    /// The description shown to customers.
    pub description: String,
    /// How long data of this category is kept, in days (at least 1).
    pub retention_days: u32,
    /// Trait names that belong to this category (case-sensitive, as sent in `identify`).
    pub traits: Vec<String>,
    /// Event names that belong to this category (case-sensitive, as sent in `track`).
    pub events: Vec<String>,
    /// Whether traits listed in no category belong to this one; true for exactly one category.
    pub default_for_traits: bool,
    /// What keeps this data past an erasure request, if anything.
    pub legal_hold: Option<LegalHold>,
    /// The name and description in other languages, by language code (`fr`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub translations: BTreeMap<String, Translation>,
}

/// A legal obligation that keeps a category's data past an erasure request (GDPR Art. 17(3)(b)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegalHold {
    /// The purpose the data is kept for; its lawful basis is [`LawfulBasis::LegalObligation`] and
    /// it lists the category.
    pub purpose: PurposeId,
    /// Why, in words the erasure receipt can quote.
    pub reason: String,
}

/// A role: the operations and purposes an API key with this role may use (`policies/roles.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Role {
    /// The role's name, given when a key is created.
    pub name: RoleName,
    /// What the role is for.
    pub description: String,
    /// The operations the role may perform; `"*"` in the file is expanded to all of them.
    pub operations: BTreeSet<Operation>,
    /// The purposes the role may name; `"*"` in the file is expanded to every defined purpose.
    pub purposes: BTreeSet<PurposeId>,
}

impl Role {
    /// Whether this role may perform `op`.
    pub fn may(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }

    /// Whether this role may name `purpose` when reading personal data.
    pub fn may_use(&self, purpose: &PurposeId) -> bool {
        self.purposes.contains(purpose)
    }
}
