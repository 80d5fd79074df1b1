//! Going back: a failed trial retried from its latest checkpoint (`max_failures`), and the
//! rollback both retries and resumes make, which follows the trial's checkpoint lineage.

use std::path::PathBuf;

use super::driver::Driver;
use super::state::Phase;
use crate::journal::Record;
use crate::logger;
use crate::trial::{TrialId, TrialStatus};

/// A rollback decided: back to the checkpoint of the lineage at `keep` (or the run's
/// `restore` checkpoint, or the start), keeping `rows` results, in config epoch `epoch`.
#[derive(Debug, Clone)]
pub(crate) struct Rewind {
    pub keep: Option<usize>,
    pub from: Option<PathBuf>,
    pub iteration: u64,
    pub time_total: f64,
    pub rows: usize,
    pub epoch: usize,
}

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
        let rejected = self.trials[id.index()].live.as_mut().and_then(|l| l.rejected.take());
        let plan = self.plan_rewind(id, back, rejected.as_deref());
        let record = self.rollback_record(id, &plan);
        self.journal(&record);
        self.apply_rewind(id, plan)
    }

    /// Where a rollback of the trial goes (reads and verifies checkpoints, changes nothing).
    pub fn plan_rewind(
        &mut self,
        id: TrialId,
        back: Back,
        rejected: Option<&std::path::Path>,
    ) -> Rewind {
        let t = &self.trials[id.index()];
        let mut candidates: Vec<usize> = match back {
            Back::Start => Vec::new(),
            Back::Latest => (0..t.log.checkpoints.len()).collect(),
        };
        if let Some(bad) = rejected {
            if let Some(k) = t.log.checkpoints.iter().rposition(|c| c.path == bad) {
                candidates.truncate(k);
            }
        }
        for k in candidates.into_iter().rev() {
            let c = &self.trials[id.index()].log.checkpoints[k];
            let (path, iteration, rows, epoch) = (c.path.clone(), c.iteration, c.rows, c.epoch);
            match self.verify_checkpoint(id, &path) {
                Ok(time_total) => {
                    return Rewind {
                        keep: Some(k),
                        from: Some(path),
                        iteration,
                        time_total,
                        rows,
                        epoch,
                    };
                }
                Err(e) => self.warn(&format!("{e}; trying an older checkpoint")),
            }
        }
        match (&self.s.restore, back) {
            (Some((dir, meta)), Back::Latest) => Rewind {
                keep: None,
                from: Some(dir.clone()),
                iteration: meta.iteration,
                time_total: meta.time_total_s,
                rows: 0,
                epoch: 0,
            },
            _ => {
                Rewind { keep: None, from: None, iteration: 0, time_total: 0.0, rows: 0, epoch: 0 }
            }
        }
    }

    /// The journal's record of a rollback.
    pub fn rollback_record(&self, id: TrialId, plan: &Rewind) -> Record {
        let checkpoint = plan
            .keep
            .and(plan.from.as_ref())
            .and_then(|p| p.strip_prefix(&self.s.experiment_dir).ok())
            .map(|p| p.to_string_lossy().into_owned());
        Record::Rollback {
            trial: id.0,
            iteration: plan.iteration,
            rows: Some(plan.rows as u64),
            checkpoint,
        }
    }

    /// Carries out a planned rollback (its record is journaled already); returns the rows
    /// it dropped.
    pub fn apply_rewind(&mut self, id: TrialId, plan: Rewind) -> Vec<f64> {
        let i = id.index();
        let t = &mut self.trials[i];
        match plan.keep {
            Some(k) => t.log.checkpoints.truncate(k + 1),
            None => t.log.checkpoints.clear(),
        }
        let dropped = t.log.truncate(plan.rows);
        if plan.epoch < t.log.epoch() {
            t.log.back_to_epoch(plan.epoch);
            let config = t.live.as_mut().and_then(|l| {
                let c = l.earlier.get(plan.epoch).cloned();
                l.earlier.truncate(plan.epoch);
                c
            });
            if let Some(config) = config {
                if let Err(e) = self.model.set_config(id, config) {
                    self.warn(&format!("trial {id}: cannot go back to its earlier config: {e}"));
                }
            }
        }
        self.model.clear_last(id);
        self.config_changed(id);
        let Some(live) = self.trials[i].live.as_mut() else { return dropped };
        live.iteration = plan.iteration;
        live.time_total = plan.time_total;
        live.ending = None;
        live.phase = Phase::Pending { from: plan.from };
        // The trial's files keep the rows it keeps (rewritten from them).
        self.emit_reset(id, false);
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
