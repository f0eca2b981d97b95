//! PostgreSQL as a store engine: one table of byte keys and values (`bytea`, ordered as bytes),
//! a batch as one statement (so one transaction) committed without waiting for the disk, and a
//! flush as one transaction committed with `synchronous_commit = on`, which returns once the WAL
//! of every earlier commit is on disk (shared by concurrent callers); prefix scans as index
//! range scans; point reads cached (`read_cache.rs`). For a shop that already runs PostgreSQL, or outgrows one machine's disk
//! (docs/scale.md).
//!
//! The client is tokio-postgres (already in the tree for the benchmark's baseline), on a small
//! runtime the backend owns: `KvBackend` is synchronous, and its callers run on the server's
//! blocking threads, on plain threads, or (rarely) on an async worker, so each call hands its
//! query to the backend's runtime and waits for the answer.
//!
//! One node at a time: the backend holds a session advisory lock, per database and schema, for
//! as long as it lives, and a second process gets [`StoreError::Locked`]. The consent ledgers,
//! the access logs and the key store are still files of the node, so two nodes on one database
//! would each hold a part of the keys. If the lock's connection drops, the lock is gone and
//! every later write is refused until the process restarts (`/healthz` then asks for it).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::group_commit::GroupCommit;
use super::read_cache::ReadCache;
use super::{KvBackend, KvEntry, KvOp, seek_end};
use crate::StoreError;

/// The schema version this build writes; a database at a newer one is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// Each step takes the schema from the version before it to its own (index + 1), inside one
/// transaction with the schema's advisory lock held.
const MIGRATIONS: [&str; 2] = [
    // 1: the key-value table. Values are ciphertext, which does not compress: stored EXTERNAL,
    // PostgreSQL does not try.
    "CREATE TABLE custodia_kv (k bytea PRIMARY KEY, v bytea NOT NULL);
     ALTER TABLE custodia_kv ALTER COLUMN v SET STORAGE EXTERNAL;",
    // 2: the row a flush updates, so that its commit writes WAL and waits for it to be on disk
    // (a commit that wrote nothing returns at once, however `synchronous_commit` is set).
    "CREATE TABLE custodia_flush (
         one boolean PRIMARY KEY DEFAULT true CHECK (one),
         n bigint NOT NULL
     );
     INSERT INTO custodia_flush (n) VALUES (0);",
];

/// A flush: one transaction that writes a row and commits with `synchronous_commit = on`, so it
/// returns once the WAL up to its commit, and so every commit before it, is on disk. Sent as
/// one simple query (one round trip).
const FLUSH: &str = "BEGIN; SET LOCAL synchronous_commit = on; \
                     UPDATE custodia_flush SET n = n + 1; COMMIT";

/// The first key of the two-key advisory locks (`pg_advisory_lock(int4, int4)`): "CUST". The
/// second is a hash of the schema the table lives in, so two deployments in two schemas of one
/// database do not lock each other out.
const LOCK_CLASS: i32 = 0x4355_5354;
/// The second-key salt of the migration lock (the node lock uses the schema hash itself).
const MIGRATION_SALT: &str = "/migrate";

/// Connections per backend: queries run on one of them at a time each. Eight keeps two cores
/// busy while a batch commits, without crowding a shared server's `max_connections`.
const POOL_SIZE: usize = 8;

/// The store in a PostgreSQL database.
pub struct PostgresBackend {
    /// Flushes shared by concurrent callers.
    commit: GroupCommit,
    /// Point reads answered from memory (`read_cache.rs`; correct because this process is the
    /// only writer, which the lock ensures).
    cache: ReadCache,
    /// `None` only while dropping (the runtime is shut down in the background, since a drop may
    /// happen on an async thread, where a blocking shutdown panics).
    runtime: Option<tokio::runtime::Runtime>,
    inner: Arc<Inner>,
}

struct Inner {
    config: tokio_postgres::Config,
    pool: Vec<tokio::sync::Mutex<Option<Connection>>>,
    next: AtomicUsize,
    /// The connection that holds the node lock; kept only so that it stays open.
    lock_holder: Client,
    /// Set once the lock's connection is seen closed: writes are refused from then on.
    lock_lost: AtomicBool,
}

/// A connection and its prepared statements.
struct Connection {
    client: Client,
    get: Statement,
    /// Scans by (lower bound inclusive?, upper bound present?).
    scan: [Statement; 4],
    last_before: [Statement; 2],
    count: [Statement; 2],
    /// A whole batch as one statement (so one implicit transaction and one round trip): its
    /// deletes and its upserts, which name distinct keys.
    write: Statement,
}

impl PostgresBackend {
    /// Connects to the database `url` names (`postgres://user@host/db?...`, as libpq takes it),
    /// creates or migrates the schema and takes the node lock.
    ///
    /// Fails with [`StoreError::Locked`] when another process has the store open, and with
    /// [`StoreError::Backend`] when the URL is invalid, the server unreachable, or the schema
    /// newer than this build. No error repeats the URL (it may hold a password).
    ///
    /// Point reads are cached, in at most `cache_bytes` of keys and values.
    pub fn connect(url: &str, cache_bytes: u64) -> Result<PostgresBackend, StoreError> {
        PostgresBackend::connect_with(parse_url(url)?, None, cache_bytes)
    }

    /// [`PostgresBackend::connect`] into a new, empty schema `custodia_test_*` of the database
    /// `url` names: for test suites run over PostgreSQL (`CUSTODIA_TEST_STORE_URL`, see
    /// `Engine::in_memory`), one schema per store, left for the throwaway cluster to take away.
    #[doc(hidden)]
    pub fn connect_in_new_schema(url: &str) -> Result<PostgresBackend, StoreError> {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let schema = format!(
            "custodia_test_{}_{}_{}",
            std::process::id(),
            since_epoch.as_micros(),
            MADE.fetch_add(1, Ordering::Relaxed)
        );
        PostgresBackend::connect_with(parse_url(url)?, Some(schema), super::DEFAULT_CACHE_BYTES)
    }

    /// Connects with `config`, first creating the schema `new_schema` and making it the
    /// connections' `search_path` when given.
    fn connect_with(
        mut config: tokio_postgres::Config,
        new_schema: Option<String>,
        cache_bytes: u64,
    ) -> Result<PostgresBackend, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("custodia-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the PostgreSQL client: {e}")))?;
        let inner = on_runtime(&runtime, async move {
            if let Some(schema) = new_schema {
                let client = connect(&config).await?;
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .map_err(pg_error)?;
                config.options(format!("-csearch_path={schema}"));
            }
            Inner::open(config).await
        })?;
        Ok(PostgresBackend {
            commit: GroupCommit::default(),
            cache: ReadCache::new(usize::try_from(cache_bytes).unwrap_or(usize::MAX)),
            runtime: Some(runtime),
            inner: Arc::new(inner),
        })
    }

    /// Runs `work` on the backend's runtime and waits for its answer, from any thread.
    fn run<T, F>(&self, work: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the PostgreSQL store is closed".to_owned()))?;
        on_runtime(runtime, work(self.inner.clone()))
    }
}

/// Runs `work` on `runtime` and waits for its answer: with `block_on` from a thread outside any
/// runtime, else (a thread of another runtime, where `block_on` panics) by handing it over.
fn on_runtime<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(work);
    }
    let (answer, answered) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = answer.send(work.await);
    });
    answered.recv().map_err(|_| {
        StoreError::Backend("the PostgreSQL client stopped during a query".to_owned())
    })?
}

fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse()
        .map_err(|e| StoreError::Backend(format!("the store URL is not a PostgreSQL URL: {e}")))
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Inner {
    async fn open(config: tokio_postgres::Config) -> Result<Inner, StoreError> {
        let lock_holder = connect(&config).await?;
        migrate(&lock_holder).await?;
        let locked: bool = lock_holder
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext(current_schema()))",
                &[&LOCK_CLASS],
            )
            .await
            .map_err(pg_error)?
            .get(0);
        if !locked {
            return Err(StoreError::Locked);
        }
        let inner = Inner {
            config,
            pool: (0..POOL_SIZE)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
            lock_holder,
            lock_lost: AtomicBool::new(false),
        };
        // One connection now, so that a bad setting shows at start rather than at first use.
        inner.with_connection(async |_| Ok(())).await?;
        Ok(inner)
    }

    /// Runs `work` on a pooled connection, (re)connecting it if needed.
    async fn with_connection<T>(
        &self,
        work: impl AsyncFnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let mut slot = slot.lock().await;
        let connection = match &mut *slot {
            Some(connection) if !connection.client.is_closed() => connection,
            stale => stale.insert(Connection::open(&self.config).await?),
        };
        work(connection).await
    }

    /// The value under `key` in the database.
    async fn get(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_connection(async |c| {
            let row = c
                .client
                .query_opt(&c.get, &[&key])
                .await
                .map_err(pg_error)?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
    }

    /// Refuses writes once the node lock may be gone.
    fn check_lock(&self) -> Result<(), StoreError> {
        if self.lock_lost.load(Ordering::SeqCst) || self.lock_holder.is_closed() {
            self.lock_lost.store(true, Ordering::SeqCst);
            return Err(StoreError::Backend(
                "the connection holding the store's lock closed, so another node may have \
                 opened the store: writes are refused until this process restarts"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// Opens a connection and drives it on the current runtime.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a PostgreSQL connection of the store ended");
        }
    });
    Ok(client)
}

/// Creates the schema or brings it to [`SCHEMA_VERSION`], under a transaction-scoped advisory
/// lock so that two nodes starting at once migrate once.
async fn migrate(client: &Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS custodia_schema (
                 one boolean PRIMARY KEY DEFAULT true CHECK (one),
                 version integer NOT NULL
             );
             COMMIT;",
        )
        .await
        .map_err(pg_error)?;
    client.batch_execute("BEGIN").await.map_err(pg_error)?;
    let migrated = async {
        client
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(current_schema() || $2))",
                &[&LOCK_CLASS, &MIGRATION_SALT],
            )
            .await
            .map_err(pg_error)?;
        let version: i32 = client
            .query_opt("SELECT version FROM custodia_schema", &[])
            .await
            .map_err(pg_error)?
            .map_or(0, |row| row.get(0));
        if version > SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the store's schema is at version {version}, written by a newer Custodia; this \
                 one knows versions up to {SCHEMA_VERSION}"
            )));
        }
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            client.batch_execute(step).await.map_err(pg_error)?;
        }
        client
            .execute(
                "INSERT INTO custodia_schema (version) VALUES ($1)
                 ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version",
                &[&SCHEMA_VERSION],
            )
            .await
            .map_err(pg_error)?;
        Ok(())
    }
    .await;
    let end = if migrated.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    client.batch_execute(end).await.map_err(pg_error)?;
    migrated
}

impl Connection {
    async fn open(config: &tokio_postgres::Config) -> Result<Connection, StoreError> {
        let client = connect(config).await?;
        // A batch's commit does not wait for its WAL to reach the disk: `flush` does, once for
        // every batch committed before it (see `FLUSH`), as the embedded engines' flush does.
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(pg_error)?;
        let prepare = |sql: &'static str| {
            let client = &client;
            async move { client.prepare(sql).await.map_err(pg_error) }
        };
        Ok(Connection {
            get: prepare("SELECT v FROM custodia_kv WHERE k = $1").await?,
            scan: [
                prepare(
                    "SELECT k, v FROM custodia_kv WHERE k >= $1 AND k < $2 ORDER BY k LIMIT $3",
                )
                .await?,
                prepare("SELECT k, v FROM custodia_kv WHERE k >= $1 ORDER BY k LIMIT $2").await?,
                prepare("SELECT k, v FROM custodia_kv WHERE k > $1 AND k < $2 ORDER BY k LIMIT $3")
                    .await?,
                prepare("SELECT k, v FROM custodia_kv WHERE k > $1 ORDER BY k LIMIT $2").await?,
            ],
            last_before: [
                prepare(
                    "SELECT k, v FROM custodia_kv WHERE k >= $1 AND k < $2 ORDER BY k DESC LIMIT 1",
                )
                .await?,
                prepare("SELECT k, v FROM custodia_kv WHERE k >= $1 ORDER BY k DESC LIMIT 1")
                    .await?,
            ],
            count: [
                prepare("SELECT count(*) FROM custodia_kv WHERE k >= $1 AND k < $2").await?,
                prepare("SELECT count(*) FROM custodia_kv WHERE k >= $1").await?,
            ],
            write: prepare(
                "WITH gone AS (DELETE FROM custodia_kv WHERE k = ANY($3::bytea[]))
                 INSERT INTO custodia_kv (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[])
                 ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
            )
            .await?,
            client,
        })
    }
}

/// The first key past every key that starts with `prefix`, or `None` when there is none (the
/// prefix is empty or all 0xFF bytes).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// PostgreSQL's message and SQLSTATE, never its detail or hint (a duplicate-key detail quotes
/// the key). A full disk (`53100`) is told apart: the caller answers "insufficient storage".
fn pg_error(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) if *db.code() == SqlState::DISK_FULL => StoreError::StorageFull(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        Some(db) => StoreError::Backend(format!(
            "PostgreSQL: {} (SQLSTATE {})",
            db.message(),
            db.code().code()
        )),
        None => StoreError::Backend(format!("PostgreSQL: {error}")),
    }
}

/// How many times a batch is tried when PostgreSQL aborts it for a deadlock or a serialization
/// failure (another batch's rows, locked in another order); each try is a whole transaction.
const MAX_ATTEMPTS: u32 = 5;

/// One batch as one statement, so one transaction: its deletes and its upserts.
async fn write_batch(
    c: &mut Connection,
    put_keys: &[Vec<u8>],
    put_values: &[Vec<u8>],
    deletes: &[Vec<u8>],
) -> Result<(), tokio_postgres::Error> {
    c.client
        .execute(&c.write, &[&put_keys, &put_values, &deletes])
        .await
        .map(drop)
}

/// A deadlock or a serialization failure: the transaction was rolled back whole and may be
/// tried again.
fn is_transient(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// A query parameter.
type Param = dyn tokio_postgres::types::ToSql + Sync;

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl KvBackend for PostgresBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.inner.check_lock().is_err() {
            // The database may have restarted and lost batches that no flush covered, which
            // the cache would still answer with: from now on every read goes to the database.
            self.cache.clear();
            let owned = key.to_vec();
            return self.run(|inner| async move { inner.get(owned).await });
        }
        let miss = match self.cache.get(key) {
            Ok(cached) => return Ok(cached),
            Err(miss) => miss,
        };
        let owned = key.to_vec();
        let found = self.run(|inner| async move { inner.get(owned).await })?;
        self.cache.fill(miss, key, &found);
        Ok(found)
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (from, inclusive) = match after {
            Some(after) if after >= prefix => (after.to_vec(), false),
            _ => (prefix.to_vec(), true),
        };
        let end = prefix_end(prefix);
        let limit = limit_of(limit);
        self.run(|inner| async move {
            inner
                .with_connection(async |c| {
                    let (statement, params): (_, Vec<&Param>) = match (&end, inclusive) {
                        (Some(end), true) => (&c.scan[0], vec![&from, end, &limit]),
                        (None, true) => (&c.scan[1], vec![&from, &limit]),
                        (Some(end), false) => (&c.scan[2], vec![&from, end, &limit]),
                        (None, false) => (&c.scan[3], vec![&from, &limit]),
                    };
                    let rows = c.client.query(statement, &params).await.map_err(pg_error)?;
                    Ok(rows
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect())
                })
                .await
        })
    }

    fn last_before(&self, prefix: &[u8], before: &[u8]) -> Result<Option<KvEntry>, StoreError> {
        let Some(end) = seek_end(prefix, before) else {
            return Ok(None);
        };
        let end = match end {
            std::ops::Bound::Excluded(end) => Some(end),
            _ => None,
        };
        let prefix = prefix.to_vec();
        self.run(|inner| async move {
            inner
                .with_connection(async |c| {
                    let (statement, params): (_, Vec<&Param>) = match &end {
                        Some(end) => (&c.last_before[0], vec![&prefix, end]),
                        None => (&c.last_before[1], vec![&prefix]),
                    };
                    let row = c
                        .client
                        .query_opt(statement, &params)
                        .await
                        .map_err(pg_error)?;
                    Ok(row.map(|row| (row.get(0), row.get(1))))
                })
                .await
        })
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        self.inner.check_lock()?;
        if ops.is_empty() {
            return Ok(());
        }
        // One statement cannot change a row twice: the last op on each key wins, as the
        // contract says, and the rest are dropped before they reach the server.
        let mut last: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>> =
            std::collections::HashMap::with_capacity(ops.len());
        for op in ops {
            match op {
                KvOp::Put { key, value } => last.insert(key, Some(value)),
                KvOp::Delete { key } => last.insert(key, None),
            };
        }
        // Rows are locked in key order, so that two batches over the same keys rarely wait on
        // each other in a cycle; when they do, PostgreSQL aborts one and it is tried again.
        let mut last: Vec<(Vec<u8>, Option<Vec<u8>>)> = last.into_iter().collect();
        last.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (mut put_keys, mut put_values, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in last {
            match value {
                Some(value) => {
                    put_keys.push(key);
                    put_values.push(value);
                }
                None => deletes.push(key),
            }
        }
        let write = self.cache.start_write();
        let committed = self.run(|inner| async move {
            inner
                .with_connection(async |c| {
                    let mut attempt = 1;
                    loop {
                        match write_batch(c, &put_keys, &put_values, &deletes).await {
                            Err(error) if attempt < MAX_ATTEMPTS && is_transient(&error) => {
                                attempt += 1;
                            }
                            done => return done.map_err(pg_error),
                        }
                    }
                })
                .await?;
            Ok((put_keys, put_values, deletes))
        });
        match committed {
            Ok((put_keys, put_values, deletes)) => {
                self.commit.applied();
                let puts = put_keys
                    .iter()
                    .zip(&put_values)
                    .map(|(key, value)| (key.as_slice(), Some(value.as_slice())));
                let deletes = deletes.iter().map(|key| (key.as_slice(), None));
                self.cache.finish_write(write, puts.chain(deletes));
                Ok(())
            }
            Err(error) => {
                self.cache.fail_write(write);
                Err(error)
            }
        }
    }

    /// One synchronous commit ([`FLUSH`]) after every batch committed before the call, shared
    /// by concurrent callers (group commit, as the embedded engines do).
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.check_lock()?;
        self.commit.flush(|| {
            self.run(|inner| async move {
                inner
                    .with_connection(async |c| {
                        c.client.batch_execute(FLUSH).await.map_err(pg_error)
                    })
                    .await
            })
        })
    }

    fn size_on_disk(&self) -> u64 {
        self.run(|inner| async move {
            inner
                .with_connection(async |c| {
                    let row = c
                        .client
                        .query_one("SELECT pg_total_relation_size('custodia_kv')", &[])
                        .await
                        .map_err(pg_error)?;
                    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
                })
                .await
        })
        .unwrap_or(0)
    }

    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let end = prefix_end(prefix);
        let prefix = prefix.to_vec();
        self.run(|inner| async move {
            inner
                .with_connection(async |c| {
                    let (statement, params): (_, Vec<&Param>) = match &end {
                        Some(end) => (&c.count[0], vec![&prefix, end]),
                        None => (&c.count[1], vec![&prefix]),
                    };
                    let row = c
                        .client
                        .query_one(statement, &params)
                        .await
                        .map_err(pg_error)?;
                    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
                })
                .await
        })
    }
}
