//! The PostgreSQL backend against a throwaway cluster (`custodia-pgcluster`; tests/setup.sh
//! installs PostgreSQL, so a machine without it fails these tests rather than skip them): the
//! backend contract, durability across a crash of the server, the one-node lock, the schema's
//! version, and a dropped connection.

use std::sync::Arc;

use custodia_pgcluster::Cluster;

use super::tests::check_contract;
use super::*;

fn cluster() -> Cluster {
    Cluster::start(20).expect("a throwaway PostgreSQL cluster")
}

fn put(key: &[u8], value: &[u8]) -> KvOp {
    KvOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

/// Runs SQL on the cluster as the superuser, from a runtime of its own.
fn sql(cluster: &Cluster, statements: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = cluster
            .url("postgres")
            .parse::<tokio_postgres::Config>()
            .unwrap()
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute(statements).await.unwrap();
    });
}

#[test]
fn the_postgres_backend_keeps_the_contract() {
    let cluster = cluster();
    let backend = PostgresBackend::connect(&cluster.url("postgres"), DEFAULT_CACHE_BYTES).unwrap();
    check_contract(&backend);
    assert!(backend.size_on_disk() > 0);
}

/// A batch commits without waiting for the disk; `flush` makes every earlier batch durable. The
/// server's WAL writer is held back (10 s), so a batch that no flush covered stays in the
/// server's memory and a crash (`pg_ctl stop -m immediate`) loses it: without a working flush,
/// this test fails.
#[test]
fn flushed_writes_survive_a_crash_of_the_server() {
    let cluster = Cluster::start_with_settings(20, &["wal_writer_delay=10000"]).unwrap();
    let url = cluster.url("postgres");
    let backend = PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    for i in 0..500u32 {
        backend
            .apply(vec![put(&i.to_be_bytes(), &[7u8; 300])])
            .unwrap();
    }
    backend
        .apply(vec![KvOp::Delete {
            key: 3u32.to_be_bytes().to_vec(),
        }])
        .unwrap();
    backend.flush().unwrap();
    backend.apply(vec![put(b"unflushed", b"maybe")]).unwrap();
    assert_eq!(backend.get(b"unflushed").unwrap(), Some(b"maybe".to_vec()));
    cluster.crash_and_restart().unwrap();
    // The old connections died with the server: the pool reconnects, but the node lock's
    // connection is gone too, so this backend refuses writes from now on.
    assert_eq!(backend.count_prefix(&7u32.to_be_bytes()[..1]).unwrap(), 499);
    // Reads no longer come from the cache, which may hold what the crash lost: a batch no
    // flush covered (read once, so cached) answers as the database does now.
    let in_database = backend
        .scan_prefix(b"unflushed", None, 1)
        .unwrap()
        .pop()
        .map(|(_, value)| value);
    assert_eq!(backend.get(b"unflushed").unwrap(), in_database);
    assert_eq!(
        backend.get(&7u32.to_be_bytes()).unwrap(),
        Some(vec![7u8; 300])
    );
    let refused = backend.apply(vec![put(b"after", b"crash")]).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("writes are refused until this process restarts"),
        "{refused}"
    );
    assert!(backend.flush().is_err());
    drop(backend);
    let reopened = PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(
        reopened.count_prefix(&7u32.to_be_bytes()[..1]).unwrap(),
        499
    );
    assert_eq!(
        reopened.get(&7u32.to_be_bytes()).unwrap(),
        Some(vec![7u8; 300])
    );
    assert_eq!(reopened.get(&3u32.to_be_bytes()).unwrap(), None);
    reopened.apply(vec![put(b"after", b"restart")]).unwrap();
}

#[test]
fn a_second_open_of_one_schema_is_refused_and_another_schema_is_apart() {
    let cluster = cluster();
    let url = cluster.url("postgres");
    let first = PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap();
    assert!(matches!(
        PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES),
        Err(StoreError::Locked)
    ));
    // Another schema of the same database is another store, with its own lock.
    sql(&cluster, "CREATE SCHEMA shop_b");
    let other_url = format!("{url}&options=-csearch_path%3Dshop_b");
    let other = PostgresBackend::connect(&other_url, DEFAULT_CACHE_BYTES).unwrap();
    first.apply(vec![put(b"k", b"first")]).unwrap();
    assert_eq!(other.get(b"k").unwrap(), None);
    // The lock goes with the backend.
    drop(first);
    let again = PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap();
    assert_eq!(again.get(b"k").unwrap(), Some(b"first".to_vec()));
}

#[test]
fn a_schema_written_by_a_newer_custodia_is_refused() {
    let cluster = cluster();
    let url = cluster.url("postgres");
    drop(PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap());
    // Opening again migrates nothing and keeps the version.
    drop(PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES).unwrap());
    sql(
        &cluster,
        &format!(
            "UPDATE custodia_schema SET version = {}",
            POSTGRES_SCHEMA_VERSION + 1
        ),
    );
    let Err(refused) = PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES) else {
        panic!("a newer schema was opened");
    };
    assert!(
        refused.to_string().contains("written by a newer Custodia"),
        "{refused}"
    );
}

#[test]
fn a_bad_url_or_an_unreachable_server_is_an_error_that_does_not_repeat_the_url() {
    let Err(bad) = PostgresBackend::connect(
        "postgres://user:s3cret@localhost:notaport/db",
        DEFAULT_CACHE_BYTES,
    ) else {
        panic!("a bad URL connected");
    };
    assert!(!bad.to_string().contains("s3cret"), "{bad}");
    let cluster = cluster();
    let unreachable = format!(
        "postgresql://postgres:s3cret@localhost/postgres?host={}&port=1&connect_timeout=5",
        cluster.socket_dir().display()
    );
    let Err(refused) = PostgresBackend::connect(&unreachable, DEFAULT_CACHE_BYTES) else {
        panic!("an unreachable server connected");
    };
    assert!(!refused.to_string().contains("s3cret"), "{refused}");
    assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
    // TLS is not built: a URL that requires it fails rather than connect in plain text.
    let Err(plain) = PostgresBackend::connect(
        &format!("{}&sslmode=require", cluster.url("postgres")),
        DEFAULT_CACHE_BYTES,
    ) else {
        panic!("sslmode=require connected without TLS");
    };
    assert!(plain.to_string().contains("TLS"), "{plain}");
}

#[test]
fn the_backend_answers_from_the_threads_of_another_runtime() {
    let cluster = cluster();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Opened on an async worker too (the server's tests open engines there).
    let url = cluster.url("postgres");
    let backend = Arc::new(
        runtime
            .block_on(async move { PostgresBackend::connect(&url, DEFAULT_CACHE_BYTES) })
            .unwrap(),
    );
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for t in 0..16u8 {
            let backend = backend.clone();
            tasks.push(tokio::spawn(async move {
                // On an async worker itself, and on a blocking thread of the runtime.
                backend.apply(vec![put(&[b'a', t], &[t])]).unwrap();
                let backend = backend.clone();
                tokio::task::spawn_blocking(move || backend.get(&[b'a', t]).unwrap())
                    .await
                    .unwrap()
            }));
        }
        for (t, task) in tasks.into_iter().enumerate() {
            assert_eq!(task.await.unwrap(), Some(vec![u8::try_from(t).unwrap()]));
        }
    });
    // Dropped on an async thread: no panic.
    runtime.block_on(async move { drop(backend) });
}

/// The read cache under concurrent batches and reads of the same few keys: once everything has
/// returned, every cached answer equals what the database holds (a scan never uses the cache).
#[test]
fn the_read_cache_agrees_with_the_database_under_concurrent_writes() {
    let cluster = cluster();
    let backend =
        Arc::new(PostgresBackend::connect(&cluster.url("postgres"), DEFAULT_CACHE_BYTES).unwrap());
    let key = |k: u64| format!("key-{:02}", k % 12).into_bytes();
    let threads: Vec<_> = (0..6u64)
        .map(|t| {
            let backend = backend.clone();
            std::thread::spawn(move || {
                // A small deterministic generator per thread.
                let mut state = t * 7919 + 1;
                let mut next = move || {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    state >> 33
                };
                for i in 0..150u64 {
                    let k = next();
                    match next() % 4 {
                        0 | 1 => backend
                            .apply(vec![
                                put(&key(k), format!("{t}-{i}").as_bytes()),
                                put(&key(k + 1), format!("{t}-{i}+").as_bytes()),
                            ])
                            .unwrap(),
                        2 => backend.apply(vec![KvOp::Delete { key: key(k) }]).unwrap(),
                        _ => {
                            backend.get(&key(k)).unwrap();
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for k in 0..12 {
        let in_database = backend
            .scan_prefix(&key(k), None, 10)
            .unwrap()
            .into_iter()
            .next()
            .map(|(_, value)| value);
        assert_eq!(backend.get(&key(k)).unwrap(), in_database, "key {k}");
    }
}
