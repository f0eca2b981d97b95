//! The architecture invariants of docs/architecture.md, checked over `cargo metadata`: one crate
//! owns each outside dependency, the core crate does no I/O, and only the binary uses the benchmarks.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::harness::repo_root;

/// `cargo metadata` of the workspace's own packages.
fn workspace_packages() -> Vec<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"].as_array().unwrap().clone()
}

/// Each workspace crate's direct normal dependencies; `optional` also lists the optional ones.
fn dependencies(optional: bool) -> BTreeMap<String, Vec<String>> {
    workspace_packages()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() && (optional || d["optional"] != true))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// Each workspace crate's direct normal dependencies, optional ones left out.
fn direct_dependencies() -> BTreeMap<String, Vec<String>> {
    dependencies(false)
}

#[test]
fn one_crate_owns_each_outside_dependency() {
    let deps = direct_dependencies();
    assert!(
        deps.len() >= 7,
        "found the workspace crates: {:?}",
        deps.keys()
    );
    // The product talks to PostgreSQL from the store alone; the benchmark's baseline is the
    // other user of the client, and of the throwaway clusters (tests name it as a
    // dev-dependency, which this list does not see).
    let owners: &[(&str, &[&str])] = &[
        ("ring", &["custodia-vault"]),
        ("aes-gcm", &["custodia-vault"]),
        ("sled", &["custodia-store"]),
        ("fjall", &["custodia-store"]),
        ("fs4", &["custodia-store"]),
        ("tantivy", &["custodia-search"]),
        ("axum", &["custodia-server"]),
        ("tower-http", &["custodia-server"]),
        ("hyper", &["custodia-server"]),
        ("hyper-util", &["custodia-server"]),
        ("utoipa", &["custodia-server"]),
        ("tokio-postgres", &["custodia-store", "custodia-bench"]),
        ("custodia-pgcluster", &["custodia-bench"]),
    ];
    for (dependency, allowed) in owners {
        for (krate, list) in &deps {
            if list.iter().any(|d| d == dependency) {
                assert!(
                    allowed.contains(&krate.as_str()),
                    "{krate} depends on {dependency}; only {allowed:?} may"
                );
            }
        }
    }
}

/// The crates that own the types of the API's answers and inputs derive their JSON Schemas with
/// utoipa behind an `openapi` feature: utoipa is optional there, named by that feature alone, and
/// only the server (which builds the OpenAPI document) turns the feature on.
#[test]
fn utoipa_is_optional_outside_the_server_and_only_the_server_asks_for_schemas() {
    let with_optional = dependencies(true);
    let schema_crates = ["custodia-core", "custodia-engine", "custodia-analytics"];
    for (krate, list) in &with_optional {
        if list.iter().any(|d| d == "utoipa") {
            assert!(
                krate == "custodia-server" || schema_crates.contains(&krate.as_str()),
                "{krate} depends on utoipa"
            );
        }
    }
    for package in workspace_packages() {
        let name = package["name"].as_str().unwrap();
        if schema_crates.contains(&name) {
            let features = package["features"]["openapi"].as_array().unwrap();
            assert!(
                features.iter().any(|f| f == "dep:utoipa"),
                "{name}'s openapi feature"
            );
        }
        for dep in package["dependencies"].as_array().unwrap() {
            let asks = dep["features"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "openapi");
            assert!(
                !asks || name == "custodia-server",
                "{name} turns on the openapi feature of {}",
                dep["name"]
            );
        }
    }
}

#[test]
fn core_does_no_io() {
    let deps = direct_dependencies();
    let core = &deps["custodia-core"];
    for io in [
        "tokio", "sled", "ring", "aes-gcm", "axum", "tantivy", "tracing",
    ] {
        assert!(
            !core.iter().any(|d| d == io),
            "custodia-core depends on {io}"
        );
    }
    let engine = &deps["custodia-engine"];
    for http in ["axum", "tokio", "tower", "ring", "sled"] {
        assert!(
            !engine.iter().any(|d| d == http),
            "custodia-engine depends on {http}"
        );
    }
}

#[test]
fn only_the_binary_depends_on_the_benchmarks() {
    let deps = dependencies(true);
    assert!(deps.contains_key("custodia-bench"), "{:?}", deps.keys());
    for (krate, names) in &deps {
        assert!(
            krate == "custodia" || !names.iter().any(|d| d == "custodia-bench"),
            "{krate} depends on custodia-bench"
        );
    }
}
