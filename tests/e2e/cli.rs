//! The command line as an operator meets it: key creation, refusing to start without a root key
//! or with a bad policy file, the demo, and `--help` everywhere.

use serde_json::{Value, json};

use crate::harness::{Site, copy_policies, repo_root};

#[test]
fn serve_refuses_without_a_root_key() {
    let site = Site::new();
    let out = site
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env_remove("CUSTODIA_MASTER_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CUSTODIA_MASTER_KEY"), "{stderr}");
    assert!(
        stderr.contains("serve --demo") && !stderr.contains("use --demo"),
        "the hint names a way that works: {stderr}"
    );
    assert!(!site.data_dir().exists(), "nothing was created");
}

#[test]
fn a_bad_policy_file_stops_start_up_naming_file_and_line() {
    let site = Site::new();
    let policies = site.dir.path().join("policies");
    copy_policies(&policies);
    let purposes = policies.join("purposes.toml");
    let text = std::fs::read_to_string(&purposes).unwrap();
    let broken = text.replacen(
        "lawful_basis = \"contract\"",
        "lawful_basis = \"because\"",
        1,
    );
    assert_ne!(
        text, broken,
        "the fixture found a contract purpose to break"
    );
    let line = broken
        .lines()
        .position(|l| l.contains("\"because\""))
        .unwrap()
        + 1;
    std::fs::write(&purposes, broken).unwrap();
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
        stderr.contains(&format!("purposes.toml:{line}")),
        "names file and line {line}: {stderr}"
    );
}

#[test]
fn keys_create_refuses_while_a_server_holds_the_data() {
    let site = Site::new();
    let key = site.create_key("admin");
    let server = site.serve(&[]);
    let out = site.run(&["keys", "create", "--role", "app"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    // A running server creates keys through the API instead.
    let created = server.post(&key, "/v1/admin/keys", &json!({"role": "app"}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let app_key = created.body["api_key"].as_str().unwrap();
    assert_eq!(server.get(app_key, "/v1/purposes").status, 200);
    let out = site.run(&["keys", "create", "--role", "no_such_role"]);
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn usage_errors_exit_2_and_help_works() {
    let site = Site::new();
    let out = site.command(&["serve", "--no-such-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A value out of range is a usage error that names the flag.
    let out = site
        .command(&["serve", "--store-cache-mb", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--store-cache-mb"));
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["keys", "create", "--help"],
        &["bench", "ingest", "--help"],
        &["backup", "create", "--help"],
        &["backup", "restore", "--help"],
    ] {
        let out = site.command(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{args:?}"
        );
    }
}

#[test]
fn demo_creates_a_private_root_key_and_a_usable_shop() {
    let site = Site::new();
    let (data, keys) = (site.data_dir(), site.keys_dir());
    let server = site.serve_demo();
    let master = site.dir.path().join("custodia-master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&master).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let app_key = site.demo_key("app");
    let found = server.get(
        &app_key,
        "/v1/subjects?user_id=demo-0001&purpose=customer_support",
    );
    assert_eq!(found.status, 200, "{:?}", found.body);
    let subject = found.body["subjects"][0]["subject_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = server.get(
        &app_key,
        &format!("/v1/subjects/{subject}/events?purpose=order_fulfillment"),
    );
    assert_eq!(events.status, 200);
    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(
        log.contains("DEMO MODE"),
        "the generated key is announced loudly"
    );
    assert!(!log.contains(&app_key), "api keys are not logged");

    // The officer's queue has work on it: requests in several states, one past its deadline,
    // each with a timeline as old as the request.
    let compliance = site.demo_key("compliance");
    let queue = server.get(&compliance, "/v1/dsr");
    let requests = queue.body["requests"].as_array().unwrap();
    let statuses: std::collections::BTreeSet<&str> = requests
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        ["awaiting_compliance", "completed", "pending_verification"],
        "{requests:?}"
    );
    let overdue: Vec<&Value> = requests
        .iter()
        .filter(|r| r["overdue"] == json!(true))
        .collect();
    assert_eq!(overdue.len(), 1, "{requests:?}");
    let id = overdue[0]["request_id"].as_str().unwrap();
    let case = server.get(
        &compliance,
        &format!("/v1/dsr/{id}/case?purpose=customer_support"),
    );
    assert_eq!(case.status, 200, "{:?}", case.body);
    let day = |v: &Value| v.as_str().unwrap()[..10].to_owned();
    assert_eq!(
        day(&case.body["timeline"][0]["time"]),
        day(&overdue[0]["received_at"]),
        "the ledger entry is as old as the request"
    );
    assert!(
        !site.dir.path().join("outbox").exists(),
        "the demo's codes never reach the outbox"
    );
    assert!(server.stop().success());
    // The other commands find the demo's root key in the same directory.
    let out = site
        .command(&[
            "keys",
            "create",
            "--role",
            "app",
            "--data-dir",
            data.to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
        ])
        .env_remove("CUSTODIA_MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cus_"));
}

#[test]
fn rate_limit_flags_apply_per_key() {
    let site = Site::new();
    let key = site.create_key("app");
    let other = site.create_key("app");
    let server = site.serve(&["--rate-limit", "0.2", "--rate-limit-burst", "2"]);
    assert_eq!(server.get(&key, "/v1/purposes").status, 200);
    assert_eq!(server.get(&key, "/v1/purposes").status, 200);
    let limited = server.get(&key, "/v1/purposes");
    assert_eq!(limited.status, 429);
    assert_eq!(limited.body["code"], "rate_limited");
    assert_eq!(server.get(&other, "/v1/purposes").status, 200);
}

#[test]
fn a_key_store_inside_or_equal_to_the_data_directory_is_refused_by_every_command() {
    let site = Site::new();
    let policies = repo_root().join("policies");
    let policies = policies.to_str().unwrap();
    // (data dir, keys dir): equal, keys inside data (also through `..`), data inside keys.
    let placements = [
        ("data", "data"),
        ("data", "./data/"),
        ("data", "data/keys"),
        ("data", "other/../data/keys"),
        ("keys/data", "keys"),
    ];
    let commands: [&[&str]; 5] = [
        &["serve", "--listen", "127.0.0.1:0"],
        &["keys", "create", "--role", "app"],
        &["keys", "rotate"],
        &["retention", "run"],
        &["index", "rebuild"],
    ];
    for (data, keys) in placements {
        for command in commands {
            let mut args = command.to_vec();
            args.extend([
                "--data-dir",
                data,
                "--keys-dir",
                keys,
                "--policies",
                policies,
            ]);
            let out = site.command(&args).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("--data-dir {data}"))
                    && stderr.contains(&format!("--keys-dir {keys}")),
                "names both paths: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{args:?}: no key was printed");
            assert!(
                site.all_files().is_empty() && !site.dir.path().join(data).exists(),
                "{args:?}: nothing was created"
            );
        }
    }
    // Side by side is fine.
    let out = site
        .command(&[
            "keys",
            "create",
            "--role",
            "app",
            "--data-dir",
            "data",
            "--keys-dir",
            "keys",
            "--policies",
            policies,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn help_and_version_describe_every_command() {
    let site = Site::new();
    let out = site.cli_ok(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for command in [
        "serve",
        "keys",
        "ledger",
        "audit",
        "index",
        "retention",
        "backup",
        "bench",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{command} ")))
            .unwrap_or_else(|| panic!("--help lists {command}: {help}"));
        assert!(
            line.split_whitespace().count() > 2,
            "{command} has a one-line description: {line}"
        );
    }
    let out = site.cli_ok(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("custodia {}", env!("CARGO_PKG_VERSION"))
    );
    assert_ne!(env!("CARGO_PKG_VERSION"), "0.0.0", "a real version");

    let audit = site.cli_ok(&["audit", "verify", "--help"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.contains("access log"), "{audit}");
    assert!(
        !audit.contains("ledger/<tenant>"),
        "not the ledger's text: {audit}"
    );
    let rotate = site.cli_ok(&["keys", "rotate", "--help"]);
    assert!(
        String::from_utf8_lossy(&rotate.stdout).contains("server stopped"),
        "says the server must be stopped"
    );
}

#[test]
fn bad_serve_values_are_usage_errors_naming_the_flag() {
    let site = Site::new();
    for (flag, value) in [
        ("--outbox", "ftp://x"),
        ("--outbox", "dir:"),
        ("--analytics-k", "0"),
        ("--default-currency", "euro"),
        ("--listen", "127.0.0.1:99999"),
        ("--listen", "no-such-host.invalid:8080"),
    ] {
        let out = site.command(&["serve", flag, value]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(!site.data_dir().exists(), "nothing was created");
    }
    // An outbox inside the data directory is a usage error too, found before anything opens.
    let data = site.data_dir();
    let outbox = format!("dir:{}", data.join("outbox").display());
    let out = site.run(&["serve", "--listen", "127.0.0.1:0", "--outbox", &outbox]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--outbox"), "{stderr}");
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn listen_takes_a_host_name() {
    let site = Site::new();
    let key = site.create_key("app");
    let data = site.data_dir();
    let keys = site.keys_dir();
    let policies = repo_root().join("policies");
    let args = [
        "serve",
        "--listen",
        "localhost:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
        "--policies",
        policies.to_str().unwrap(),
    ];
    let server = site.spawn_server(site.command(&args));
    assert_eq!(server.get(&key, "/v1/purposes").status, 200);
    assert!(server.stop().success());
}

#[test]
fn the_default_rate_limit_lets_a_shop_backend_read_in_a_loop() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[]);
    for i in 0..500 {
        let answer = server.get(&key, "/v1/purposes");
        assert_eq!(answer.status, 200, "read {i}: {:?}", answer.body);
    }
    assert!(server.stop().success());
}

/// `custodia bench analytics --store` at a tiny size, so that it cannot rot: it checks on its
/// own that the engine's and the HTTP answers (from the packed store and from the in-memory copy)
/// equal the in-memory computation, and fails otherwise (no timing is asserted).
#[test]
fn bench_analytics_store_runs_at_a_tiny_size() {
    let site = Site::new();
    let out = site.cli_ok(&[
        "bench",
        "analytics",
        "--subjects",
        "300",
        "--events",
        "3000",
        "--runs",
        "1",
        "--store",
        "--ingest-events",
        "100",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    for row in [
        "| HTTP GET /v1/analytics/kpis?compare=previous&series=week (copy) | 3000 |",
        "| HTTP GET /v1/analytics/segments (copy) | 3000 |",
        "| the projection alone on disk (a store of the facts only) |",
        "| the projection alone on disk, written in time order across subjects",
    ] {
        assert!(report.contains(row), "{row} in {report}");
    }
}

/// `custodia bench ingest` at a tiny size, so that the benchmark and its flags cannot rot (its
/// figures are not looked at: no test asserts a timing).
#[test]
fn bench_ingest_runs_at_a_tiny_size() {
    let site = Site::new();
    let out = site.cli_ok(&[
        "bench",
        "ingest",
        "--n",
        "8",
        "--clients",
        "1,2",
        "--consent-read-clients",
        "2",
        "--no-postgres",
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("baseline: none: --no-postgres"), "{report}");
    for row in [
        "| engine track, Order Completed | 2 | 8 |",
        "| HTTP track, Order Completed | 2 | 8 |",
        "| HTTP GET /healthz (plain-HTTP ceiling) | 1 | 32 |",
        "| HTTP profile read, access log on | 2 | 8 |",
        "| fjall batch (420-byte values) + flush | 256 |",
    ] {
        assert!(report.contains(row), "{row} in {report}");
    }
    let refused = site
        .command(&["bench", "ingest", "--clients", "0"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "zero clients is a usage error"
    );
}
