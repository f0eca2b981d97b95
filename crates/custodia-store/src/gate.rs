//! The write gate: every writer of a data directory (store batches, ledger and access-log
//! appends, key-store changes) holds a [`GatePass`] while it writes, and an online backup holds
//! the one [`GatePause`] while it copies, so the copy sees the store, the logs and the key store
//! at one instant between writes.
//!
//! Passes nest: a thread that holds a pass gets another at once, even while a pause waits, so an
//! operation that takes a pass and then calls a writer that takes one too cannot deadlock
//! against the backup. A pause waits for the passes held to end, for a bounded time; if they do
//! not, it gives up and lets the writers it held back go on: a thread waiting for a pass while
//! holding a lock that a pass holder needs would otherwise deadlock with the backup.

use std::cell::RefCell;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Holds writers back while an online backup copies.
#[derive(Debug, Default)]
pub struct WriteGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    /// Passes held now, nested ones included.
    n_passes: usize,
    /// The thread that holds the pause, if one does.
    paused_by: Option<ThreadId>,
}

thread_local! {
    /// The gates this thread holds passes of (one element per pass), by address.
    static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A writer's permission to write; the gate cannot pause until it is dropped.
#[must_use = "the pass only holds the gate while it lives"]
#[derive(Debug)]
pub struct GatePass<'a> {
    gate: &'a WriteGate,
}

/// Every writer held back; dropped, they go on.
#[must_use = "writers go on as soon as the pause is dropped"]
#[derive(Debug)]
pub struct GatePause<'a> {
    gate: &'a WriteGate,
    /// How long the pause waited for the writers that held passes.
    pub waited: Duration,
}

/// Why [`WriteGate::pause`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseRefused {
    /// Another pause is held (another backup runs).
    AlreadyPaused,
    /// Writers still held passes when the wait ran out.
    WritersBusy,
}

impl WriteGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        // The state is two plain fields updated together: a panic cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// A pass to write: at once unless a pause is held or waiting, then when it ends. A thread
    /// that already holds a pass of this gate, or holds its pause, gets one at once.
    pub fn enter(&self) -> GatePass<'_> {
        let me = self.address();
        let nested = HELD.with(|held| held.borrow().contains(&me));
        let mut state = self.lock();
        let pauser = state.paused_by == Some(std::thread::current().id());
        if !nested && !pauser {
            while state.paused_by.is_some() {
                state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
        }
        state.n_passes += 1;
        drop(state);
        HELD.with(|held| held.borrow_mut().push(me));
        GatePass { gate: self }
    }

    /// Holds back every writer that has no pass yet, and waits at most `max_wait` for the passes
    /// held now to end.
    pub fn pause(&self, max_wait: Duration) -> Result<GatePause<'_>, PauseRefused> {
        let started = Instant::now();
        let mut state = self.lock();
        if state.paused_by.is_some() {
            return Err(PauseRefused::AlreadyPaused);
        }
        state.paused_by = Some(std::thread::current().id());
        while state.n_passes > 0 {
            let left = max_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                state.paused_by = None;
                drop(state);
                self.changed.notify_all();
                return Err(PauseRefused::WritersBusy);
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(GatePause {
            gate: self,
            waited: started.elapsed(),
        })
    }
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        let me = self.gate.address();
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if let Some(idx) = held.iter().rposition(|g| *g == me) {
                held.swap_remove(idx);
            }
        });
        let mut state = self.gate.lock();
        state.n_passes = state.n_passes.saturating_sub(1);
        let last = state.n_passes == 0;
        drop(state);
        if last {
            self.gate.changed.notify_all();
        }
    }
}

impl Drop for GatePause<'_> {
    fn drop(&mut self) {
        self.gate.lock().paused_by = None;
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_pause_waits_for_the_pass_held_and_holds_new_writers_back() {
        let gate = Arc::new(WriteGate::default());
        let pass = gate.enter();
        assert_eq!(
            gate.pause(Duration::from_millis(20)).err(),
            Some(PauseRefused::WritersBusy)
        );
        // Given up: writers are not held back.
        drop(gate.enter());
        drop(pass);

        let pause = gate.pause(Duration::from_secs(5)).unwrap();
        let wrote = Arc::new(AtomicBool::new(false));
        let writer = {
            let (gate, wrote) = (gate.clone(), wrote.clone());
            std::thread::spawn(move || {
                let _pass = gate.enter();
                wrote.store(true, Ordering::SeqCst);
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !wrote.load(Ordering::SeqCst),
            "a writer went through a pause"
        );
        // The pausing thread itself may write (it does not deadlock on its own pause).
        drop(gate.enter());
        assert_eq!(
            gate.pause(Duration::ZERO).err(),
            Some(PauseRefused::AlreadyPaused)
        );
        drop(pause);
        writer.join().unwrap();
        assert!(wrote.load(Ordering::SeqCst));
    }

    #[test]
    fn a_nested_pass_is_granted_while_a_pause_waits() {
        let gate = Arc::new(WriteGate::default());
        let outer = gate.enter();
        let pauser = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.pause(Duration::from_secs(5)).map(|p| p.waited))
        };
        std::thread::sleep(Duration::from_millis(50));
        // The pause is waiting for `outer`; a nested pass must not wait for the pause.
        drop(gate.enter());
        drop(outer);
        assert!(pauser.join().unwrap().is_ok());
    }
}
