//! Online backups: the engine holds every writer (store batches, ledger and access-log appends,
//! key-store changes) at the store's write gate, so that a backup taken meanwhile sees the store,
//! the logs and the key store at one instant between writes. Reads go on, except those that
//! must record themselves in the access log (that is a write): they wait for the pause to end.

use std::path::Path;
use std::time::Duration;

use custodia_store::{GatePause, PauseRefused};

use crate::{Engine, EngineError};

/// Every writer of this engine held back until this is dropped.
pub struct WritesPaused<'a> {
    engine: &'a Engine,
    pause: GatePause<'a>,
}

impl Engine {
    /// Holds every writer back, waiting at most `max_wait` for the writes under way to end.
    ///
    /// Refused (`conflict`) while another pause is held, or when writes under way did not end in
    /// time; the writers held back meanwhile then go on, and nothing was changed.
    pub fn pause_writes(&self, max_wait: Duration) -> Result<WritesPaused<'_>, EngineError> {
        let pause = self.store.write_gate().pause(max_wait).map_err(|refused| {
            let message = match refused {
                PauseRefused::AlreadyPaused => "another online backup is running".to_owned(),
                PauseRefused::WritersBusy => format!(
                    "writes under way did not end within {} ms; try again",
                    max_wait.as_millis()
                ),
            };
            EngineError::Conflict {
                field: "/".to_owned(),
                message,
            }
        })?;
        Ok(WritesPaused {
            engine: self,
            pause,
        })
    }
}

impl WritesPaused<'_> {
    /// How long the pause waited for the writes under way.
    pub fn waited(&self) -> Duration {
        self.pause.waited
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.engine.data_dir
    }

    /// The key store directory.
    pub fn keys_dir(&self) -> &Path {
        self.engine.vault.keys_dir()
    }

    /// Flushes the live store, then copies its every entry into a new store in `dir`, closed
    /// when this returns; returns the number of entries.
    pub fn copy_store_to(&self, dir: &Path) -> Result<u64, EngineError> {
        self.engine.store.flush()?;
        Ok(self.engine.store.copy_to_new(dir)?)
    }
}
