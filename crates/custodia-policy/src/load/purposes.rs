//! `purposes.toml`: the purposes of processing, their lawful basis, categories and recipients.

use std::collections::BTreeMap;

use custodia_core::LawfulBasis;
use serde::Deserialize;
use toml::Spanned;

use super::Source;
use crate::{Category, PolicyError, Purpose, REQUIRED_PURPOSES};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurposesFile {
    #[serde(default, rename = "purpose")]
    purposes: Vec<RawPurpose>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    id: Spanned<String>,
    name: Spanned<String>,
    description: Spanned<String>,
    lawful_basis: Spanned<String>,
    requires_consent: Spanned<bool>,
    categories: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    recipients: Vec<Spanned<String>>,
    #[serde(default)]
    retention_days: Option<Spanned<u32>>,
    #[serde(default)]
    consent_expiry_days: Option<Spanned<u32>>,
    #[serde(default)]
    gpc_opt_out: bool,
    #[serde(default)]
    search: bool,
    #[serde(default)]
    translations: BTreeMap<Spanned<String>, super::translations::RawTranslation>,
}

/// Every lawful basis, to parse the file's string with a message that lists them.
const LAWFUL_BASES: [LawfulBasis; 6] = [
    LawfulBasis::Consent,
    LawfulBasis::Contract,
    LawfulBasis::LegalObligation,
    LawfulBasis::VitalInterests,
    LawfulBasis::PublicTask,
    LawfulBasis::LegitimateInterest,
];

/// Parses and checks `purposes.toml` against the already checked categories.
pub(crate) fn check(
    source: &Source<'_>,
    categories: &[Category],
) -> Result<Vec<Purpose>, PolicyError> {
    let raw: RawPurposesFile = source.parse()?;
    let mut purposes: Vec<Purpose> = Vec::with_capacity(raw.purposes.len());

    for raw_purpose in raw.purposes {
        let id = source.purpose_id(&raw_purpose.id)?;
        if purposes.iter().any(|purpose| purpose.id == id) {
            return Err(source.error_at(
                raw_purpose.id.span(),
                format!("duplicate purpose id `{id}`"),
            ));
        }

        let basis_text = raw_purpose.lawful_basis.get_ref();
        let Some(lawful_basis) = LAWFUL_BASES
            .into_iter()
            .find(|basis| basis.as_str() == basis_text)
        else {
            let expected: Vec<&str> = LAWFUL_BASES.iter().map(|basis| basis.as_str()).collect();
            return Err(source.error_at(
                raw_purpose.lawful_basis.span(),
                format!(
                    "unknown lawful basis `{basis_text}`; expected one of {}",
                    expected.join(", ")
                ),
            ));
        };

        // Written out in the file so that nobody changes the basis without seeing what it implies.
        let requires_consent = *raw_purpose.requires_consent.get_ref();
        let is_consent = lawful_basis == LawfulBasis::Consent;
        if requires_consent != is_consent {
            let message = if is_consent {
                "lawful basis `consent` needs `requires_consent = true`".to_owned()
            } else {
                format!(
                    "`requires_consent = true` but lawful basis is `{}`; only a `consent` purpose requires consent",
                    lawful_basis.as_str()
                )
            };
            return Err(source.error_at(raw_purpose.requires_consent.span(), message));
        }

        if raw_purpose.categories.get_ref().is_empty() {
            return Err(source.error_at(
                raw_purpose.categories.span(),
                "`categories` must list the data categories the purpose uses",
            ));
        }
        let mut purpose_categories = Vec::with_capacity(raw_purpose.categories.get_ref().len());
        for category in raw_purpose.categories.get_ref() {
            let category_id = category.get_ref();
            if !categories.iter().any(|known| &known.id == category_id) {
                return Err(source.error_at(
                    category.span(),
                    format!("unknown category `{category_id}`; categories are defined in categories.toml"),
                ));
            }
            if purpose_categories.contains(category_id) {
                return Err(source.error_at(
                    category.span(),
                    format!("category `{category_id}` is listed twice"),
                ));
            }
            purpose_categories.push(category_id.clone());
        }

        let recipients: Vec<String> = raw_purpose
            .recipients
            .iter()
            .map(|recipient| source.text(recipient, "recipients"))
            .collect::<Result<_, _>>()?;
        let translations = super::translations::check(
            source,
            raw_purpose.translations,
            Some(recipients.len()),
            false,
        )?;
        let retention_days = raw_purpose
            .retention_days
            .as_ref()
            .map(|days| source.days(days, "retention_days"))
            .transpose()?;
        let consent_expiry_days = match &raw_purpose.consent_expiry_days {
            Some(days) if !is_consent => {
                return Err(source.error_at(
                    days.span(),
                    "`consent_expiry_days` is only for purposes whose lawful basis is `consent`",
                ));
            }
            Some(days) => Some(source.days(days, "consent_expiry_days")?),
            None => None,
        };

        purposes.push(Purpose {
            id,
            name: source.text(&raw_purpose.name, "name")?,
            description: source.text(&raw_purpose.description, "description")?,
            lawful_basis,
            requires_consent,
            categories: purpose_categories,
            recipients,
            retention_days,
            consent_expiry_days,
            gpc_opt_out: raw_purpose.gpc_opt_out,
            search: raw_purpose.search,
            translations,
        });
    }

    for required in REQUIRED_PURPOSES {
        if !purposes
            .iter()
            .any(|purpose| purpose.id.as_str() == required)
        {
            return Err(source.error(format!(
                "missing purpose `{required}`; the API promises it to clients, so the policies must define it"
            )));
        }
    }
    Ok(purposes)
}
