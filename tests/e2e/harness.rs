//! Starting, stopping and killing the real binary, and talking HTTP to it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// The workspace root (the e2e tests are an integration test of `crates/custodia`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/custodia is two levels below the workspace root")
        .to_path_buf()
}

/// The cargo target directory the tests run with (`CARGO_TARGET_DIR` or `target/`), where
/// `tests/sdk/setup.sh` makes the venv of the SDK and OpenAPI tests.
pub fn target_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    if target.is_absolute() {
        target
    } else {
        repo_root().join(target)
    }
}

/// Runs an outside tool (schemathesis, an SDK script) to its end, or kills it once `limit` has
/// passed and panics naming `what`: a tool that hangs fails its test instead of holding the whole
/// suite (schemathesis once hung in its own thread pool after an internal error). Its output
/// goes through files, so that a full pipe cannot stop it.
pub fn output_within(command: &mut Command, limit: Duration, what: &str) -> Output {
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let (out_path, err_path) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let mut child = command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the tool") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {} s; it was killed. Its output:\n{}\n{}",
                limit.as_secs(),
                std::fs::read_to_string(&out_path).unwrap_or_default(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

/// The `custodia` binary: `CUSTODIA_BIN` if set, else the one cargo built for this test run.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("CUSTODIA_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_BIN_EXE_custodia")))
    })
}

/// A fresh base64 root key.
pub fn new_master_key() -> String {
    let mut bytes = [0u8; 32];
    // Test keys need no crypto-grade randomness, only distinctness between runs.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (seed >> ((i % 16) * 8)) as u8 ^ (i as u8).wrapping_mul(37);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A working directory with a data directory, a key store and a root key, for one test.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub master_key: String,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
            master_key: new_master_key(),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A `custodia` command in the site's directory with its root key in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary());
        cmd.current_dir(self.dir.path())
            .args(args)
            .env("CUSTODIA_MASTER_KEY", &self.master_key)
            .env_remove("CUSTODIA_LOG");
        cmd
    }

    /// `--data-dir`, `--keys-dir` and `--policies` for this site.
    fn dir_args(&self) -> Vec<String> {
        let path = |p: PathBuf| p.to_str().expect("utf-8 temp path").to_owned();
        vec![
            "--data-dir".to_owned(),
            path(self.data_dir()),
            "--keys-dir".to_owned(),
            path(self.keys_dir()),
            "--policies".to_owned(),
            path(repo_root().join("policies")),
        ]
    }

    /// Runs a CLI command with the site's directories.
    pub fn run(&self, args: &[&str]) -> Output {
        let dirs = self.dir_args();
        let mut full: Vec<&str> = args.to_vec();
        full.extend(dirs.iter().map(String::as_str));
        self.command(&full).output().expect("custodia runs")
    }

    /// Runs `custodia ARGS` (no site directories added) and asserts it exits 0.
    pub fn cli_ok(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("custodia runs");
        assert!(
            out.status.success(),
            "custodia {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `custodia ledger verify --data-dir <site data> [extra]`: offline, needs no keys.
    pub fn verify_ledger(&self, extra: &[&str]) -> Output {
        let data = self.data_dir();
        let mut args = vec!["ledger", "verify", "--data-dir", data.to_str().unwrap()];
        args.extend(extra);
        self.command(&args)
            .env_remove("CUSTODIA_MASTER_KEY")
            .output()
            .expect("custodia runs")
    }

    /// Runs `custodia audit verify` over this site's data directory.
    pub fn verify_audit(&self) -> Output {
        let data = self.data_dir();
        self.command(&["audit", "verify", "--data-dir", data.to_str().unwrap()])
            .output()
            .expect("custodia runs")
    }

    /// Creates an API key with `custodia keys create`.
    pub fn create_key(&self, role: &str) -> String {
        self.create_key_with(role, &[])
    }

    /// [`Site::create_key`] with `extra` arguments (`--store-engine sled`, say).
    pub fn create_key_with(&self, role: &str, extra: &[&str]) -> String {
        let mut args = vec!["keys", "create", "--role", role];
        args.extend(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "keys create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("cus_") && !key.contains('\n'));
        key
    }

    /// A `custodia serve` command on a free port over `data` (another data directory than the
    /// site's, say a restored one), with the site's key store and the repository's policies.
    pub fn serve_command_on(&self, data: &Path) -> Command {
        let keys = self.keys_dir();
        let policies = repo_root().join("policies");
        self.command(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8 temp path"),
            "--keys-dir",
            keys.to_str().expect("utf-8 temp path"),
            "--policies",
            policies.to_str().expect("utf-8 temp path"),
        ])
    }

    /// Starts `custodia serve` on a free port and waits until it listens.
    pub fn serve(&self, extra: &[&str]) -> Server {
        let dirs = self.dir_args();
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(extra);
        self.spawn_server(self.command(&args))
    }

    /// Starts `custodia serve --demo` without a root key in the environment, so that the demo
    /// writes its root key and API keys into the site's directory (see [`Site::demo_key`]).
    pub fn serve_demo(&self) -> Server {
        let (data, keys) = (self.data_dir(), self.keys_dir());
        let mut cmd = self.command(&[
            "serve",
            "--demo",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--keys-dir",
            keys.to_str().unwrap(),
        ]);
        cmd.env_remove("CUSTODIA_MASTER_KEY");
        self.spawn_server(cmd)
    }

    /// The demo's API key of `role`, from the `custodia-demo-api-keys.txt` it wrote.
    pub fn demo_key(&self, role: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("custodia-demo-api-keys.txt"))
            .expect("serve --demo wrote its API keys");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{role}=")))
            .unwrap_or_else(|| panic!("demo {role} key"))
            .to_owned()
    }

    /// Spawns a prepared `serve` command with its log appended to the site's log, and waits until
    /// it listens.
    pub fn spawn_server(&self, mut command: Command) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let already = self.n_listening();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts");
        // Owned by the handle at once, so a failed start still kills and reaps the process.
        let mut server = Server {
            child: Some(child),
            base: String::new(),
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if let Some(line) = text.split("listening on ").nth(already + 1) {
                let addr = line.split_whitespace().next().unwrap();
                server.base = format!("http://{addr}");
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "server did not start:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many times a server of this site has logged that it listens.
    fn n_listening(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .matches("listening on ")
            .count()
    }

    /// The P1 canary scan: every file under the site searched for each canary raw, lower- and
    /// upper-cased, hex and base64 (see [`needles`]). Returns the hits, naming file and canary
    /// index, never the canary, and how many bytes were scanned.
    pub fn plaintext_hits(&self, canaries: &[&str]) -> (Vec<String>, usize) {
        plaintext_hits_in(&self.all_files(), canaries)
    }

    /// Every file under the site's directory (data, keys, log, anything else written there).
    pub fn all_files(&self) -> Vec<PathBuf> {
        files_under(self.dir.path())
    }
}

/// [`Site::plaintext_hits`] over `files`.
pub fn plaintext_hits_in(files: &[PathBuf], canaries: &[&str]) -> (Vec<String>, usize) {
    let mut hits = Vec::new();
    let mut n_bytes = 0;
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        n_bytes += bytes.len();
        for (idx, canary) in canaries.iter().enumerate() {
            for (encoding, needle) in needles(canary) {
                if find(&bytes, &needle) {
                    hits.push(format!(
                        "{} holds canary #{idx} ({encoding})",
                        file.display()
                    ));
                }
            }
        }
    }
    (hits, n_bytes)
}

/// Every file under `dir`, at any depth (regular files only: not sockets or pipes).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// A running server.
pub struct Server {
    /// The process, unless this handle attached to a server started elsewhere.
    child: Option<Child>,
    pub base: String,
}

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Server {
    /// A handle that only speaks HTTP to a server another handle started (e.g. from a thread).
    pub fn attach(base: &str) -> Server {
        Server {
            child: None,
            base: base.to_owned(),
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into()
    }

    fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut response = response.expect("the server answers");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .unwrap();
        Answer {
            status,
            content_type,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    pub fn get(&self, key: &str, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        Server::answer(
            Server::agent()
                .get(&url)
                .header("Authorization", &format!("Bearer {key}"))
                .call(),
        )
    }

    /// A POST that may meet a server killed meanwhile: `None` when no complete answer came.
    pub fn try_post(&self, key: &str, path: &str, body: &Value) -> Option<Answer> {
        let url = format!("{}{path}", self.base);
        let mut response = Server::agent()
            .post(&url)
            .header("Authorization", &format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(body).unwrap().as_slice())
            .ok()?;
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .ok()?;
        Some(Answer {
            status,
            content_type: String::new(),
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    pub fn post(&self, key: &str, path: &str, body: &Value) -> Answer {
        self.send(
            key,
            "POST",
            path,
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    pub fn delete(&self, key: &str, path: &str) -> Answer {
        self.send(key, "DELETE", path, "", b"")
    }

    pub fn send(
        &self,
        key: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Answer {
        let url = format!("{}{path}", self.base);
        let agent = Server::agent();
        let auth = format!("Bearer {key}");
        let response = match method {
            "POST" => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(body),
            "PATCH" => agent
                .patch(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(body),
            "PUT" => agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(body),
            "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
            other => panic!("unsupported method {other}"),
        };
        Server::answer(response)
    }

    /// SIGTERM, then wait: the server finishes in-flight requests, flushes and exits 0.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a server this handle started");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL now, while other threads may still be sending requests to it (they then get
    /// transport errors from `try_post`); `kill9` afterwards reaps the process.
    pub fn kill9_under_load(&self) {
        let pid = self
            .child
            .as_ref()
            .expect("a server this handle started")
            .id()
            .to_string();
        let sent = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) {
        let mut child = self.child.take().expect("a server this handle started");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The encodings in which a canary must not appear.
pub fn needles(canary: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("raw".to_owned(), canary.as_bytes().to_vec()),
        ("lower".to_owned(), canary.to_lowercase().into_bytes()),
        ("upper".to_owned(), canary.to_uppercase().into_bytes()),
        ("hex".to_owned(), hex::encode(canary).into_bytes()),
        ("HEX".to_owned(), hex::encode_upper(canary).into_bytes()),
    ];
    // Inside a longer base64 text, the canary's encoding depends on its offset modulo 3: encode it
    // behind 0, 1 and 2 filler bytes and keep only the characters that depend on the canary alone.
    for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
        for pad in 0..3usize {
            let mut input = vec![0u8; pad];
            input.extend_from_slice(canary.as_bytes());
            let encoded = engine.encode(&input);
            let skip = pad.div_ceil(3) * 4;
            let usable = (input.len() / 3) * 4;
            if usable > skip + 8 {
                out.push((
                    format!("base64+{pad}"),
                    encoded.as_bytes()[skip..usable].to_vec(),
                ));
            }
        }
    }
    out
}

pub fn find(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// The headers of a GET of `url` without a key, by lower-case name (empty when absent).
pub fn headers_of(url: &str) -> impl Fn(&str) -> String + use<> {
    let answer = ureq::get(url).call().expect("the page answers");
    let headers: std::collections::BTreeMap<String, String> = answer
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    move |name: &str| headers.get(name).cloned().unwrap_or_default()
}

/// A copy of the repository's policy files in `dir` (made), for tests that change one.
pub fn copy_policies(dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    for entry in std::fs::read_dir(repo_root().join("policies"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
}

/// A throwaway PostgreSQL cluster for one test (tests/setup.sh installs PostgreSQL).
pub fn postgres() -> custodia_pgcluster::Cluster {
    custodia_pgcluster::Cluster::start(40).expect("a throwaway PostgreSQL cluster")
}

/// Runs `sql` on database `postgres` of `cluster` as its superuser; the first column of each
/// row, as text.
pub fn postgres_sql(cluster: &custodia_pgcluster::Cluster, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config: tokio_postgres::Config = cluster.url("postgres").parse().unwrap();
        let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some(row.get(0).unwrap_or_default().to_owned())
                }
                _ => None,
            })
            .collect()
    })
}
