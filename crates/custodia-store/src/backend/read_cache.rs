//! A read cache for a store whose engine is across a network (PostgreSQL): point reads answered
//! from memory, written through by every batch, bounded in bytes.
//!
//! Why it is correct: one process at a time owns the store (the PostgreSQL backend holds an
//! advisory lock), so every change to it goes through this cache's owner. What remains are
//! races between this process's own reads and writes, settled by two counters:
//!
//! - A read that missed fills the cache only if no batch was being written when it started and
//!   none started before it finished: otherwise the value it read may already be old.
//! - A batch writes its keys through only if no other batch overlapped it; otherwise the order
//!   in which two batches committed is unknown here, and it removes its keys instead.
//!
//! A failed batch empties the cache (it may or may not have committed; failures are rare, and
//! so its keys need not be kept for them). Scans never use the
//! cache. Eviction is generational: new entries go into a "hot" map; when the hot map holds
//! half the budget, it becomes the "cold" map and the old cold map is dropped; a hit in the
//! cold map moves the entry back to the hot one. So at most the budget is held, and what is
//! read or written often stays.

use std::collections::HashMap;
use std::sync::Mutex;

/// A cached answer of `get`: the value, or `None` for a key known to be absent.
type Cached = Option<Vec<u8>>;

pub(crate) struct ReadCache {
    /// Bytes of keys and values the two maps hold at most, together.
    budget: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    hot: HashMap<Vec<u8>, Cached>,
    hot_bytes: usize,
    cold: HashMap<Vec<u8>, Cached>,
    /// Batches that have started, and that have finished (with success or not).
    writes_started: u64,
    writes_done: u64,
}

/// What a read that missed must show when it fills the cache.
pub(crate) struct Miss {
    /// No batch was in flight when the read started.
    quiet: bool,
    writes_started: u64,
}

/// A batch in flight: whether another batch was in flight when it started, and its number.
pub(crate) struct Write {
    overlapped: bool,
    number: u64,
}

fn size_of(key: &[u8], value: &Cached) -> usize {
    // The map's own overhead per entry, roughly, so that many tiny entries count too.
    const ENTRY: usize = 64;
    ENTRY + key.len() + value.as_ref().map_or(0, Vec::len)
}

impl ReadCache {
    pub(crate) fn new(budget: usize) -> ReadCache {
        ReadCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached answer for `key`, or a [`Miss`] to hand back to [`ReadCache::fill`].
    pub(crate) fn get(&self, key: &[u8]) -> Result<Cached, Miss> {
        let mut state = self.lock();
        if let Some(cached) = state.hot.get(key) {
            return Ok(cached.clone());
        }
        if let Some(cached) = state.cold.remove(key) {
            state.insert_hot(key.to_vec(), cached.clone(), self.budget);
            return Ok(cached);
        }
        Err(Miss {
            quiet: state.writes_done == state.writes_started,
            writes_started: state.writes_started,
        })
    }

    /// Keeps what a missed read found, unless a batch may have changed it meanwhile.
    pub(crate) fn fill(&self, miss: Miss, key: &[u8], found: &Cached) {
        let mut state = self.lock();
        if miss.quiet && state.writes_started == miss.writes_started {
            state.cold.remove(key);
            state.insert_hot(key.to_vec(), found.clone(), self.budget);
        }
    }

    /// Marks a batch as started; hand the answer to [`ReadCache::finish_write`].
    pub(crate) fn start_write(&self) -> Write {
        let mut state = self.lock();
        let overlapped = state.writes_done != state.writes_started;
        state.writes_started += 1;
        Write {
            overlapped,
            number: state.writes_started,
        }
    }

    /// Ends a committed batch: its changes (`Some(value)` put, `None` deleted) are written
    /// through when nothing overlapped it, else its keys are forgotten.
    pub(crate) fn finish_write<'a>(
        &self,
        write: Write,
        changes: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) {
        let mut state = self.lock();
        state.writes_done += 1;
        let alone = !write.overlapped && state.writes_started == write.number;
        for (key, value) in changes {
            state.cold.remove(key);
            if alone {
                state.insert_hot(key.to_vec(), value.map(<[u8]>::to_vec), self.budget);
            } else if let Some(old) = state.hot.remove(key) {
                state.hot_bytes -= size_of(key, &old);
            }
        }
    }

    /// Ends a batch that failed: it may or may not have committed, so everything is forgotten.
    pub(crate) fn fail_write(&self, _write: Write) {
        let mut state = self.lock();
        state.writes_done += 1;
        state.clear();
    }

    /// Forgets everything: the store may have changed behind the cache's back (the database
    /// restarted and lost batches that no flush had covered).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Bytes held, for tests.
    #[cfg(test)]
    fn held(&self) -> usize {
        let state = self.lock();
        state.hot_bytes
            + state
                .cold
                .iter()
                .map(|(key, value)| size_of(key, value))
                .sum::<usize>()
    }
}

impl State {
    fn clear(&mut self) {
        self.hot.clear();
        self.cold.clear();
        self.hot_bytes = 0;
    }

    fn insert_hot(&mut self, key: Vec<u8>, value: Cached, budget: usize) {
        let added = size_of(&key, &value);
        if added > budget / 2 {
            // Larger than a generation: not kept (and any older copy goes).
            if let Some(old) = self.hot.remove(&key) {
                self.hot_bytes -= size_of(&key, &old);
            }
            return;
        }
        if let Some(old) = self.hot.remove(&key) {
            self.hot_bytes -= size_of(&key, &old);
        }
        if self.hot_bytes + added > budget / 2 {
            self.cold = std::mem::take(&mut self.hot);
            self.hot_bytes = 0;
        }
        self.hot_bytes += added;
        self.hot.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<'a>(key: &'a [u8], value: &'a [u8]) -> (&'a [u8], Option<&'a [u8]>) {
        (key, Some(value))
    }

    #[test]
    fn a_miss_fills_and_a_write_goes_through() {
        let cache = ReadCache::new(1 << 20);
        let miss = cache.get(b"k").unwrap_err();
        cache.fill(miss, b"k", &None);
        assert_eq!(cache.get(b"k").ok(), Some(None), "absence is cached too");
        let write = cache.start_write();
        cache.finish_write(write, [put(b"k", b"v")].into_iter());
        assert_eq!(cache.get(b"k").ok(), Some(Some(b"v".to_vec())));
        let write = cache.start_write();
        cache.finish_write(write, [(&b"k"[..], None)].into_iter());
        assert_eq!(cache.get(b"k").ok(), Some(None));
    }

    #[test]
    fn a_read_that_overlapped_a_write_does_not_fill() {
        let cache = ReadCache::new(1 << 20);
        // The write starts before the read, and is in flight when the read starts.
        let write = cache.start_write();
        let miss = cache.get(b"k").unwrap_err();
        cache.fill(miss, b"k", &Some(b"old".to_vec()));
        assert!(cache.get(b"k").is_err());
        cache.finish_write(write, [put(b"k", b"new")].into_iter());
        assert_eq!(cache.get(b"k").ok(), Some(Some(b"new".to_vec())));

        // The write starts after the read and finishes before the read fills.
        let miss = cache.get(b"j").unwrap_err();
        let write = cache.start_write();
        cache.finish_write(write, [put(b"j", b"new")].into_iter());
        cache.fill(miss, b"j", &Some(b"old".to_vec()));
        assert_eq!(cache.get(b"j").ok(), Some(Some(b"new".to_vec())));

        // The same, with the new value evicted before the stale read comes back.
        let small = ReadCache::new(4 * size_of(b"i", &Some(b"new".to_vec())));
        let miss = small.get(b"i").unwrap_err();
        let write = small.start_write();
        small.finish_write(write, [put(b"i", b"new")].into_iter());
        for filler in [&b"a"[..], b"b", b"c", b"d", b"e"] {
            let write = small.start_write();
            small.finish_write(write, [put(filler, b"xyz")].into_iter());
        }
        assert!(small.get(b"i").is_err(), "evicted");
        small.fill(miss, b"i", &Some(b"old".to_vec()));
        assert!(small.get(b"i").is_err(), "the stale read was not kept");
    }

    #[test]
    fn overlapping_or_failed_writes_forget_their_keys() {
        let cache = ReadCache::new(1 << 20);
        let write = cache.start_write();
        cache.finish_write(write, [put(b"k", b"v0")].into_iter());
        // Two batches in flight at once: which committed last is unknown here.
        let first = cache.start_write();
        let second = cache.start_write();
        cache.finish_write(second, [put(b"k", b"v2")].into_iter());
        cache.finish_write(first, [put(b"k", b"v1")].into_iter());
        assert!(cache.get(b"k").is_err());
        // A batch that failed may or may not have committed.
        let write = cache.start_write();
        cache.finish_write(write, [put(b"j", b"v")].into_iter());
        let write = cache.start_write();
        cache.fail_write(write);
        assert!(cache.get(b"j").is_err());
    }

    #[test]
    fn the_budget_bounds_what_is_held_and_hits_stay() {
        let budget = 64 * 1024;
        let cache = ReadCache::new(budget);
        for i in 0..10_000u32 {
            let write = cache.start_write();
            let key = i.to_be_bytes();
            cache.finish_write(write, [put(&key, &[7u8; 100])].into_iter());
            // Key 0 is read all along: it stays.
            assert!(cache.get(&0u32.to_be_bytes()).is_ok(), "at {i}");
            assert!(cache.held() <= budget, "{} bytes at {i}", cache.held());
        }
        assert!(cache.get(&5u32.to_be_bytes()).is_err(), "old entries went");
        // A value larger than half the budget is not kept.
        let write = cache.start_write();
        cache.finish_write(write, [put(b"big", &vec![0u8; budget])].into_iter());
        assert!(cache.get(b"big").is_err());
    }
}
