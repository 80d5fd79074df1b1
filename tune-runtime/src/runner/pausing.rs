//! What the driver does for schedulers beyond continue/stop: pausing to memory or disk,
//! resuming from a pause checkpoint, ending trials a scheduler gives up on, and PBT's
//! exploits (copy a checkpoint, restore it under a new config).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::worker::{CheckpointRequest, Task};
use super::{Driver, Live, splitmix64};
use crate::checkpoint::{SaveError, read_meta};
use crate::journal::Record;
use crate::logger::LogError;
use crate::scheduler::{Exploit, PBT_LOG_FILE, Pausing, PbtLogEntry};
use crate::space::Space;
use crate::trainable::{Trainable, TrialContext};
use crate::trial::{Mode, TrialId, TrialStatus};

impl<T: Trainable> Driver<T> {
    /// A score that keeps a checkpoint out of `keep_checkpoints_num`'s eviction: the trial
    /// needs it to resume (a pause checkpoint, an exploited copy).
    fn protected_score(&self) -> f64 {
        match self.s.checkpoint_score {
            Some((_, Mode::Min)) => f64::NEG_INFINITY,
            _ => f64::INFINITY,
        }
    }

    /// The context of a trial granted `gpu_ids`.
    pub(super) fn context(&self, id: TrialId, live: &Live<T>, gpu_ids: Vec<usize>) -> TrialContext {
        TrialContext {
            trial_id: id.to_string(),
            trial_dir: self.s.file_logging.then(|| live.dir.clone()),
            gpu_ids,
            resources: live.resources.clone(),
            seed: splitmix64(self.s.seed ^ splitmix64(u64::from(id.0))),
        }
    }

    /// Ends the trials the scheduler gave up on (paused or pending ones). Returns whether
    /// any ended.
    pub(super) fn apply_scheduler_stops(&mut self) -> bool {
        let mut any = false;
        let mut stops = Vec::new();
        loop {
            self.s.scheduler.take_stops(&mut stops);
            if stops.is_empty() {
                return any;
            }
            for id in stops.drain(..) {
                let i = id.index();
                if self.live.get(i).is_none_or(Option::is_none) {
                    continue;
                }
                let waiting = self.pending.contains(&id) || self.paused.contains(&id);
                if !waiting {
                    if self.trials[i].status == TrialStatus::Paused {
                        // Its pause checkpoint is being written: end it once written.
                        if let Some(l) = self.live[i].as_mut() {
                            l.stop_when_paused = true;
                        }
                    }
                    // A running trial is ended by its own next decision.
                    continue;
                }
                any = true;
                self.pending.retain(|p| *p != id);
                self.paused.retain(|p| *p != id);
                match self.live[i].as_mut().and_then(|l| l.paused.take()) {
                    Some(inst) => self.finish(id, inst),
                    None => self.end_trial(id, None),
                }
            }
        }
    }

    fn in_memory_paused(&self) -> usize {
        self.paused
            .iter()
            .filter(|p| self.live[p.index()].as_ref().is_some_and(|l| l.paused.is_some()))
            .count()
    }

    /// `Decision::Pause`: release the resources; keep the instance in memory or save it
    /// and drop it, as [`Pausing`] says.
    pub(super) fn pause(&mut self, id: TrialId, inst: Box<T>) {
        let to_disk = match self.s.pausing {
            Pausing::Memory => false,
            Pausing::Disk => true,
            Pausing::Auto { max_in_memory } => self.in_memory_paused() >= max_in_memory,
        };
        self.pool_release(id);
        self.set_status(id, TrialStatus::Paused, None);
        let i = id.index();
        let Some(live) = self.live[i].as_mut() else { return };
        if !to_disk {
            live.paused = Some(inst);
            self.paused.push(id);
            return;
        }
        let checkpoint =
            (live.last_checkpoint != Some(live.iteration)).then(|| CheckpointRequest {
                dir: live.dir.join(format!("checkpoint_{}", live.iteration)),
                iteration: live.iteration,
                time_total_s: live.time_total,
            });
        // Joins `paused` once the checkpoint is written (see `on_suspended`).
        self.send(Task::Suspend { trial: id.0, inst, checkpoint });
    }

    pub(super) fn on_suspended(&mut self, id: TrialId, checkpoint: Option<Result<(), SaveError>>) {
        let i = id.index();
        let Some(iteration) = self.live[i].as_ref().map(|l| l.iteration) else { return };
        match checkpoint {
            Some(Err(SaveError::Trial(e))) => {
                return self.end_trial(id, Some(format!("pausing to disk failed: {e}")));
            }
            Some(Err(SaveError::Storage { path, source })) => {
                // The run stops; the instance is gone, so a resume continues the trial
                // from its latest checkpoint written before.
                self.fatal.get_or_insert(LogError { path, source });
                self.halt();
                if let Some(live) = self.live[i].as_mut() {
                    live.suspend = true;
                }
                return self.end_trial(id, None);
            }
            Some(Ok(())) => self.register_checkpoint(id, iteration, self.protected_score()),
            None => {}
        }
        if let Some(live) = self.live[i].as_mut() {
            live.resume_from = Some(live.dir.join(format!("checkpoint_{iteration}")));
        }
        if self.stopping || self.live[i].as_ref().is_some_and(|l| l.stop_when_paused) {
            self.end_trial(id, None);
        } else {
            self.paused.push(id);
        }
    }

    /// The task resuming a trial paused to disk: a new instance restored from the pause
    /// checkpoint.
    pub(super) fn resume_task(
        &mut self,
        id: TrialId,
        live: &mut Live<T>,
        gpu_ids: Vec<usize>,
        checkpoint: Option<CheckpointRequest>,
    ) -> Task<T> {
        let ctx = self.context(id, live, gpu_ids);
        Task::Start {
            trial: id.0,
            config: self.trials[id.index()].config.clone(),
            ctx,
            restore: live.resume_from.take(),
            reuse: if self.s.reuse_actors { self.idle.pop() } else { None },
            checkpoint,
        }
    }

    fn keep_stepping(&mut self, id: TrialId, inst: Box<T>) {
        let checkpoint =
            self.live[id.index()].as_ref().and_then(|l| self.checkpoint_request(id, l));
        self.send(Task::Step { trial: id.0, inst, checkpoint });
    }

    /// `Decision::Exploit`: copy the source's latest checkpoint into this trial, restore it
    /// under the new config (reusing the instance through `reset_config` with
    /// `reuse_actors`), log it, and go on stepping.
    pub(super) fn exploit(&mut self, id: TrialId, inst: Box<T>) {
        let Some(e) = self.s.scheduler.take_exploit(id) else {
            return self.keep_stepping(id, inst);
        };
        match self.take_over(id, &e) {
            Ok(dir) => {
                let i = id.index();
                let Some(live) = self.live[i].take() else { return };
                let start = live.grant.as_ref().map(|g| {
                    let ctx = self.context(id, &live, g.gpu_ids.clone());
                    (ctx, self.checkpoint_request(id, &live))
                });
                self.live[i] = Some(live);
                let Some((ctx, checkpoint)) = start else { return };
                let reuse = if self.s.reuse_actors {
                    Some(inst)
                } else {
                    self.send(Task::Cleanup { inst });
                    None
                };
                self.send(Task::Start {
                    trial: id.0,
                    config: e.config,
                    ctx,
                    restore: Some(dir),
                    reuse,
                    checkpoint,
                });
            }
            Err(why) => {
                self.s.scheduler.on_exploit_failed(id, e.source, &why);
                self.keep_stepping(id, inst);
            }
        }
    }

    /// Copies the source's latest checkpoint, points the trial at it and logs the exploit.
    /// Returns the checkpoint to restore.
    fn take_over(&mut self, id: TrialId, e: &Exploit<T::Config>) -> Result<PathBuf, String> {
        let (i, s) = (id.index(), e.source.index());
        let source = self.trials.get(s).ok_or_else(|| format!("no trial {}", e.source))?;
        let latest = source
            .checkpoints
            .iter()
            .max_by_key(|c| c.iteration)
            .ok_or_else(|| format!("trial {} has no checkpoint yet", e.source))?;
        let (src_iteration, src_dir) = (latest.iteration, latest.path.clone());
        let dir = if s == i {
            src_dir
        } else {
            let live = self.live[i].as_ref().ok_or("the trial has ended")?;
            let dir = live.dir.join(format!("checkpoint_{src_iteration}"));
            let store = &self.s.checkpoint_store;
            let copied = store
                .begin(&dir)
                .and_then(|scratch| copy_dir(&src_dir, &scratch).map(|()| scratch))
                .and_then(|scratch| store.commit(&scratch, &dir));
            if let Err(source) = copied {
                let why = format!(
                    "copying `{}` to `{}` failed: {source}",
                    src_dir.display(),
                    dir.display()
                );
                if crate::checkpoint::is_storage(&source) {
                    // As for any checkpoint the storage refuses: the run stops, resumable.
                    self.fatal.get_or_insert(LogError { path: dir, source });
                    self.halt();
                }
                return Err(why);
            }
            self.register_checkpoint(id, src_iteration, self.protected_score());
            dir
        };
        let meta = read_meta(&dir)?;
        let entry = PbtLogEntry {
            target: id.0,
            source: e.source.0,
            target_iteration: self.live[i].as_ref().map_or(0, |l| l.iteration),
            source_iteration: meta.iteration,
            old_config: self.trials[i].config.to_json_value(),
            new_config: e.config.to_json_value(),
            source_config: self.trials[s].config.to_json_value(),
        };
        if let Some(live) = self.live[i].as_mut() {
            live.iteration = meta.iteration;
            live.time_total = meta.time_total_s;
            live.last_checkpoint = Some(meta.iteration);
        }
        self.trials[i].config = e.config.clone();
        self.journal(&Record::Exploit {
            trial: entry.target,
            source: entry.source,
            target_iteration: entry.target_iteration,
            source_iteration: entry.source_iteration,
            old_config: entry.old_config.clone(),
            new_config: entry.new_config.clone(),
            source_config: entry.source_config.clone(),
            checkpoint: dir
                .strip_prefix(&self.s.experiment_dir)
                .ok()
                .map(|p| p.to_string_lossy().into_owned()),
        });
        if self.s.file_logging {
            let path = self.s.experiment_dir.join(PBT_LOG_FILE);
            if let Err(source) = append_line(&path, &entry) {
                self.fatal.get_or_insert(LogError { path, source });
            }
        }
        Ok(dir)
    }
}

fn append_line(path: &Path, entry: &PbtLogEntry) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(&line)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
