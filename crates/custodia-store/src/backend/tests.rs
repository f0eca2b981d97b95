//! The backend contract, checked against every engine, and the durable engines' (sled, fjall)
//! durability, crash atomicity, locking and group commit.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::group_commit::GroupCommit;
use super::*;

/// A durable engine, by the name the crash child is told.
#[derive(Clone, Copy, Debug)]
enum Durable {
    Sled,
    Fjall,
}

const DURABLE: [Durable; 2] = [Durable::Sled, Durable::Fjall];

impl Durable {
    fn open(self, dir: &Path) -> Result<Box<dyn KvBackend>, StoreError> {
        Ok(match self {
            Durable::Sled => Box::new(SledBackend::open(dir)?),
            Durable::Fjall => Box::new(FjallBackend::open(dir)?),
        })
    }

    /// Opens a directory whose previous handle was just dropped (an engine's background
    /// threads may hold its lock a moment longer).
    fn reopen(self, dir: &Path) -> Box<dyn KvBackend> {
        let started = Instant::now();
        loop {
            match self.open(dir) {
                Err(StoreError::Locked) if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other.unwrap(),
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Durable::Sled => "sled",
            Durable::Fjall => "fjall",
        }
    }

    fn named(name: &str) -> Durable {
        DURABLE
            .into_iter()
            .find(|engine| engine.name() == name)
            .unwrap()
    }
}

fn put(key: &[u8], value: &[u8]) -> KvOp {
    KvOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn delete(key: &[u8]) -> KvOp {
    KvOp::Delete { key: key.to_vec() }
}

fn keys_of(entries: &[KvEntry]) -> Vec<&[u8]> {
    entries.iter().map(|(key, _)| key.as_slice()).collect()
}

/// Everything a `KvBackend` promises, for one engine.
pub(super) fn check_contract(backend: &dyn KvBackend) {
    // get / put / delete.
    assert_eq!(backend.get(b"k").unwrap(), None);
    backend.apply(vec![put(b"k", b"v1")]).unwrap();
    assert_eq!(backend.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    backend.apply(vec![put(b"k", b"v2")]).unwrap();
    assert_eq!(backend.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    backend
        .apply(vec![delete(b"k"), delete(b"never-there")])
        .unwrap();
    assert_eq!(backend.get(b"k").unwrap(), None);
    backend.apply(vec![]).unwrap();

    // Within one batch, ops apply in order.
    backend
        .apply(vec![
            put(b"o", b"1"),
            delete(b"o"),
            put(b"p", b"1"),
            put(b"p", b"2"),
        ])
        .unwrap();
    assert_eq!(backend.get(b"o").unwrap(), None);
    assert_eq!(backend.get(b"p").unwrap().as_deref(), Some(&b"2"[..]));

    // scan_prefix: key order (unsigned bytes), prefix bounds, `after`, `limit`.
    backend
        .apply(vec![
            put(b"s/\xff", b"4"),
            put(b"s/b", b"2"),
            put(b"s/a", b"1"),
            put(b"s/c", b"3"),
            put(b"s", b"0"),
            put(b"r/z", b"before"),
            put(b"t/a", b"after"),
        ])
        .unwrap();
    let all = backend.scan_prefix(b"s/", None, usize::MAX).unwrap();
    assert_eq!(keys_of(&all), [&b"s/a"[..], b"s/b", b"s/c", b"s/\xff"]);
    assert_eq!(all[0].1, b"1");
    let page = backend.scan_prefix(b"s/", None, 2).unwrap();
    assert_eq!(keys_of(&page), [&b"s/a"[..], b"s/b"]);
    let page = backend.scan_prefix(b"s/", Some(b"s/b"), 2).unwrap();
    assert_eq!(keys_of(&page), [&b"s/c"[..], b"s/\xff"]);
    // `after` need not be a stored key, and may sort before or after the whole prefix.
    let page = backend.scan_prefix(b"s/", Some(b"s/bb"), 10).unwrap();
    assert_eq!(keys_of(&page), [&b"s/c"[..], b"s/\xff"]);
    assert_eq!(backend.scan_prefix(b"s/", Some(b"a"), 10).unwrap().len(), 4);
    assert!(
        backend
            .scan_prefix(b"s/", Some(b"z"), 10)
            .unwrap()
            .is_empty()
    );
    assert!(
        backend
            .scan_prefix(b"s/", Some(b"s/\xff"), 10)
            .unwrap()
            .is_empty()
    );
    assert!(backend.scan_prefix(b"s/", None, 0).unwrap().is_empty());
    assert!(backend.scan_prefix(b"q", None, 10).unwrap().is_empty());
    assert_eq!(backend.scan_prefix(b"s", None, 10).unwrap().len(), 5);
    assert_eq!(backend.count_prefix(b"s/").unwrap(), 4);
    assert_eq!(backend.count_prefix(b"q").unwrap(), 0);

    // last_before: the greatest key of the prefix strictly before the bound; keys outside the
    // prefix ("s", "t/a", "s0") never answer and never hide the prefix's own last key.
    backend.apply(vec![put(b"s0", b"outside")]).unwrap();
    let last = |before: &[u8]| {
        backend
            .last_before(b"s/", before)
            .unwrap()
            .map(|(key, _)| key)
    };
    assert_eq!(last(b"s/c"), Some(b"s/b".to_vec()));
    assert_eq!(last(b"s/bb"), Some(b"s/b".to_vec()));
    assert_eq!(last(b"s/a"), None);
    assert_eq!(last(b"s/"), None);
    assert_eq!(last(b"a"), None);
    assert_eq!(last(b"s/\xff\x00"), Some(b"s/\xff".to_vec()));
    assert_eq!(last(b"t"), Some(b"s/\xff".to_vec()));
    assert_eq!(last(b"zzz"), Some(b"s/\xff".to_vec()));
    assert_eq!(
        backend.last_before(b"s/", b"s/b").unwrap(),
        Some((b"s/a".to_vec(), b"1".to_vec()))
    );
    assert_eq!(backend.last_before(b"q", b"z").unwrap(), None);
    assert_eq!(
        backend.last_before(b"\xff", b"\xff\xff").unwrap(),
        None,
        "a prefix of 0xff bytes has no successor"
    );
    backend.apply(vec![delete(b"s0")]).unwrap();

    // Prefix isolation between tenants "a" and "ab": a bare tenant prefix would mix them, the
    // length-prefixed one does not.
    let tenant_key = |tenant: &[u8], rest: &[u8]| {
        let mut key = vec![b'X'];
        key.extend_from_slice(&u32::try_from(tenant.len()).unwrap().to_be_bytes());
        key.extend_from_slice(tenant);
        key.extend_from_slice(rest);
        key
    };
    backend
        .apply(vec![
            KvOp::Put {
                key: tenant_key(b"a", b"1"),
                value: b"a1".to_vec(),
            },
            KvOp::Put {
                key: tenant_key(b"ab", b"1"),
                value: b"ab1".to_vec(),
            },
            KvOp::Put {
                key: tenant_key(b"a", b"b\0\0\0\x011"),
                value: b"a-tricky".to_vec(),
            },
        ])
        .unwrap();
    let of_a = backend
        .scan_prefix(&tenant_key(b"a", b""), None, 10)
        .unwrap();
    let values: Vec<&[u8]> = of_a.iter().map(|(_, value)| value.as_slice()).collect();
    assert_eq!(values, [&b"a1"[..], b"a-tricky"]);
    let of_ab = backend
        .scan_prefix(&tenant_key(b"ab", b""), None, 10)
        .unwrap();
    assert_eq!(of_ab, [(tenant_key(b"ab", b"1"), b"ab1".to_vec())]);

    // A batch is all or nothing to readers: a reader thread never sees half of one.
    let n_batches = 200u32;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0..n_batches {
                let value = i.to_be_bytes();
                backend
                    .apply(vec![put(b"pair/x", &value), put(b"pair/y", &value)])
                    .unwrap();
            }
        });
        for _ in 0..n_batches {
            let pair = backend.scan_prefix(b"pair/", None, 10).unwrap();
            if let [(_, x), (_, y)] = pair.as_slice() {
                assert_eq!(x, y, "a reader saw half a batch");
            }
        }
    });

    backend.flush().unwrap();
}

#[test]
fn mem_backend_keeps_the_contract() {
    check_contract(&MemBackend::new());
}

/// A backend with only the required methods, so the trait's default `count_prefix` and
/// `last_before` are the ones checked.
struct DefaultsOnly(MemBackend);

impl KvBackend for DefaultsOnly {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvEntry>, StoreError> {
        self.0.scan_prefix(prefix, after, limit)
    }
    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        self.0.apply(ops)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.0.flush()
    }
    fn size_on_disk(&self) -> u64 {
        0
    }
}

#[test]
fn the_default_methods_keep_the_contract() {
    check_contract(&DefaultsOnly(MemBackend::new()));
}

#[test]
fn durable_backends_keep_the_contract() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().unwrap();
        let backend = engine.open(dir.path()).unwrap();
        check_contract(&*backend);
        assert!(backend.size_on_disk() > 0, "{engine:?}");
    }
}

#[test]
fn a_fjall_store_is_told_from_a_sled_one() {
    let (sled, fjall, empty) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    drop(SledBackend::open(sled.path()).unwrap());
    drop(FjallBackend::open(fjall.path()).unwrap());
    assert!(FjallBackend::is_store(fjall.path()));
    assert!(!FjallBackend::is_store(sled.path()));
    assert!(!FjallBackend::is_store(empty.path()));
}

#[test]
fn the_default_methods_page_through_scans() {
    let backend = DefaultsOnly(MemBackend::new());
    // 2048 and 2049 keys: exactly two pages, and two pages plus one.
    let ops = (0..2048u32)
        .map(|i| put(&[b"c".as_slice(), &i.to_be_bytes()].concat(), b""))
        .collect();
    backend.apply(ops).unwrap();
    backend.apply(vec![put(b"d", b""), put(b"b", b"")]).unwrap();
    assert_eq!(backend.count_prefix(b"c").unwrap(), 2048);
    // The greatest key before a bound, found across pages.
    let key = |i: u32| [b"c".as_slice(), &i.to_be_bytes()].concat();
    let last = |before: &[u8]| backend.last_before(b"c", before).unwrap().map(|(k, _)| k);
    assert_eq!(last(b"c\xff"), Some(key(2047)));
    assert_eq!(last(&key(1025)), Some(key(1024)));
    assert_eq!(last(&key(1024)), Some(key(1023)));
    assert_eq!(last(&key(0)), None);
    backend.apply(vec![put(b"c\xff", b"")]).unwrap();
    assert_eq!(backend.count_prefix(b"c").unwrap(), 2049);
}

#[test]
fn flushed_writes_survive_reopen() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().unwrap();
        {
            let backend = engine.open(dir.path()).unwrap();
            backend
                .apply(vec![put(b"kept", b"yes"), put(b"gone", b"no")])
                .unwrap();
            backend.apply(vec![delete(b"gone")]).unwrap();
            backend.flush().unwrap();
        }
        let backend = engine.reopen(dir.path());
        assert_eq!(backend.get(b"kept").unwrap().as_deref(), Some(&b"yes"[..]));
        assert_eq!(backend.get(b"gone").unwrap(), None, "{engine:?}");
    }
}

#[test]
fn second_open_of_a_directory_is_refused_at_once() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().unwrap();
        let first = engine.open(dir.path()).unwrap();
        // A hang would block the test for ever; a thread turns it into a failure.
        let (sender, receiver) = mpsc::channel();
        let path = dir.path().to_owned();
        std::thread::spawn(move || {
            let _ = sender.send(engine.open(&path).map(drop));
        });
        let second = receiver
            .recv_timeout(Duration::from_secs(20))
            .expect("second open hung");
        let error = second.unwrap_err();
        assert!(matches!(error, StoreError::Locked), "{engine:?}: {error:?}");
        assert_eq!(error.code(), custodia_core::ErrorCode::Internal);
        // Closing the first handle releases the lock.
        drop(first);
        engine.reopen(dir.path());
    }
}

#[test]
fn concurrent_flushes_all_return_durable() {
    for engine in DURABLE {
        let dir = tempfile::tempdir().unwrap();
        let backend: Arc<dyn KvBackend> = Arc::from(engine.open(dir.path()).unwrap());
        std::thread::scope(|scope| {
            for thread_idx in 0..8u8 {
                let backend = &backend;
                scope.spawn(move || {
                    for write_idx in 0..25u8 {
                        backend
                            .apply(vec![put(&[thread_idx, write_idx], b"v")])
                            .unwrap();
                        backend.flush().unwrap();
                    }
                });
            }
        });
        drop(backend);
        let backend = engine.reopen(dir.path());
        assert_eq!(backend.count_prefix(b"").unwrap(), 8 * 25, "{engine:?}");
    }
}

#[test]
fn group_commit_shares_flushes_and_recovers_from_errors() {
    let commit = GroupCommit::default();
    let n_engine_flushes = std::sync::atomic::AtomicU64::new(0);
    let engine_flush = || {
        n_engine_flushes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    };
    // Nothing applied: nothing to flush.
    commit.flush(engine_flush).unwrap();
    assert_eq!(
        n_engine_flushes.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    commit.applied();
    commit.flush(engine_flush).unwrap();
    commit.flush(engine_flush).unwrap();
    assert_eq!(
        n_engine_flushes.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    // A failed flush is reported and leaves the writes pending, for the next caller to retry.
    commit.applied();
    let failed = commit.flush(|| Err(StoreError::Backend("disk full".to_owned())));
    assert!(matches!(failed, Err(StoreError::Backend(_))));
    commit.flush(engine_flush).unwrap();
    assert_eq!(
        n_engine_flushes.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

/// Set in the child process of `acknowledged_writes_survive_kill_9` to the store directory.
const CRASH_CHILD_DIR: &str = "CUSTODIA_STORE_TEST_CRASH_CHILD_DIR";
/// Set in the child process to the engine's name.
const CRASH_CHILD_ENGINE: &str = "CUSTODIA_STORE_TEST_CRASH_CHILD_ENGINE";
const N_ACKNOWLEDGED: u32 = 500;
const FLUSHED_MARKER: &str = "custodia-store-crash-child-flushed";

/// The child half of `acknowledged_writes_survive_kill_9`; without the variable it does nothing.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_CHILD_DIR) else {
        return;
    };
    let engine = Durable::named(&std::env::var(CRASH_CHILD_ENGINE).unwrap());
    let backend = engine.open(Path::new(&dir)).unwrap();
    for i in 0..N_ACKNOWLEDGED {
        backend
            .apply(vec![put(
                &[b"ack/".as_slice(), &i.to_be_bytes()].concat(),
                b"v",
            )])
            .unwrap();
    }
    backend.flush().unwrap();
    // libtest may print the test's name on the same line first, hence a distinctive marker.
    println!("{FLUSHED_MARKER}");
    std::io::stdout().flush().unwrap();
    // Keep writing two-key batches, flushed now and then, until the parent kills the process;
    // after the crash each pair must be whole or absent. Give up after a minute in case the
    // parent died first.
    let started = Instant::now();
    let mut pair_idx = 0u32;
    while started.elapsed() < Duration::from_secs(60) {
        let value = pair_idx.to_be_bytes();
        let x = [b"pair/x/".as_slice(), &value].concat();
        let y = [b"pair/y/".as_slice(), &value].concat();
        backend
            .apply(vec![put(&x, &value), put(&y, &value)])
            .unwrap();
        if pair_idx.is_multiple_of(64) {
            backend.flush().unwrap();
        }
        pair_idx = pair_idx.wrapping_add(1);
    }
    std::process::exit(1);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    for engine in DURABLE {
        kill_9_in_a_write(engine);
    }
}

fn kill_9_in_a_write(engine: Durable) {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "backend::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DIR, dir.path())
        .env(CRASH_CHILD_ENGINE, engine.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = BufReader::new(child.0.stdout.take().unwrap());
    let flushed = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(FLUSHED_MARKER));
    assert!(flushed, "the child exited before flushing");
    // Let it write unflushed pairs for a moment, then SIGKILL it mid-write.
    std::thread::sleep(Duration::from_millis(300));
    drop(child);

    let backend = engine.open(dir.path()).unwrap();
    assert_eq!(
        backend.count_prefix(b"ack/").unwrap(),
        u64::from(N_ACKNOWLEDGED),
        "{engine:?}"
    );
    let xs = backend.scan_prefix(b"pair/x/", None, usize::MAX).unwrap();
    let ys = backend.scan_prefix(b"pair/y/", None, usize::MAX).unwrap();
    let suffixes = |entries: &[KvEntry]| -> Vec<Vec<u8>> {
        entries.iter().map(|(key, _)| key[7..].to_vec()).collect()
    };
    assert_eq!(
        suffixes(&xs),
        suffixes(&ys),
        "{engine:?}: a batch survived the crash in part"
    );
    assert!(!xs.is_empty(), "flushed pairs are missing");
}

/// Kills (SIGKILL on Unix) and reaps the child when dropped, also when the test fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
