//! A tiny run of `bench ingest` (so the benchmark cannot rot unnoticed) and the PostgreSQL
//! baseline's SQL against a throwaway cluster (when `initdb` is on the PATH).

use super::postgres::{Baseline, ENCRYPTION_KEY, HASH_KEY, Schemas};
use super::*;

fn tiny(store_engine: custodia_store::StoreEngine) -> IngestArgs {
    IngestArgs {
        n: 12,
        clients: vec![1, 3],
        consent_read_clients: 4,
        postgres_url: None,
        no_postgres: true,
        store_engine,
        store: None,
    }
}

#[test]
fn a_tiny_run_measures_and_prints_every_figure() {
    for store_engine in custodia_store::StoreEngine::ALL {
        a_tiny_run_over(tiny(store_engine), store_engine.name());
    }
}

/// `--store baseline`: the engine's stores in fresh schemas of the baseline's server, which
/// are dropped at the end.
#[test]
fn a_tiny_run_with_the_store_in_postgres() {
    let cluster = custodia_pgcluster::Cluster::start(60).unwrap();
    let url = cluster.url("postgres");
    let args = IngestArgs {
        postgres_url: Some(url.clone()),
        no_postgres: false,
        store: Some("baseline".to_owned()),
        ..tiny(custodia_store::StoreEngine::default())
    };
    a_tiny_run_over(args, "PostgreSQL store batch");
    assert_eq!(Schemas::on(&url).unwrap().left_behind().unwrap(), 0);
}

fn a_tiny_run_over(args: IngestArgs, store_block: &str) {
    let with_baseline = !args.no_postgres;
    let report = measure(&args).unwrap();
    for clients in [1, 3] {
        for (what, calls) in [
            (ENGINE_IDENTIFY, 12),
            (ENGINE_TRACK, 12),
            (HTTP_HEALTHZ, 48),
            (HTTP_IDENTIFY, 12),
            (HTTP_TRACK, 12),
        ] {
            let m = report
                .find(what, clients)
                .unwrap_or_else(|| panic!("{what} at {clients} clients"));
            assert_eq!(m.load.calls(), calls, "{what} at {clients}");
            assert!(m.load.per_second() > 0.0, "{what}");
        }
        assert_eq!(
            report.find(PG_TRACK, clients).is_some(),
            with_baseline,
            "the baseline runs when asked for"
        );
    }
    for what in [
        ENGINE_CONSENT,
        HTTP_CONSENT,
        HTTP_READ_LOGGED,
        HTTP_READ_UNLOGGED,
    ] {
        let m = report.find(what, 4).unwrap_or_else(|| panic!("{what}"));
        assert_eq!(m.load.calls(), 12, "{what}");
    }
    for what in [store_block, "key-store slots", "ledger append"] {
        let sizes: Vec<usize> = report
            .blocks
            .iter()
            .filter(|b| b.what.starts_with(what))
            .map(|b| b.per_flush)
            .collect();
        assert_eq!(sizes, PER_FLUSH, "{what}");
    }
    assert!(report.memory_at_end.rss_bytes > 0);
    assert!(
        (300..500).contains(&report.payload_bytes),
        "an Order Completed of about 400 bytes: {}",
        report.payload_bytes
    );

    let text = render(&report);
    let tables = text.lines().filter(|l| l.starts_with("|---")).count();
    assert_eq!(tables, 5, "{text}");
    assert_eq!(
        text.contains("baseline: none: --no-postgres"),
        !with_baseline,
        "{text}"
    );
    let ratios = text
        .lines()
        .find(|l| l.starts_with("| 3 | "))
        .unwrap_or_else(|| panic!("a ratio row for 3 clients: {text}"));
    assert!(
        ratios.contains('×'),
        "HTTP track / healthz is there: {ratios}"
    );
}

#[test]
fn the_postgres_baseline_stores_what_it_claims() {
    // tests/setup.sh installs PostgreSQL: a missing server fails this test rather than skip it.
    let initdb = custodia_pgcluster::find_initdb()
        .expect("PostgreSQL's server programs are not installed (tests/setup.sh installs them)");
    let baseline = Baseline::throwaway(&initdb, 4).unwrap();
    let load = baseline.identify(6, 2, |i| customer(i, "pg-test")).unwrap();
    assert_eq!(load.calls(), 6);
    // An identify of a known customer updates the row (upsert), it adds none.
    baseline.identify(2, 1, |i| customer(i, "pg-test")).unwrap();
    let load = baseline
        .track(
            10,
            3,
            |i| format!("bench-pg-test-{}", i % 6),
            |i| track_body(i, "pg-test").to_string(),
        )
        .unwrap();
    assert_eq!(load.calls(), 10);

    let text = |sql: String| baseline.query_text(&sql).unwrap();
    assert_eq!(
        text("SELECT count(*)::text FROM custodia_bench_customers".into()),
        "6"
    );
    assert_eq!(
        text("SELECT count(*)::text FROM custodia_bench_events".into()),
        "10"
    );
    // The payload is stored encrypted, under the keyed hash of its subject, and decrypts back.
    let payload = track_body(7, "pg-test").to_string();
    assert_eq!(
        text(format!(
            "SELECT pgp_sym_decrypt(payload, '{ENCRYPTION_KEY}') FROM custodia_bench_events \
             WHERE subject_hash = hmac('bench-pg-test-1', '{HASH_KEY}', 'sha256') \
             AND pgp_sym_decrypt(payload, '{ENCRYPTION_KEY}') LIKE '%O-pg-test-00000007%'"
        )),
        payload
    );
    assert_eq!(
        text(
            "SELECT count(*)::text FROM custodia_bench_events \
             WHERE position('Order Completed' in encode(payload, 'escape')) > 0"
                .into()
        ),
        "0",
        "no payload in the clear"
    );
    let c = customer(4, "pg-test");
    assert_eq!(
        text(format!(
            "SELECT pgp_sym_decrypt(email, '{ENCRYPTION_KEY}') || ' ' || \
                    pgp_sym_decrypt(address, '{ENCRYPTION_KEY}') \
             FROM custodia_bench_customers \
             WHERE email_hash = hmac(lower('{}'), '{HASH_KEY}', 'sha256') \
               AND phone_hash = hmac('{}', '{HASH_KEY}', 'sha256') \
               AND user_hash = hmac('{}', '{HASH_KEY}', 'sha256')",
            c.email, c.phone, c.user_id
        )),
        format!("{} {}", c.email, c.address)
    );
}
