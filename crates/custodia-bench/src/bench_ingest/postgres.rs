//! The outside baseline of `bench ingest`: the same per-event work through PostgreSQL + pgcrypto.
//!
//! A track is a keyed hash of the subject (`hmac(user id, key, 'sha256')`), `pgp_sym_encrypt` of
//! the event's JSON and an insert, committed on its own (autocommit) with `synchronous_commit = on`
//! and `fsync = on`: acknowledged only once the WAL is flushed, as Custodia acknowledges only
//! durable writes. An identify of a new customer encrypts five fields, computes three keyed-hash
//! indexes (user id, e-mail, phone: a unique index and two plain ones) and upserts the row.
//! Concurrent clients are one connection each, so PostgreSQL's group commit shares WAL flushes
//! between them, which is what makes it a strong baseline.
//!
//! The server is either the one `--postgres-url` names or a throwaway cluster ([`Cluster`]) made
//! with `initdb` in a temporary directory, started on a free port and stopped and removed at the
//! end (also on error, panic, Ctrl-C or SIGTERM; a `kill -9` of the benchmark leaves it running,
//! and the directory it prints says what to stop).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, bail};
use custodia_pgcluster::Cluster;
use tokio_postgres::NoTls;

use super::Load;

/// Tables of the baseline; created fresh and dropped at the end.
const SCHEMA: &str = "
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP TABLE IF EXISTS custodia_bench_events, custodia_bench_customers;
CREATE TABLE custodia_bench_customers (
    id bigserial PRIMARY KEY,
    user_hash bytea NOT NULL UNIQUE,
    email_hash bytea NOT NULL,
    phone_hash bytea NOT NULL,
    email bytea NOT NULL,
    phone bytea NOT NULL,
    first_name bytea NOT NULL,
    last_name bytea NOT NULL,
    address bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON custodia_bench_customers (email_hash);
CREATE INDEX ON custodia_bench_customers (phone_hash);
CREATE TABLE custodia_bench_events (
    subject_hash bytea NOT NULL,
    id bigserial,
    payload bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject_hash, id)
);
";

const DROP: &str = "DROP TABLE IF EXISTS custodia_bench_events, custodia_bench_customers;";

/// One track: keyed hash of the subject, encrypted payload, insert ($1 user id, $2 hash key,
/// $3 payload, $4 encryption key).
pub(crate) const TRACK_SQL: &str = "INSERT INTO custodia_bench_events (subject_hash, payload) \
     VALUES (hmac($1::text, $2::text, 'sha256'), pgp_sym_encrypt($3::text, $4::text))";

/// One identify: three keyed-hash indexes, five encrypted fields, upsert ($1 user id, $2 e-mail,
/// $3 phone, $4 first name, $5 last name, $6 address, $7 hash key, $8 encryption key).
pub(crate) const IDENTIFY_SQL: &str = "INSERT INTO custodia_bench_customers \
     (user_hash, email_hash, phone_hash, email, phone, first_name, last_name, address) \
     VALUES (hmac($1::text, $7::text, 'sha256'), hmac(lower($2::text), $7::text, 'sha256'), \
             hmac($3::text, $7::text, 'sha256'), \
             pgp_sym_encrypt($2::text, $8::text), pgp_sym_encrypt($3::text, $8::text), \
             pgp_sym_encrypt($4::text, $8::text), pgp_sym_encrypt($5::text, $8::text), \
             pgp_sym_encrypt($6::text, $8::text)) \
     ON CONFLICT (user_hash) DO UPDATE SET email_hash = EXCLUDED.email_hash, \
         phone_hash = EXCLUDED.phone_hash, email = EXCLUDED.email, phone = EXCLUDED.phone, \
         first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name, \
         address = EXCLUDED.address, updated_at = now()";

/// The key of the keyed hashes and the password of `pgp_sym_encrypt` (a benchmark's, not a secret).
pub(crate) const HASH_KEY: &str = "custodia-bench-hash-key";
pub(crate) const ENCRYPTION_KEY: &str = "custodia-bench-encryption-key";

/// The fields of one new customer, as `identify_body` sends them to Custodia.
pub(crate) struct Customer {
    pub(crate) user_id: String,
    pub(crate) email: String,
    pub(crate) phone: String,
    pub(crate) first_name: String,
    pub(crate) last_name: String,
    pub(crate) address: String,
}

/// A connected baseline: where to connect and, for a throwaway cluster, the cluster itself.
pub(crate) struct Baseline {
    config: tokio_postgres::Config,
    /// The URL of its server, for `--store baseline`.
    url: String,
    runtime: tokio::runtime::Runtime,
    /// Kept for its `Drop`, which stops and removes the cluster.
    _cluster: Option<Cluster>,
    /// How the report names it.
    pub(crate) describe: String,
}

impl Baseline {
    /// The server at `url`.
    pub(crate) fn at_url(url: &str) -> anyhow::Result<Baseline> {
        let config: tokio_postgres::Config = url.parse().context("--postgres-url")?;
        Baseline::new(
            config,
            url.to_owned(),
            None,
            "PostgreSQL at --postgres-url".to_owned(),
        )
    }

    /// A throwaway cluster for `max_clients` connections.
    pub(crate) fn throwaway(initdb: &Path, max_clients: usize) -> anyhow::Result<Baseline> {
        let cluster = Cluster::start_with(initdb, max_clients)?;
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(cluster.socket_dir())
            .port(cluster.port())
            .user("postgres")
            .dbname("postgres");
        let describe = format!(
            "throwaway PostgreSQL ({}, Unix socket, fsync = on, synchronous_commit = on)",
            cluster.version()
        );
        let url = cluster.url("postgres");
        Baseline::new(config, url, Some(cluster), describe)
    }

    fn new(
        config: tokio_postgres::Config,
        url: String,
        cluster: Option<Cluster>,
        describe: String,
    ) -> anyhow::Result<Baseline> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let baseline = Baseline {
            config,
            url,
            runtime,
            _cluster: cluster,
            describe,
        };
        baseline.runtime.block_on(async {
            let client = baseline.connect().await?;
            client
                .batch_execute(SCHEMA)
                .await
                .context("creating the baseline's tables (is pgcrypto available?)")?;
            let settings = client
                .query_one(
                    "SELECT current_setting('fsync'), current_setting('synchronous_commit')",
                    &[],
                )
                .await?;
            let (fsync, synchronous): (String, String) = (settings.get(0), settings.get(1));
            if fsync != "on" || synchronous != "on" {
                bail!(
                    "the baseline server runs with fsync = {fsync}, synchronous_commit = \
                     {synchronous}: its commits would not be durable; both must be on"
                );
            }
            anyhow::Ok(())
        })?;
        Ok(baseline)
    }

    /// The URL of the baseline's server.
    pub(crate) fn url(&self) -> String {
        self.url.clone()
    }

    async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .context("connecting to the PostgreSQL baseline")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("  postgres connection ended: {e}");
            }
        });
        Ok(client)
    }

    /// `n` tracks of `payload(i)` for `user_id(i)` from `clients` connections.
    pub(crate) fn track(
        &self,
        n: usize,
        clients: usize,
        user_id: impl Fn(usize) -> String + Send + Sync + 'static,
        payload: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> anyhow::Result<Load> {
        let work = Arc::new(move |i: usize| {
            let (user, body) = (user_id(i), payload(i));
            move |client: Arc<tokio_postgres::Client>, statement: tokio_postgres::Statement| async move {
                client
                    .execute(&statement, &[&user, &HASH_KEY, &body, &ENCRYPTION_KEY])
                    .await
            }
        });
        self.drive(n, clients, TRACK_SQL, work)
    }

    /// `n` identifies of new customers `customer(i)` from `clients` connections.
    pub(crate) fn identify(
        &self,
        n: usize,
        clients: usize,
        customer: impl Fn(usize) -> Customer + Send + Sync + 'static,
    ) -> anyhow::Result<Load> {
        let work = Arc::new(move |i: usize| {
            let c = customer(i);
            move |client: Arc<tokio_postgres::Client>, statement: tokio_postgres::Statement| async move {
                client
                    .execute(
                        &statement,
                        &[
                            &c.user_id,
                            &c.email,
                            &c.phone,
                            &c.first_name,
                            &c.last_name,
                            &c.address,
                            &HASH_KEY,
                            &ENCRYPTION_KEY,
                        ],
                    )
                    .await
            }
        });
        self.drive(n, clients, IDENTIFY_SQL, work)
    }

    /// Runs `work(i)` for `i` in `0..n` over `clients` connections, each with `sql` prepared;
    /// the clock starts once every connection is open.
    fn drive<W, F, Fut>(
        &self,
        n: usize,
        clients: usize,
        sql: &str,
        work: Arc<W>,
    ) -> anyhow::Result<Load>
    where
        W: Fn(usize) -> F + Send + Sync + 'static,
        F: FnOnce(Arc<tokio_postgres::Client>, tokio_postgres::Statement) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'static,
    {
        let clients = clients.max(1);
        self.runtime.block_on(async {
            let mut connected = Vec::with_capacity(clients);
            for _ in 0..clients {
                let client = Arc::new(self.connect().await?);
                let statement = client.prepare(sql).await?;
                connected.push((client, statement));
            }
            let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
            let mut tasks = Vec::with_capacity(clients);
            for (t, (client, statement)) in connected.into_iter().enumerate() {
                let (start, work) = (start.clone(), work.clone());
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    let mut latencies = Vec::with_capacity(n / clients + 1);
                    for i in (t..n).step_by(clients) {
                        let call = work(i);
                        let began = Instant::now();
                        let inserted = call(client.clone(), statement.clone()).await?;
                        latencies.push(began.elapsed());
                        anyhow::ensure!(inserted == 1, "a statement wrote {inserted} rows");
                    }
                    anyhow::Ok(latencies)
                }));
            }
            start.wait().await;
            let began = Instant::now();
            let mut latencies = Vec::with_capacity(n);
            for task in tasks {
                latencies.extend(task.await??);
            }
            Ok(Load {
                elapsed: began.elapsed(),
                latencies,
            })
        })
    }

    /// Runs `sql` and returns the first column of its one row (for the tests' checks).
    #[cfg(test)]
    pub(crate) fn query_text(&self, sql: &str) -> anyhow::Result<String> {
        self.runtime.block_on(async {
            let client = self.connect().await?;
            Ok(client.query_one(sql, &[]).await?.get(0))
        })
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        // Leave nothing behind on a server we did not start; a throwaway one goes entirely.
        let _ = self.runtime.block_on(async {
            let client = self.connect().await?;
            client.batch_execute(DROP).await?;
            anyhow::Ok(())
        });
    }
}

/// Fresh schemas for the engines' stores on one PostgreSQL server (`bench ingest --store`), each
/// named `custodia_bench_<n>` and dropped with this value.
pub(crate) struct Schemas {
    url: String,
    runtime: tokio::runtime::Runtime,
    made: Mutex<Vec<String>>,
}

impl Schemas {
    pub(crate) fn on(url: &str) -> anyhow::Result<Schemas> {
        let schemas = Schemas {
            url: url.to_owned(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            made: Mutex::new(Vec::new()),
        };
        schemas.execute("SELECT 1").context("--store: connecting")?;
        Ok(schemas)
    }

    /// A URL whose `search_path` is a new, empty schema.
    pub(crate) fn fresh(&self) -> anyhow::Result<String> {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        let name = format!("custodia_bench_{}", made.len());
        self.execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))?;
        made.push(name.clone());
        let joint = if self.url.contains('?') { '&' } else { '?' };
        Ok(format!("{}{joint}options=-csearch_path%3D{name}", self.url))
    }

    /// How many `custodia_bench_*` schemas the server holds (for the tests' checks).
    #[cfg(test)]
    pub(crate) fn left_behind(&self) -> anyhow::Result<i64> {
        self.runtime.block_on(async {
            let config: tokio_postgres::Config = self.url.parse().context("--store")?;
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'custodia\\_bench\\_%'",
                    &[],
                )
                .await?;
            anyhow::Ok(row.get(0))
        })
    }

    fn execute(&self, sql: &str) -> anyhow::Result<()> {
        self.runtime.block_on(async {
            let config: tokio_postgres::Config = self.url.parse().context("--store")?;
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute(sql).await?;
            anyhow::Ok(())
        })
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        let made = std::mem::take(&mut *self.made.lock().unwrap_or_else(|e| e.into_inner()));
        for name in made {
            if let Err(e) = self.execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")) {
                eprintln!("  dropping the bench schema {name} failed: {e:#}");
            }
        }
    }
}
