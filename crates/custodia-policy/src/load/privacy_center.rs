//! `[privacy_center]` in `policy.toml`: the shop's name, logo, colour, privacy-policy link,
//! contact and the sites that may frame the page. Every value ends up in a web page or in a
//! Content-Security-Policy header, so each is checked to be exactly what its field allows.

use serde::Deserialize;
use toml::Spanned;

use super::Source;
use super::policy_file::is_plausible_email;
use crate::{Controller, PolicyError, PrivacyCenter};

/// Custodia's own accent colour, used when the table names none.
pub(crate) const DEFAULT_ACCENT: &str = "#1f4fa3";

/// Longest shop name and URL accepted.
const MAX_NAME: usize = 100;
const MAX_URL: usize = 2048;
/// More framing sites than this is a mistake, not a configuration.
const MAX_FRAME_ANCESTORS: usize = 16;
/// WCAG 2.x AA for normal text: white on the accent colour must reach this contrast.
const MIN_CONTRAST: f64 = 4.5;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrivacyCenter {
    shop_name: Option<Spanned<String>>,
    logo_url: Option<Spanned<String>>,
    accent_colour: Option<Spanned<String>>,
    privacy_policy_url: Option<Spanned<String>>,
    contact: Option<Spanned<String>>,
    #[serde(default)]
    frame_ancestors: Vec<Spanned<String>>,
}

/// Checks the table, filling in the defaults from the controller.
pub(crate) fn check(
    source: &Source<'_>,
    raw: RawPrivacyCenter,
    controller: &Controller,
) -> Result<PrivacyCenter, PolicyError> {
    let shop_name = match &raw.shop_name {
        Some(name) => {
            let text = source.text(name, "shop_name")?;
            if text.chars().count() > MAX_NAME || text.chars().any(char::is_control) {
                return Err(source.error_at(
                    name.span(),
                    format!(
                        "`shop_name` must be one line of at most {MAX_NAME} characters; it is the page's heading"
                    ),
                ));
            }
            text
        }
        None => controller.name.clone(),
    };

    let logo_url = match &raw.logo_url {
        Some(url) => {
            let text = url.get_ref();
            let ok = text.len() <= MAX_URL
                && url_chars_ok(text)
                && (same_origin_path(text) || https_origin(text).is_some());
            if !ok {
                return Err(source.error_at(
                    url.span(),
                    "`logo_url` must be a path on this server (`/…`) or an `https://` URL of at most 2048 characters without spaces, quotes or `;`",
                ));
            }
            Some(text.clone())
        }
        None => None,
    };

    let accent_colour = match &raw.accent_colour {
        Some(colour) => {
            let Some(rgb) = parse_hex_colour(colour.get_ref()) else {
                return Err(source.error_at(
                    colour.span(),
                    "`accent_colour` must be a colour written `#rrggbb`",
                ));
            };
            let ratio = contrast_with_white(rgb);
            if ratio < MIN_CONTRAST {
                return Err(source.error_at(
                    colour.span(),
                    format!(
                        "`accent_colour` is too light: white text on it has a contrast of {ratio:.2}:1, below the {MIN_CONTRAST}:1 that WCAG AA asks for; choose a darker colour"
                    ),
                ));
            }
            colour.get_ref().to_ascii_lowercase()
        }
        None => DEFAULT_ACCENT.to_owned(),
    };

    let privacy_policy_url = match &raw.privacy_policy_url {
        Some(url) => {
            let text = url.get_ref();
            let ok = text.len() <= MAX_URL
                && url_chars_ok(text)
                && (https_origin(text).is_some() || text.starts_with("http://"));
            if !ok {
                return Err(source.error_at(
                    url.span(),
                    "`privacy_policy_url` must be an http(s) URL of at most 2048 characters without spaces or quotes",
                ));
            }
            Some(text.clone())
        }
        None => None,
    };

    let contact = match &raw.contact {
        Some(contact) => {
            let text = source.text(contact, "contact")?;
            if !is_plausible_email(&text) || text.len() > 256 {
                return Err(source.error_at(
                    contact.span(),
                    format!("`contact` must be an e-mail address, not `{text}`"),
                ));
            }
            text
        }
        None => controller.contact.clone(),
    };

    if raw.frame_ancestors.len() > MAX_FRAME_ANCESTORS {
        return Err(source.error(format!(
            "`frame_ancestors` names more than {MAX_FRAME_ANCESTORS} sites"
        )));
    }
    let mut frame_ancestors = Vec::new();
    for site in &raw.frame_ancestors {
        let text = site.get_ref();
        if !is_frame_ancestor(text) {
            return Err(source.error_at(
                site.span(),
                format!(
                    "`frame_ancestors` entries must be `'self'` or an origin such as `https://shop.example`, `https://*.shop.example` or `https://shop.example:8443` (no path), not `{text}`"
                ),
            ));
        }
        if !frame_ancestors.contains(text) {
            frame_ancestors.push(text.clone());
        }
    }

    Ok(PrivacyCenter {
        shop_name,
        logo_url,
        accent_colour,
        privacy_policy_url,
        contact,
        frame_ancestors,
    })
}

/// No character that could end a header value, a CSP source or an HTML attribute.
fn url_chars_ok(text: &str) -> bool {
    text.bytes().all(|b| {
        b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b';' | b',' | b'<' | b'>' | b'\\')
    })
}

/// `/path` on this server (not `//host`, which a browser reads as another origin).
fn same_origin_path(text: &str) -> bool {
    text.starts_with('/') && !text.starts_with("//")
}

/// The origin of an `https://` URL (`https://host[:port]`), if the URL is one.
pub(crate) fn https_origin(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("https://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    host_and_port_ok(authority, false).then(|| &text[.."https://".len() + end])
}

/// `host` or `host:port`, a DNS name of letters, digits, `-` and `.` (a leading `*.` only where
/// wildcards are allowed), a port of 1 to 5 digits; no user info.
fn host_and_port_ok(authority: &str, wildcard: bool) -> bool {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host = match host.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => host,
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok
        && !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `'self'`, or `https://host[:port]` with an optional leading `*.` in the host and nothing after.
fn is_frame_ancestor(text: &str) -> bool {
    if text == "'self'" {
        return true;
    }
    text.strip_prefix("https://")
        .is_some_and(|authority| host_and_port_ok(authority, true))
}

/// `#rrggbb` as three bytes.
fn parse_hex_colour(text: &str) -> Option<[u8; 3]> {
    let hex = text.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// The WCAG 2.x contrast ratio of white on this colour: (1 + 0.05) / (L + 0.05), with L the
/// colour's relative luminance.
fn contrast_with_white(rgb: [u8; 3]) -> f64 {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2]);
    1.05 / (luminance + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_matches_the_wcag_reference_values() {
        // White on black is 21:1, white on white 1:1; #767676 is the classic lightest AA grey.
        assert!((contrast_with_white([0, 0, 0]) - 21.0).abs() < 0.01);
        assert!((contrast_with_white([255, 255, 255]) - 1.0).abs() < 0.01);
        assert!(contrast_with_white([0x76, 0x76, 0x76]) >= 4.5);
        assert!(contrast_with_white([0x77, 0x77, 0x77]) < 4.5);
    }

    #[test]
    fn origins_and_frame_sources_are_exactly_what_they_claim() {
        assert_eq!(
            https_origin("https://cdn.shop.example/logo.svg"),
            Some("https://cdn.shop.example")
        );
        assert_eq!(
            https_origin("https://shop.example:8443?x"),
            Some("https://shop.example:8443")
        );
        for bad in [
            "http://shop.example/a.png",
            "https://user@shop.example/",
            "https://",
            "https://shop..example/",
            "https://*.shop.example/",
            "https://shop.example:99999x/",
        ] {
            assert_eq!(https_origin(bad), None, "{bad}");
        }
        for good in [
            "'self'",
            "https://shop.example",
            "https://*.shop.example",
            "https://shop.example:8443",
        ] {
            assert!(is_frame_ancestor(good), "{good}");
        }
        for bad in [
            "*",
            "https://shop.example/",
            "https://shop.example; script-src *",
            "http://shop.example",
            "'none'",
            "https://shop.example 'unsafe-inline'",
            "data:",
        ] {
            assert!(!is_frame_ancestor(bad), "{bad}");
        }
    }
}
