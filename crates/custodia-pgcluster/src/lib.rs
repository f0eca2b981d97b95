//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` in a temporary directory,
//! started on a free port with its Unix socket in that directory, stopped and removed when the
//! [`Cluster`] drops (also on Ctrl-C or SIGTERM of the process; a `kill -9` of the process
//! leaves it running, and the directory it prints says what to stop).
//!
//! Run as root (as CI does), the server's programs run as the `postgres` user that Debian's
//! package creates: PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// `initdb` on the `PATH`, else the newest one Debian's packages put under
/// `/usr/lib/postgresql/<version>/bin`, if any.
pub fn find_initdb() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                let initdb = entry.path().join("bin/initdb");
                initdb.is_file().then_some((version, initdb))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, initdb)| initdb)
    })
}

/// A PostgreSQL cluster in a temporary directory, stopped and removed on drop.
pub struct Cluster {
    /// `pg_ctl`, beside the `initdb` that made the cluster.
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// The server's options (`pg_ctl -o`), kept for a restart.
    options: String,
    log: PathBuf,
    /// Run the server's programs as the `postgres` user (we are root, which they refuse).
    as_postgres: bool,
    version: String,
    /// Removed after the server stops (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

/// Every running cluster's `pg_ctl` and data directory, for the Ctrl-C / SIGTERM handler.
static RUNNING: Mutex<Vec<(PathBuf, PathBuf, bool)>> = Mutex::new(Vec::new());

impl Cluster {
    /// A new cluster from the `initdb` [`find_initdb`] finds, for up to `max_clients`
    /// connections; fails, saying what to install, when there is none.
    pub fn start(max_clients: usize) -> anyhow::Result<Cluster> {
        let initdb = find_initdb().context(
            "no PostgreSQL server programs: neither `initdb` on the PATH nor under \
             /usr/lib/postgresql; install them (Debian: `apt-get install postgresql`, which \
             tests/setup.sh does)",
        )?;
        Cluster::start_with(&initdb, max_clients)
    }

    /// [`Cluster::start`] with more server settings, as `postgres -c` takes them
    /// (`"wal_writer_delay=10000"`).
    pub fn start_with_settings(max_clients: usize, settings: &[&str]) -> anyhow::Result<Cluster> {
        let initdb = find_initdb().context("no PostgreSQL server programs (tests/setup.sh)")?;
        Cluster::start_inner(&initdb, max_clients, settings)
    }

    /// A new cluster made by `initdb`, for up to `max_clients` connections, with `fsync` and
    /// `synchronous_commit` on: a commit is acknowledged once its WAL is on disk.
    pub fn start_with(initdb: &Path, max_clients: usize) -> anyhow::Result<Cluster> {
        Cluster::start_inner(initdb, max_clients, &[])
    }

    fn start_inner(
        initdb: &Path,
        max_clients: usize,
        settings: &[&str],
    ) -> anyhow::Result<Cluster> {
        let bin = std::fs::canonicalize(initdb)?
            .parent()
            .context("initdb has no directory")?
            .to_owned();
        let pg_ctl = bin.join("pg_ctl");
        let dir = tempfile::Builder::new().prefix("custodia-pg").tempdir()?;
        let as_postgres = running_as_root()?;
        if as_postgres {
            let (uid, gid) = postgres_user().context(
                "running as root, which initdb refuses, and there is no `postgres` user to run \
                 it as",
            )?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let data_dir = dir.path().join("data");
        let socket_dir = dir.path().to_owned();
        let version = String::from_utf8_lossy(&run(&bin.join("postgres"), &["--version"], false)?)
            .trim()
            .to_owned();
        run(
            initdb,
            &[
                "-D",
                path_str(&data_dir)?,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            as_postgres,
        )?;
        let port = free_port()?;
        let mut options = format!(
            "-p {port} -c listen_addresses='' -c unix_socket_directories='{}' \
             -c max_connections={} -c fsync=on -c synchronous_commit=on -c shared_buffers=256MB",
            path_str(&socket_dir)?,
            max_clients + 10
        );
        for setting in settings {
            options.push_str(" -c ");
            options.push_str(setting);
        }
        let log = dir.path().join("server.log");
        RUNNING.lock().unwrap_or_else(|e| e.into_inner()).push((
            pg_ctl.clone(),
            data_dir.clone(),
            as_postgres,
        ));
        stop_on_signal();
        eprintln!(
            "  starting a throwaway PostgreSQL in {} (removed at the end)",
            dir.path().display()
        );
        let cluster = Cluster {
            pg_ctl,
            data_dir,
            socket_dir,
            port,
            options,
            log,
            as_postgres,
            version,
            _dir: dir,
        };
        cluster.run_server()?;
        Ok(cluster)
    }

    fn run_server(&self) -> anyhow::Result<()> {
        run(
            &self.pg_ctl,
            &[
                "-D",
                path_str(&self.data_dir)?,
                "-l",
                path_str(&self.log)?,
                "-w",
                "-t",
                "60",
                "-o",
                &self.options,
                "start",
            ],
            self.as_postgres,
        )
        .with_context(|| {
            format!(
                "pg_ctl start; its log: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })?;
        Ok(())
    }

    /// Stops the server the way a power cut would (`pg_ctl stop -m immediate`: no checkpoint,
    /// recovery from the WAL at the next start) and starts it again.
    pub fn crash_and_restart(&self) -> anyhow::Result<()> {
        run(
            &self.pg_ctl,
            &[
                "-D",
                path_str(&self.data_dir)?,
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            self.as_postgres,
        )?;
        self.run_server()
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The port the server's socket file is named after.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (tables, WAL), e.g. for a scan of what it holds on disk.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What `postgres --version` printed.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A connection URL for database `dbname` as the `postgres` superuser, over the socket.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgresql://postgres@localhost/{dbname}?host={}&port={}",
            self.socket_dir.display(),
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop(&self.pg_ctl, &self.data_dir, self.as_postgres);
        RUNNING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, data_dir, _)| *data_dir != self.data_dir);
    }
}

fn stop(pg_ctl: &Path, data_dir: &Path, as_postgres: bool) {
    if let Some(data) = data_dir.to_str()
        && let Err(e) = run(
            pg_ctl,
            &["-D", data, "-m", "immediate", "-w", "stop"],
            as_postgres,
        )
    {
        eprintln!("  stopping the throwaway PostgreSQL failed: {e:#}");
    }
}

/// On Ctrl-C or SIGTERM: stop every running cluster, remove its directory, exit 130.
fn stop_on_signal() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::thread::spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            });
            let running = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(|e| e.into_inner()));
            for (pg_ctl, data_dir, as_postgres) in running {
                eprintln!("  interrupted: stopping the throwaway PostgreSQL");
                stop(&pg_ctl, &data_dir, as_postgres);
                if let Some(dir) = data_dir.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            std::process::exit(130);
        });
    });
}

/// Runs `program args`, as the `postgres` user when `as_postgres`; its stdout, or an error with
/// its stderr.
fn run(program: &Path, args: &[&str], as_postgres: bool) -> anyhow::Result<Vec<u8>> {
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = command
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str().context("temporary path is not UTF-8")
}

/// The effective user is root: `/proc/self` belongs to the process's effective user.
fn running_as_root() -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/self")?.uid() == 0)
}

/// The `postgres` user's uid and gid, from `/etc/passwd`.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A port nobody listens on now (the server names its socket file after it).
fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
