//! Group commit for the durable engines: an engine's flush shared by every caller that arrives
//! while one runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::StoreError;

/// Group commit: callers that arrive while a flush runs wait for it and, if it did not cover
/// their writes, share the next one, so N concurrent acknowledgements cost about two syncs
/// rather than N.
///
/// Invariant: `n_durable` never exceeds the number of applies that had returned when the
/// engine flush that set it started.
#[derive(Default)]
pub(crate) struct GroupCommit {
    /// Applies that have returned, counted after each one returns.
    n_applied: AtomicU64,
    state: Mutex<FlushState>,
    flush_done: Condvar,
}

#[derive(Default)]
struct FlushState {
    /// Every apply counted up to this number is durable.
    n_durable: u64,
    /// Whether some caller is running the engine flush right now.
    flushing: bool,
}

impl GroupCommit {
    /// Records that an apply has returned.
    pub(crate) fn applied(&self) {
        self.n_applied.fetch_add(1, Ordering::SeqCst);
    }

    /// Returns once every apply that returned before the call is durable, running
    /// `engine_flush` itself or waiting for a caller that runs it.
    pub(crate) fn flush(
        &self,
        engine_flush: impl Fn() -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let target = self.n_applied.load(Ordering::SeqCst);
        let mut state = self.lock()?;
        loop {
            if state.n_durable >= target {
                return Ok(());
            }
            if !state.flushing {
                break;
            }
            state = self.flush_done.wait(state).map_err(|_| poisoned())?;
        }
        // This caller runs the flush, for everything applied so far (at least `target`).
        state.flushing = true;
        let covered = self.n_applied.load(Ordering::SeqCst);
        drop(state);
        let mut running = RunningFlush {
            commit: self,
            covered: None,
        };
        engine_flush()?;
        running.covered = Some(covered);
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, FlushState>, StoreError> {
        self.state.lock().map_err(|_| poisoned())
    }
}

/// Ends a flush on every path out of it (success, error, panic), so waiters never hang.
struct RunningFlush<'a> {
    commit: &'a GroupCommit,
    /// Set when the engine flush succeeded: the applies it made durable.
    covered: Option<u64>,
}

impl Drop for RunningFlush<'_> {
    fn drop(&mut self) {
        // A poisoned lock means another thread panicked while holding it; recover the state so
        // waiters still wake (they then see `flushing == false` and run their own flush).
        let mut state = self
            .commit
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.flushing = false;
        if let Some(covered) = self.covered {
            state.n_durable = state.n_durable.max(covered);
        }
        drop(state);
        self.commit.flush_done.notify_all();
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("flush state lock poisoned by a panic".to_owned())
}
