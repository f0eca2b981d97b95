//! `[purpose.translations.<lang>]` and `[category.translations.<lang>]`: the customer-facing
//! wording of a purpose or a category in another language than the file's own. The translated
//! text is part of the policy text in force (hashed and published like the rest), so a consent
//! given on a French page refers to the French wording as exactly as an English one to the English.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Source;
use crate::{PolicyError, Translation};

/// The languages a translation may be given in: those the customer pages are written in, besides
/// the files' own (English).
pub(crate) const LANGUAGES: &[&str] = &["fr"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTranslation {
    name: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    recipients: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    legal_hold_reason: Option<Spanned<String>>,
}

/// Checks the translations of one entry. `recipients` is how many recipients the entry lists
/// (`None` where the entry has none to translate): a translation of them must list as many.
/// `legal_hold` says whether the entry is a category with a legal hold, whose reason may be
/// translated too (`legal_hold_reason`).
pub(crate) fn check(
    source: &Source<'_>,
    raw: BTreeMap<Spanned<String>, RawTranslation>,
    recipients: Option<usize>,
    legal_hold: bool,
) -> Result<BTreeMap<String, Translation>, PolicyError> {
    let mut out = BTreeMap::new();
    for (lang, raw) in raw {
        if !LANGUAGES.contains(&lang.get_ref().as_str()) {
            return Err(source.error_at(
                lang.span(),
                format!(
                    "no translation into `{}`: the customer pages are written in English and {}",
                    lang.get_ref(),
                    LANGUAGES.join(", ")
                ),
            ));
        }
        let translated_recipients = match (&raw.recipients, recipients) {
            (None, _) => None,
            (Some(list), None) => {
                return Err(source.error_at(
                    list.span(),
                    "`recipients` can only be translated for a purpose",
                ));
            }
            (Some(list), Some(expected)) => {
                if list.get_ref().len() != expected {
                    return Err(source.error_at(
                        list.span(),
                        format!(
                            "`recipients` lists {} names but the purpose has {expected}: translate each, in the same order",
                            list.get_ref().len()
                        ),
                    ));
                }
                Some(
                    list.get_ref()
                        .iter()
                        .map(|r| source.text(r, "recipients"))
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
        };
        let legal_hold_reason = match &raw.legal_hold_reason {
            None => None,
            Some(reason) if legal_hold => Some(source.text(reason, "legal_hold_reason")?),
            Some(reason) => {
                return Err(source.error_at(
                    reason.span(),
                    "`legal_hold_reason` translates a category's `legal_hold.reason`, and this entry has none",
                ));
            }
        };
        out.insert(
            lang.get_ref().clone(),
            Translation {
                name: source.text(&raw.name, "name")?,
                description: source.text(&raw.description, "description")?,
                recipients: translated_recipients,
                legal_hold_reason,
            },
        );
    }
    Ok(out)
}
