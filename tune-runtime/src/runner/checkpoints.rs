//! Checkpoints: when they are due, how a written one joins the trial's lineage, which
//! ones `keep_checkpoints_num` deletes (never the latest), and what a refused write does.

use super::driver::Driver;
use super::model::CheckpointRequest;
use super::state::{End, Live};
use crate::checkpoint::SaveError;
use crate::journal::{CheckpointInfo, Record};
use crate::logger::LogError;
use crate::trial::TrialId;

impl Driver {
    /// The checkpoint due after the trial's next step (`checkpoint_freq`, or the
    /// scheduler wants one there; for a result a resumed trial reports again, the scheduler
    /// wanted one there then).
    pub fn checkpoint_request(&self, id: TrialId, live: &Live) -> Option<CheckpointRequest> {
        let next = live.iteration + 1;
        let due = self.s.checkpoint_freq > 0 && next.is_multiple_of(self.s.checkpoint_freq);
        let wanted = match &live.checkpoints_then {
            Some(then) if next <= live.seen_upto => then.contains(&next),
            _ => self.model.wants_checkpoint(id, next),
        };
        (due || wanted).then(|| self.request(id, live, next)).flatten()
    }

    /// A checkpoint of the trial at `iteration`; `None` after a failed write (the resume
    /// rolls back to the latest one written before) or at iteration 0.
    pub fn request(&self, id: TrialId, live: &Live, iteration: u64) -> Option<CheckpointRequest> {
        (self.fatal.is_none() && iteration > 0).then(|| CheckpointRequest {
            dir: live.checkpoint_dir(iteration),
            iteration,
            time_total_s: live.time_total,
            trial: id.to_string(),
            durability: self.s.durability,
        })
    }

    /// The checkpoint a trial ending now writes (at its end, or to be resumed), unless its
    /// latest checkpoint already holds its latest result.
    pub fn end_checkpoint(&self, id: TrialId, live: &Live) -> Option<CheckpointRequest> {
        let t = &self.trials[id.index()];
        let current = t.restore_point().is_some_and(|c| {
            c.iteration == live.iteration
                && c.rows == t.log.num_results()
                && c.epoch == t.log.epoch()
        });
        if current {
            return None;
        }
        // The worker adds no step time: the total is complete.
        self.request(id, live, live.iteration)
    }

    /// A checkpoint of the trial at `iteration` was written: it joins the lineage, after
    /// the trial's results so far, and the journal records it (and is flushed) before
    /// anything that depends on it.
    pub fn register_checkpoint(&mut self, id: TrialId, iteration: u64, announced: bool) {
        let t = &mut self.trials[id.index()];
        let Some(live) = t.live.as_ref() else { return };
        let path = live.checkpoint_dir(iteration);
        let rel = live.checkpoint_rel(iteration);
        let (rows, epoch) = (t.log.num_results(), t.log.epoch());
        // The same directory written again replaces the older checkpoint.
        t.log.checkpoints.retain(|c| c.path != path);
        t.log.checkpoints.push(CheckpointInfo {
            iteration,
            path: path.clone(),
            rows,
            epoch,
            copied: false,
        });
        if !announced {
            self.emit_checkpoint(id, iteration, path);
        }
        self.journal(&Record::Checkpoint { trial: id.0, iteration, path: rel });
        self.flush_journal();
        self.evict(id);
    }

    /// `keep_checkpoints_num`: keeps the `n` best checkpoints by `checkpoint_score`, or
    /// the `n` most recent without one, and always the latest, which the trial continues
    /// from after a failure (so `n + 1` exist while the latest is not among the best).
    /// Deletes the others.
    pub fn evict(&mut self, id: TrialId) {
        let Some(keep) = self.s.keep_checkpoints_num else { return };
        let width = self.width;
        let t = &mut self.trials[id.index()];
        let n = t.log.checkpoints.len();
        if n <= keep {
            return;
        }
        let mut order: Vec<usize> = (0..n).collect();
        match self.s.checkpoint_score {
            Some(col) => {
                let score = |c: &CheckpointInfo| {
                    c.rows
                        .checked_sub(1)
                        .and_then(|r| t.log.history.get(r * width + col.index).copied())
                        .filter(|v| !v.is_nan())
                };
                // Best first; checkpoints without a score last; ties to the newer one.
                order.sort_by(|&a, &b| {
                    let (sa, sb) = (score(&t.log.checkpoints[a]), score(&t.log.checkpoints[b]));
                    match (sa, sb) {
                        (Some(x), Some(y)) if col.mode.better(x, y) => std::cmp::Ordering::Less,
                        (Some(x), Some(y)) if col.mode.better(y, x) => std::cmp::Ordering::Greater,
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        _ => b.cmp(&a),
                    }
                });
            }
            None => order.reverse(),
        }
        let mut kept = vec![false; n];
        for &k in order.iter().take(keep) {
            kept[k] = true;
        }
        kept[n - 1] = true;
        let mut gone = Vec::new();
        let mut k = 0;
        t.log.checkpoints.retain(|c| {
            let keep = kept[k];
            k += 1;
            if !keep {
                gone.push(c.path.clone());
            }
            keep
        });
        for path in gone {
            // The same directory may serve another entry of the lineage (a trial that
            // exploited itself); it stays then.
            if self.trials[id.index()].log.checkpoints.iter().any(|c| c.path == path) {
                continue;
            }
            let rel = path
                .strip_prefix(&self.s.experiment_dir)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A checkpoint that cannot be deleted only costs disk space.
            let _ = self.s.checkpoint_store.delete(&path);
            self.journal(&Record::CheckpointDeleted { trial: id.0, path: rel });
        }
    }

    /// A checkpoint of a running trial could not be written. A trial problem fails the
    /// trial (retried with `max_failures`); a storage problem (full, read-only, not
    /// permitted) stops the run like Ctrl-C, with this trial suspended, so that nothing is
    /// marked ERROR or TERMINATED for it and the experiment resumes once it is fixed.
    pub fn checkpoint_failed(&mut self, id: TrialId, e: SaveError) {
        let ending = match e {
            SaveError::Trial(message) => End::Error(message),
            SaveError::Storage { path, source } => {
                self.storage_refused(path, source);
                End::Suspended
            }
        };
        if let Some(live) = self.trials[id.index()].live.as_mut() {
            if !matches!(live.ending, Some(End::Error(_))) {
                live.ending = Some(ending);
            }
        }
    }

    /// The storage refused a write: the run stops, resumable.
    pub fn storage_refused(&mut self, path: std::path::PathBuf, source: std::io::Error) {
        self.fatal.get_or_insert(LogError { path, source });
        self.halt();
    }
}
