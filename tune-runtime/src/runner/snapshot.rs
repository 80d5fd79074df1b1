//! Saved state: when the searcher's and the scheduler's state goes to the journal.
//!
//! A resume restores the latest saved state and gives the searcher and the scheduler
//! what the journal records after it (see `resume.rs`), so a state need not be saved
//! often to be exact: it only bounds how much a resume replays. It is saved when the
//! journal has grown, since the last one, by at least the last one's size. So the states
//! take at most as many bytes as the other records (the journal stays O(records) even for a
//! searcher whose state holds every finished trial), and serializing them costs O(1)
//! amortized per record.

use serde_json::Value;

use super::driver::Driver;
use super::state::Phase;
use crate::journal::Record;

/// Bookkeeping of the saved states.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// The last state written.
    last: Option<(Value, Value)>,
    /// Bytes journaled since.
    since: usize,
    /// Bytes of the last state record.
    size: usize,
}

impl Snapshot {
    /// `n` bytes were journaled.
    pub fn appended(&mut self, n: usize) {
        self.since += n;
    }
}

impl Driver {
    /// Saves the searcher's and the scheduler's state when due (`force`: now, at the end
    /// of a run or after a resume) and changed. Never while a pause checkpoint is being
    /// written: the journal records a checkpoint before any state that depends on it.
    pub fn save_state(&mut self, force: bool) {
        // A shared experiment saves no state: each process's searcher and scheduler are its
        // own, and a process joining replays the whole log.
        if self.journal.is_none()
            || self.is_shared()
            || self.any_phase(|p| matches!(p, Phase::PausingToDisk { .. }))
        {
            return;
        }
        if !force && self.snapshot.since < self.snapshot.size {
            return;
        }
        let state = self.model.save_state();
        if self.snapshot.last.as_ref() == Some(&state) {
            self.snapshot.since = 0;
            return;
        }
        let record = Record::State { searcher: state.0.clone(), scheduler: state.1.clone() };
        if let Some(j) = &mut self.journal {
            match j.record(&record) {
                Ok(n) => {
                    self.snapshot.size = n;
                    self.snapshot.since = 0;
                    self.snapshot.last = Some(state);
                }
                Err(source) => {
                    let path = self.s.experiment_dir.join(crate::journal::JOURNAL_FILE);
                    self.fatal.get_or_insert(crate::logger::LogError { path, source });
                    self.journal = None;
                }
            }
        }
    }
}
