//! `categories.toml`: data categories, which traits and events belong to each, retention and
//! legal holds.

use std::collections::HashMap;
use std::ops::Range;

use custodia_core::LawfulBasis;
use serde::Deserialize;
use toml::Spanned;

use super::Source;
use crate::{Category, LegalHold, PolicyError, Purpose};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategoriesFile {
    #[serde(default, rename = "category")]
    categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    id: Spanned<String>,
    name: Spanned<String>,
    description: Spanned<String>,
    retention_days: Spanned<u32>,
    #[serde(default)]
    traits: Vec<Spanned<String>>,
    #[serde(default)]
    events: Vec<Spanned<String>>,
    #[serde(default)]
    default_for_traits: Option<Spanned<bool>>,
    #[serde(default)]
    legal_hold: Option<RawLegalHold>,
    #[serde(default)]
    translations: std::collections::BTreeMap<Spanned<String>, super::translations::RawTranslation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLegalHold {
    purpose: Spanned<String>,
    reason: Spanned<String>,
}

/// The categories, checked on their own; legal holds are checked once the purposes are known.
pub(crate) struct CheckedCategories {
    pub(crate) categories: Vec<Category>,
    /// Index of the one category with `default_for_traits = true`.
    pub(crate) default_category_idx: usize,
    /// For each category with a legal hold: its index and the span of the hold's purpose.
    legal_hold_spans: Vec<(usize, Range<usize>)>,
}

/// Parses and checks `categories.toml` on its own.
pub(crate) fn check(source: &Source<'_>) -> Result<CheckedCategories, PolicyError> {
    let raw: RawCategoriesFile = source.parse()?;
    let mut categories = Vec::with_capacity(raw.categories.len());
    let mut legal_hold_spans = Vec::new();
    let mut default_category_idx = None;
    // Owner of every trait and event name seen so far, to refuse a name listed twice.
    let mut trait_owner: HashMap<String, String> = HashMap::new();
    let mut event_owner: HashMap<String, String> = HashMap::new();

    for raw_category in raw.categories {
        let id = source.snake_id(&raw_category.id, "category id")?;
        if categories
            .iter()
            .any(|category: &Category| category.id == id)
        {
            return Err(source.error_at(
                raw_category.id.span(),
                format!("duplicate category id `{id}`"),
            ));
        }
        let category_idx = categories.len();

        let traits = claim_names(source, &raw_category.traits, &id, "trait", &mut trait_owner)?;
        let events = claim_names(source, &raw_category.events, &id, "event", &mut event_owner)?;

        let default_for_traits = match &raw_category.default_for_traits {
            Some(flag) if *flag.get_ref() => {
                if let Some(previous_idx) = default_category_idx {
                    let previous: &Category = &categories[previous_idx];
                    return Err(source.error_at(
                        flag.span(),
                        format!(
                            "category `{}` already has `default_for_traits = true`; exactly one category may",
                            previous.id
                        ),
                    ));
                }
                default_category_idx = Some(category_idx);
                true
            }
            _ => false,
        };

        let legal_hold = match &raw_category.legal_hold {
            Some(hold) => {
                let purpose = source.purpose_id(&hold.purpose)?;
                legal_hold_spans.push((category_idx, hold.purpose.span()));
                Some(LegalHold {
                    purpose,
                    reason: source.text(&hold.reason, "reason")?,
                })
            }
            None => None,
        };

        let translations = super::translations::check(
            source,
            raw_category.translations,
            None,
            legal_hold.is_some(),
        )?;
        categories.push(Category {
            translations,
            id,
            name: source.text(&raw_category.name, "name")?,
            description: source.text(&raw_category.description, "description")?,
            retention_days: source.days(&raw_category.retention_days, "retention_days")?,
            traits,
            events,
            default_for_traits,
            legal_hold,
        });
    }

    let Some(default_category_idx) = default_category_idx else {
        return Err(source.error(
            "no category has `default_for_traits = true`; exactly one must, to hold the traits no category lists",
        ));
    };
    Ok(CheckedCategories {
        categories,
        default_category_idx,
        legal_hold_spans,
    })
}

/// Checks that every legal hold names a defined purpose whose lawful basis is a legal obligation
/// and which uses the held category; a hold is the one thing that overrides an erasure request.
pub(crate) fn check_legal_holds(
    source: &Source<'_>,
    checked: &CheckedCategories,
    purposes: &[Purpose],
) -> Result<(), PolicyError> {
    for (category_idx, span) in &checked.legal_hold_spans {
        let category = &checked.categories[*category_idx];
        let Some(hold) = &category.legal_hold else {
            continue;
        };
        let Some(purpose) = purposes.iter().find(|purpose| purpose.id == hold.purpose) else {
            return Err(source.error_at(
                span.clone(),
                format!("legal hold names unknown purpose `{}`", hold.purpose),
            ));
        };
        if purpose.lawful_basis != LawfulBasis::LegalObligation {
            return Err(source.error_at(
                span.clone(),
                format!(
                    "legal hold purpose `{}` has lawful basis `{}`; only a `legal_obligation` purpose can keep data past an erasure",
                    purpose.id,
                    purpose.lawful_basis.as_str()
                ),
            ));
        }
        if !purpose.categories.contains(&category.id) {
            return Err(source.error_at(
                span.clone(),
                format!(
                    "legal hold purpose `{}` does not list category `{}` in purposes.toml",
                    purpose.id, category.id
                ),
            ));
        }
    }
    Ok(())
}

/// Checks trait or event names of one category and records it as their owner.
fn claim_names(
    source: &Source<'_>,
    names: &[Spanned<String>],
    category_id: &str,
    kind: &str,
    owner_by_name: &mut HashMap<String, String>,
) -> Result<Vec<String>, PolicyError> {
    let mut claimed = Vec::with_capacity(names.len());
    for name in names {
        let text = name.get_ref();
        if text.trim().is_empty() {
            return Err(source.error_at(name.span(), format!("empty {kind} name")));
        }
        if let Some(owner) = owner_by_name.get(text) {
            return Err(source.error_at(
                name.span(),
                format!("{kind} `{text}` is already listed in category `{owner}`"),
            ));
        }
        owner_by_name.insert(text.clone(), category_id.to_owned());
        claimed.push(text.clone());
    }
    Ok(claimed)
}
