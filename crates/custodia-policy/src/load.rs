//! Reading the four policy files, parsing each with byte spans, and checking them against each
//! other. Every failure becomes a [`PolicyError`] that names the file and, where one value is at
//! fault, its line and column.

mod categories;
mod policy_file;
mod privacy_center;
mod purposes;
mod roles;
mod translations;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use custodia_core::PurposeId;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::{Policies, PolicyError, SourceFiles};

/// The file holding the version label, the controller and the subject's rights.
pub(crate) const POLICY_FILE: &str = "policy.toml";
/// The file holding the data categories.
pub(crate) const CATEGORIES_FILE: &str = "categories.toml";
/// The file holding the purposes.
pub(crate) const PURPOSES_FILE: &str = "purposes.toml";
/// The file holding the roles.
pub(crate) const ROLES_FILE: &str = "roles.toml";

/// Every policy file.
pub(crate) const FILE_NAMES: [&str; 4] = [POLICY_FILE, CATEGORIES_FILE, PURPOSES_FILE, ROLES_FILE];

/// A policy file larger than this is refused; real ones are a few KiB. The bound also keeps every
/// length in [`Policies::canonical_bytes`] far below `u32::MAX`.
pub(crate) const MAX_FILE_BYTES: usize = 1 << 20;

const FILE_LIST: &str = "policy.toml, categories.toml, purposes.toml and roles.toml";

/// One policy file's text, with the name it is known by and the name errors show.
pub(crate) struct NamedText {
    /// The bare file name (`purposes.toml`).
    pub(crate) name: String,
    /// What errors call the file: its path when read from a directory, else its name.
    pub(crate) shown: String,
    pub(crate) text: String,
}

impl NamedText {
    fn source(&self) -> Source<'_> {
        Source {
            shown: &self.shown,
            text: &self.text,
        }
    }
}

/// Checks that `files` are exactly the four policy files, then parses and validates them.
///
/// `shown_if_missing` names a missing file in the error (its would-be path, or its name).
pub(crate) fn load(
    files: Vec<NamedText>,
    shown_if_missing: impl Fn(&str) -> String,
) -> Result<Policies, PolicyError> {
    let mut by_name: BTreeMap<&'static str, NamedText> = BTreeMap::new();
    for file in files {
        let Some(&name) = FILE_NAMES.iter().find(|&&known| known == file.name) else {
            return Err(PolicyError::in_file(
                file.shown,
                format!(
                    "unknown policy file; the policies are {FILE_LIST}, and no other *.toml file may sit beside them"
                ),
            ));
        };
        if file.text.len() > MAX_FILE_BYTES {
            return Err(PolicyError::in_file(
                file.shown,
                format!("policy file is larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        if by_name.contains_key(name) {
            return Err(PolicyError::in_file(file.shown, "policy file given twice"));
        }
        by_name.insert(name, file);
    }
    let mut take = |name: &str| {
        by_name.remove(name).ok_or_else(|| {
            PolicyError::in_file(
                shown_if_missing(name),
                format!("missing policy file; the policies are {FILE_LIST}"),
            )
        })
    };
    let texts = PolicyTexts {
        policy: take(POLICY_FILE)?,
        categories: take(CATEGORIES_FILE)?,
        purposes: take(PURPOSES_FILE)?,
        roles: take(ROLES_FILE)?,
    };
    validate(texts)
}

/// The four policy files, each in its place.
struct PolicyTexts {
    policy: NamedText,
    categories: NamedText,
    purposes: NamedText,
    roles: NamedText,
}

/// Reads the policy files from `dir` and loads them; see [`Policies::load_dir`].
pub(crate) fn load_dir(dir: &Path) -> Result<Policies, PolicyError> {
    let shown_dir = dir.display().to_string();
    let read_error = |shown: &str, error: std::io::Error| {
        PolicyError::in_file(shown, format!("cannot read: {error}"))
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| read_error(&shown_dir, error))? {
        let path = entry.map_err(|error| read_error(&shown_dir, error))?.path();
        let is_toml = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
        if is_toml && !path.is_dir() {
            paths.push(path);
        }
    }
    // Sorted, so that with two unknown files the same one is always reported.
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let shown = path.display().to_string();
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !FILE_NAMES.contains(&name.as_str()) {
            // Refused before reading, so an unreadable stray file gives the clearer message.
            return Err(PolicyError::in_file(
                shown,
                format!(
                    "unknown policy file; the policies are {FILE_LIST}, and no other *.toml file may sit beside them"
                ),
            ));
        }
        let metadata = std::fs::metadata(&path).map_err(|error| read_error(&shown, error))?;
        if metadata.len() > MAX_FILE_BYTES as u64 {
            return Err(PolicyError::in_file(
                shown,
                format!("policy file is larger than {MAX_FILE_BYTES} bytes"),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|error| read_error(&shown, error))?;
        files.push(NamedText { name, shown, text });
    }
    load(files, |name| dir.join(name).display().to_string())
}

/// Parses and checks the four files against each other.
fn validate(texts: PolicyTexts) -> Result<Policies, PolicyError> {
    let source = NamedText::source;
    let policy = policy_file::check(&source(&texts.policy))?;
    let checked_categories = categories::check(&source(&texts.categories))?;
    let purposes = purposes::check(&source(&texts.purposes), &checked_categories.categories)?;
    categories::check_legal_holds(&source(&texts.categories), &checked_categories, &purposes)?;
    let roles = roles::check(&source(&texts.roles), &purposes)?;

    let categories = checked_categories.categories;
    let mut category_idx_by_trait = HashMap::new();
    let mut category_idx_by_event = HashMap::new();
    for (category_idx, category) in categories.iter().enumerate() {
        for trait_name in &category.traits {
            category_idx_by_trait.insert(trait_name.clone(), category_idx);
        }
        for event_name in &category.events {
            category_idx_by_event.insert(event_name.clone(), category_idx);
        }
    }
    Ok(Policies {
        version: policy.version,
        controller: policy.controller,
        privacy_center: policy.privacy_center,
        rights: policy.rights,
        rights_translations: policy.rights_translations,
        dormant_profile_days: policy.dormant_profile_days,
        purposes,
        default_category_idx: checked_categories.default_category_idx,
        categories,
        category_idx_by_trait,
        category_idx_by_event,
        roles,
        files: SourceFiles::new([texts.policy, texts.categories, texts.purposes, texts.roles]),
    })
}

/// One file being checked: the parse and error helpers the per-file modules share.
pub(crate) struct Source<'a> {
    shown: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// Deserializes the whole file; syntax and shape errors keep the parser's position.
    fn parse<T: DeserializeOwned>(&self) -> Result<T, PolicyError> {
        toml::from_str(self.text).map_err(|error| {
            // toml's messages may run over several lines; one line reads better after a location.
            let message = error
                .message()
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            match error.span() {
                Some(span) => PolicyError::at(self.shown, self.text, span, message),
                None => PolicyError::in_file(self.shown, message),
            }
        })
    }

    /// An error about the value at `span`.
    fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        PolicyError::at(self.shown, self.text, span, message)
    }

    /// An error about the whole file.
    fn error(&self, message: impl Into<String>) -> PolicyError {
        PolicyError::in_file(self.shown, message)
    }

    /// A text field that must say something: not empty, not only white space.
    fn text(&self, value: &Spanned<String>, key: &str) -> Result<String, PolicyError> {
        if value.get_ref().trim().is_empty() {
            return Err(self.error_at(value.span(), format!("`{key}` must not be empty")));
        }
        Ok(value.get_ref().clone())
    }

    /// A number of days, at least 1.
    fn days(&self, value: &Spanned<u32>, key: &str) -> Result<u32, PolicyError> {
        if *value.get_ref() == 0 {
            return Err(self.error_at(value.span(), format!("`{key}` must be at least 1 day")));
        }
        Ok(*value.get_ref())
    }

    /// An id of the shape purposes, roles and categories share: `[a-z][a-z0-9_]{0,63}`.
    fn snake_id(&self, value: &Spanned<String>, what: &str) -> Result<String, PolicyError> {
        let id = value.get_ref();
        let valid = (1..=64).contains(&id.len())
            && id.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(self.error_at(
                value.span(),
                format!("invalid {what} `{id}`: use 1 to 64 characters of a-z, 0-9 and _, starting with a letter"),
            ));
        }
        Ok(id.clone())
    }

    /// A purpose id (syntax only; whether the purpose exists is the caller's check).
    fn purpose_id(&self, value: &Spanned<String>) -> Result<PurposeId, PolicyError> {
        let id = self.snake_id(value, "purpose id")?;
        id.parse()
            .map_err(|_| self.error_at(value.span(), format!("invalid purpose id `{id}`")))
    }
}
