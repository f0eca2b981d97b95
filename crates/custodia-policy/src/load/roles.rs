//! `roles.toml`: roles, with the operations and purposes each may use; `"*"` means all of them.

use std::collections::BTreeSet;

use custodia_core::{Operation, PurposeId, RoleName};
use serde::Deserialize;
use toml::Spanned;

use super::Source;
use crate::{PolicyError, Purpose, REQUIRED_ROLES, Role};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRolesFile {
    #[serde(default, rename = "role")]
    roles: Vec<RawRole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    name: Spanned<String>,
    description: Spanned<String>,
    operations: Vec<Spanned<String>>,
    purposes: Vec<Spanned<String>>,
}

/// The entry that stands for every operation or every purpose; it must stand alone.
const WILDCARD: &str = "*";

/// Parses and checks `roles.toml` against the already checked purposes.
pub(crate) fn check(source: &Source<'_>, purposes: &[Purpose]) -> Result<Vec<Role>, PolicyError> {
    let raw: RawRolesFile = source.parse()?;
    let mut roles: Vec<Role> = Vec::with_capacity(raw.roles.len());

    for raw_role in raw.roles {
        let name_text = source.snake_id(&raw_role.name, "role name")?;
        let name: RoleName = name_text.parse().map_err(|_| {
            source.error_at(
                raw_role.name.span(),
                format!("invalid role name `{name_text}`"),
            )
        })?;
        if roles.iter().any(|role| role.name == name) {
            return Err(source.error_at(raw_role.name.span(), format!("duplicate role `{name}`")));
        }

        let operations = expand(
            source,
            &raw_role.operations,
            "operation",
            Operation::ALL.to_vec(),
            |text| {
                Operation::ALL
                    .into_iter()
                    .find(|op| op.as_str() == text)
                    .ok_or_else(|| {
                        let expected: Vec<&str> =
                            Operation::ALL.iter().map(|op| op.as_str()).collect();
                        format!(
                            "unknown operation `{text}`; expected `*` or one of {}",
                            expected.join(", ")
                        )
                    })
            },
        )?;
        let all_purposes: Vec<PurposeId> =
            purposes.iter().map(|purpose| purpose.id.clone()).collect();
        let role_purposes = expand(
            source,
            &raw_role.purposes,
            "purpose",
            all_purposes,
            |text| {
                purposes
                    .iter()
                    .find(|purpose| purpose.id.as_str() == text)
                    .map(|purpose| purpose.id.clone())
                    .ok_or_else(|| {
                        format!("unknown purpose `{text}`; purposes are defined in purposes.toml")
                    })
            },
        )?;

        roles.push(Role {
            name,
            description: source.text(&raw_role.description, "description")?,
            operations,
            purposes: role_purposes,
        });
    }

    for required in REQUIRED_ROLES {
        if !roles.iter().any(|role| role.name.as_str() == required) {
            return Err(source.error(format!(
                "missing role `{required}`; the API promises it to clients, so the policies must define it"
            )));
        }
    }
    Ok(roles)
}

/// Turns a list of names into a set: `["*"]` is every item of `all`, anything else is looked up
/// with `lookup`, whose error message is reported at the entry.
fn expand<T: Ord>(
    source: &Source<'_>,
    entries: &[Spanned<String>],
    kind: &str,
    all: Vec<T>,
    lookup: impl Fn(&str) -> Result<T, String>,
) -> Result<BTreeSet<T>, PolicyError> {
    if let [only] = entries
        && only.get_ref() == WILDCARD
    {
        return Ok(all.into_iter().collect());
    }
    let mut set = BTreeSet::new();
    for entry in entries {
        let text = entry.get_ref();
        if text == WILDCARD {
            return Err(source.error_at(
                entry.span(),
                format!("`*` already means every {kind}; list it alone"),
            ));
        }
        let item = lookup(text).map_err(|message| source.error_at(entry.span(), message))?;
        if !set.insert(item) {
            return Err(source.error_at(entry.span(), format!("{kind} `{text}` is listed twice")));
        }
    }
    Ok(set)
}
