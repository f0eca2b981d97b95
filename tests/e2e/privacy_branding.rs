//! The privacy center's branding and framing come from `[privacy_center]` in the policies: the
//! shop's name, logo, colour and contact reach the page, the logo's origin and the framing sites
//! reach the Content-Security-Policy, and a bad value stops the server at start naming its line.

use std::path::PathBuf;

use serde_json::Value;

use crate::harness::{Server, Site, copy_policies};

/// A copy of the repository's policies in the site's directory, with `policy.toml`'s
/// `[privacy_center]` table replaced by `table`.
fn policies_with(site: &Site, table: &str) -> PathBuf {
    let dir = site.dir.path().join("shop-policies");
    copy_policies(&dir);
    let path = dir.join("policy.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text
        .find("[privacy_center]")
        .expect("the default policy has the table");
    std::fs::write(&path, format!("{}{table}", &text[..start])).unwrap();
    dir
}

/// Serves the site with its own policies directory instead of the repository's.
fn serve_with(site: &Site, policies: &std::path::Path) -> Server {
    let data = site.data_dir();
    let keys = site.keys_dir();
    site.spawn_server(site.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
    ]))
}

/// A GET without a key: the status, the headers asked for, and the body as text.
fn fetch(base: &str, path: &str, names: &[&str]) -> (u16, Vec<Option<String>>, String) {
    let mut answer = ureq::get(&format!("{base}{path}"))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let headers = names
        .iter()
        .map(|n| {
            answer
                .headers()
                .get(*n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .collect();
    let body = answer.body_mut().read_to_string().unwrap();
    (answer.status().as_u16(), headers, body)
}

#[test]
fn a_shop_brands_the_page_and_names_the_sites_that_may_frame_it() {
    let site = Site::new();
    let policies = policies_with(
        &site,
        "[privacy_center]\n\
         shop_name = \"Maison Dupont\"\n\
         logo_url = \"https://cdn.maison-dupont.example/img/logo.png\"\n\
         accent_colour = \"#0B5D3B\"\n\
         privacy_policy_url = \"https://maison-dupont.example/confidentialite\"\n\
         contact = \"dpo@maison-dupont.example\"\n\
         frame_ancestors = [\"https://maison-dupont.example\", \"https://*.maison-dupont.example\"]\n",
    );
    let server = serve_with(&site, &policies);
    let base = server.base.clone();

    let names = ["content-security-policy", "x-frame-options"];
    for path in [
        "/privacy",
        "/privacy/assets/privacy.js",
        "/privacy/config.json",
    ] {
        let (status, headers, _) = fetch(&base, path, &names);
        assert_eq!(status, 200, "{path}");
        let csp = headers[0].clone().unwrap_or_default();
        assert!(
            csp.contains("img-src 'self' https://cdn.maison-dupont.example;"),
            "{path}: {csp}"
        );
        assert!(
            csp.contains(
                "frame-ancestors https://maison-dupont.example https://*.maison-dupont.example"
            ),
            "{path}: {csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        // X-Frame-Options cannot name sites, so it gives way to frame-ancestors.
        assert_eq!(headers[1], None, "{path}");
    }

    let (_, _, config) = fetch(&base, "/privacy/config.json", &[]);
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["shop_name"], "Maison Dupont");
    assert_eq!(
        config["logo_url"],
        "https://cdn.maison-dupont.example/img/logo.png"
    );
    assert_eq!(
        config["privacy_policy_url"],
        "https://maison-dupont.example/confidentialite"
    );
    assert_eq!(config["contact"], "dpo@maison-dupont.example");
    assert_eq!(config["controller"], "Example Shop GmbH");

    let (status, headers, css) = fetch(
        &base,
        "/privacy/assets/brand.css",
        &["content-type", "content-security-policy"],
    );
    assert_eq!(status, 200);
    assert_eq!(headers[0].as_deref(), Some("text/css; charset=utf-8"));
    assert!(headers[1].is_some());
    assert!(css.contains("--accent: #0b5d3b;"), "{css}");
}

#[test]
fn without_a_table_the_page_cannot_be_framed_and_uses_the_controller() {
    let site = Site::new();
    let policies = policies_with(&site, "");
    let server = serve_with(&site, &policies);
    let (_, headers, _) = fetch(
        &server.base,
        "/privacy",
        &["content-security-policy", "x-frame-options"],
    );
    let csp = headers[0].clone().unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("img-src 'self';"), "{csp}");
    assert_eq!(headers[1].as_deref(), Some("DENY"));
    let (_, _, config) = fetch(&server.base, "/privacy/config.json", &[]);
    let config: Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["shop_name"], "Example Shop GmbH");
    assert_eq!(config["contact"], "privacy@example.com");
    assert_eq!(config["logo_url"], Value::Null);
    let (_, _, css) = fetch(&server.base, "/privacy/assets/brand.css", &[]);
    assert!(css.contains("--accent: #1f4fa3;"), "{css}");
}

#[test]
fn a_bad_branding_value_stops_the_server_naming_its_line() {
    let site = Site::new();
    let policies = policies_with(
        &site,
        "[privacy_center]\nframe_ancestors = [\"https://shop.example; script-src *\"]\n",
    );
    let text = std::fs::read_to_string(policies.join("policy.toml")).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("frame_ancestors"))
        .unwrap()
        + 1;
    let out = site
        .command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policies",
            policies.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("policy.toml:{line}")) && stderr.contains("frame_ancestors"),
        "names the file, line and key: {stderr}"
    );
}
