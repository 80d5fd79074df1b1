//! Going back: a failed trial retried from its latest checkpoint (`max_failures`), and the
//! rollback both retries and resumes make, which follows the trial's checkpoint lineage.

use std::path::PathBuf;

use super::driver::Driver;
use super::state::Phase;
use crate::journal::Record;
use crate::logger::{self, TrialLogger};
use crate::trial::{TrialId, TrialStatus};

/// Where a rollback may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Back {
    /// To the latest checkpoint that verifies (older ones when newer ones are missing or
    /// corrupt), else to the start (or the run's `restore` checkpoint).
    Latest,
    /// To the start, whatever the checkpoints.
    Start,
}

impl Driver {
    /// On an error of a started trial: when it has retries left, records the failure,
    /// rolls the trial back to its latest checkpoint and queues it again. Returns whether
    /// it did.
    pub fn retry(&mut self, id: TrialId, message: &str) -> bool {
        let i = id.index();
        if self.trials[i].log.status != TrialStatus::Running
            || (self.stopping && self.interrupted.is_none())
        {
            return false;
        }
        let Some(live) = self.trials[i].live.as_mut() else { return false };
        if live.retries >= self.s.faults.max_failures {
            return false;
        }
        live.retries += 1;
        let attempt = live.retries;
        let dir = live.dir.clone();
        self.pool_release(id);
        self.trials[i].log.failures.push(message.to_string());
        self.journal(&Record::Failure { trial: id.0, attempt, error: message.to_string() });
        if self.s.file_logging {
            if let Err(e) = logger::write_errors(&dir, &self.trials[i].log.failures, None, None) {
                self.fatal.get_or_insert(e);
            }
        }
        self.warn(&format!(
            "trial {}_{id} failed (attempt {attempt} of {}): {message}; retrying from its \
             latest checkpoint",
            self.model.trainable(),
            self.s.faults.max_failures + 1
        ));
        let _ = self.rewind(id, Back::Latest);
        self.set_status(id, TrialStatus::Pending, None);
        self.pending.push(id);
        self.flush_journal();
        true
    }

    /// Rolls an unfinished trial back along its lineage: to its latest checkpoint that
    /// verifies (skipping one that failed to restore and those after it), or to its start.
    /// Its results after that checkpoint are dropped from the history, the journal and its
    /// files, its config goes back to the checkpoint's epoch, and it waits as pending.
    /// Nothing is deleted from disk. Returns the rows it dropped.
    pub fn rewind(&mut self, id: TrialId, back: Back) -> Vec<f64> {
        let i = id.index();
        let rejected = self.trials[i].live.as_mut().and_then(|l| l.rejected.take());
        let t = &self.trials[i];
        let mut candidates: Vec<usize> = match back {
            Back::Start => Vec::new(),
            Back::Latest => (0..t.log.checkpoints.len()).collect(),
        };
        if let Some(bad) = &rejected {
            if let Some(k) = t.log.checkpoints.iter().rposition(|c| &c.path == bad) {
                candidates.truncate(k);
            }
        }
        let mut chosen = None;
        for k in candidates.into_iter().rev() {
            let path = self.trials[i].log.checkpoints[k].path.clone();
            match self.verify_checkpoint(id, &path) {
                Ok(time_total) => {
                    chosen = Some((k, time_total));
                    break;
                }
                Err(e) => self.warn(&format!("{e}; trying an older checkpoint")),
            }
        }
        let (from, iteration, time_total, rows, epoch): (Option<PathBuf>, u64, f64, usize, usize) =
            match chosen {
                Some((k, time_total)) => {
                    let t = &mut self.trials[i].log;
                    t.checkpoints.truncate(k + 1);
                    let c = &t.checkpoints[k];
                    (Some(c.path.clone()), c.iteration, time_total, c.rows, c.epoch)
                }
                None => {
                    self.trials[i].log.checkpoints.clear();
                    match (&self.s.restore, back) {
                        (Some((dir, meta)), Back::Latest) => {
                            (Some(dir.clone()), meta.iteration, meta.time_total_s, 0, 0)
                        }
                        _ => (None, 0, 0.0, 0, 0),
                    }
                }
            };
        let rel = from
            .as_ref()
            .and_then(|p| p.strip_prefix(&self.s.experiment_dir).ok())
            .map(|p| p.to_string_lossy().into_owned());
        let t = &mut self.trials[i];
        let dropped = t.log.history.split_off((rows * t.log.width).min(t.log.history.len()));
        if epoch < t.log.epoch() {
            t.log.back_to_epoch(epoch);
            let config = t.live.as_mut().and_then(|l| {
                let c = l.earlier.get(epoch).cloned();
                l.earlier.truncate(epoch);
                c
            });
            if let Some(config) = config {
                if let Err(e) = self.model.set_config(id, config) {
                    self.warn(&format!("trial {id}: cannot go back to its earlier config: {e}"));
                }
            }
        }
        self.journal(&Record::Rollback {
            trial: id.0,
            iteration,
            rows: Some(rows as u64),
            checkpoint: rel.filter(|_| chosen.is_some()),
        });
        self.model.clear_last(id);
        let file_logging = self.s.file_logging;
        let names = self.model.metric_names();
        let config = self.model.config_json(id);
        let t = &mut self.trials[i];
        let Some(live) = t.live.as_mut() else { return dropped };
        live.iteration = iteration;
        live.time_total = time_total;
        live.ending = None;
        live.phase = Phase::Pending { from };
        if let Some(mut l) = live.logger.take() {
            let _ = l.flush();
        }
        if file_logging && (rows > 0 || live.dir.join("result.json").exists()) {
            match TrialLogger::rewrite(&live.dir, names, &config, &t.log.history, id, false) {
                Ok(l) => live.logger = Some(l),
                Err(e) => {
                    self.fatal.get_or_insert(e);
                }
            }
        }
        dropped
    }

    /// Checks a checkpoint of the trial before it is restored: readable through the
    /// checkpoint store, every file as its manifest says, written by this trainable for
    /// this trial. Returns its total training time.
    pub fn verify_checkpoint(&self, id: TrialId, path: &std::path::Path) -> Result<f64, String> {
        let local = self
            .s
            .checkpoint_store
            .open(path)
            .map_err(|e| format!("checkpoint `{}` cannot be read: {e}", path.display()))?;
        let meta = crate::checkpoint::read_meta(&local)?;
        if meta.trainable != self.model.trainable() {
            return Err(format!(
                "checkpoint `{}` was written by `{}`, not `{}`",
                path.display(),
                meta.trainable,
                self.model.trainable()
            ));
        }
        if let Some(trial) = &meta.trial {
            if *trial != id.to_string() {
                return Err(format!(
                    "checkpoint `{}` belongs to trial {trial}, not to trial {id}",
                    path.display()
                ));
            }
        }
        Ok(meta.time_total_s)
    }
}
