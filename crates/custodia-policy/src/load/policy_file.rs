//! `policy.toml`: the version label, the controller, the supervisory authority and the rights text.

use serde::Deserialize;
use toml::Spanned;

use super::Source;
use crate::{Controller, PolicyError, PrivacyCenter};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyFile {
    version: Spanned<String>,
    rights: Spanned<Vec<Spanned<String>>>,
    controller: RawController,
    supervisory_authority: RawAuthority,
    #[serde(default)]
    retention: Option<RawRetention>,
    #[serde(default)]
    privacy_center: Option<super::privacy_center::RawPrivacyCenter>,
    #[serde(default)]
    translations: std::collections::BTreeMap<Spanned<String>, RawPolicyTranslation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicyTranslation {
    rights: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    dormant_profile_days: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawController {
    name: Spanned<String>,
    contact: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthority {
    name: Spanned<String>,
    url: Spanned<String>,
}

/// What `policy.toml` holds, checked.
pub(crate) struct PolicyFile {
    pub(crate) version: String,
    pub(crate) controller: Controller,
    pub(crate) privacy_center: PrivacyCenter,
    pub(crate) rights: Vec<String>,
    pub(crate) rights_translations: std::collections::BTreeMap<String, Vec<String>>,
    pub(crate) dormant_profile_days: Option<u32>,
}

/// Parses and checks `policy.toml`.
pub(crate) fn check(source: &Source<'_>) -> Result<PolicyFile, PolicyError> {
    let raw: RawPolicyFile = source.parse()?;

    // The label goes into ledger entries and consent records, so keep it short and plain.
    let version = raw.version.get_ref();
    let version_ok = (1..=64).contains(&version.len())
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !version_ok {
        return Err(source.error_at(
            raw.version.span(),
            format!("invalid version `{version}`: use 1 to 64 characters of letters, digits, `.`, `_` and `-`, such as a date"),
        ));
    }

    let contact = source.text(&raw.controller.contact, "contact")?;
    if !is_plausible_email(&contact) {
        return Err(source.error_at(
            raw.controller.contact.span(),
            format!("`contact` must be the e-mail address of the data protection officer, not `{contact}`"),
        ));
    }
    let url = source.text(&raw.supervisory_authority.url, "url")?;
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(source.error_at(
            raw.supervisory_authority.url.span(),
            format!("`url` must be an http(s) URL, not `{url}`"),
        ));
    }
    let controller = Controller {
        name: source.text(&raw.controller.name, "name")?,
        contact,
        supervisory_authority: source.text(&raw.supervisory_authority.name, "name")?,
        supervisory_authority_url: url,
    };

    if raw.rights.get_ref().is_empty() {
        return Err(source.error_at(
            raw.rights.span(),
            "`rights` must describe the subject's rights; it is quoted in every access export",
        ));
    }
    let rights: Vec<String> = raw
        .rights
        .get_ref()
        .iter()
        .map(|right| source.text(right, "rights"))
        .collect::<Result<_, _>>()?;
    let mut rights_translations = std::collections::BTreeMap::new();
    for (lang, translation) in &raw.translations {
        if !super::translations::LANGUAGES.contains(&lang.get_ref().as_str()) {
            return Err(source.error_at(
                lang.span(),
                format!(
                    "no translation into `{}`: the customer pages are written in English and {}",
                    lang.get_ref(),
                    super::translations::LANGUAGES.join(", ")
                ),
            ));
        }
        let list = translation.rights.get_ref();
        if list.len() != rights.len() {
            return Err(source.error_at(
                translation.rights.span(),
                format!(
                    "`rights` lists {} sentences but the English text has {}: translate each, in the same order",
                    list.len(),
                    rights.len()
                ),
            ));
        }
        let texts = list
            .iter()
            .map(|right| source.text(right, "rights"))
            .collect::<Result<Vec<_>, _>>()?;
        rights_translations.insert(lang.get_ref().clone(), texts);
    }

    let dormant_profile_days = match raw.retention.and_then(|r| r.dormant_profile_days) {
        Some(days) => Some(source.days(&days, "dormant_profile_days")?),
        None => None,
    };

    let privacy_center =
        super::privacy_center::check(source, raw.privacy_center.unwrap_or_default(), &controller)?;

    Ok(PolicyFile {
        version: version.clone(),
        privacy_center,
        controller,
        rights,
        rights_translations,
        dormant_profile_days,
    })
}

/// One `@` with something on each side and no white space: enough to catch a name or URL written
/// where the address belongs, without pretending to validate e-mail syntax.
pub(super) fn is_plausible_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}
