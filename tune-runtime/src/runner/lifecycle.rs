//! A trial's life: created from a suggestion, admitted when its resources are free,
//! started on a worker, stepped, and ended (TERMINATED, ERROR, or suspended for a resume).

use std::time::Instant;

use super::driver::{Driver, status_slot};
use super::events::Start;
use super::model::{Instance, Suggested};
use super::splitmix64;
use super::state::{End, Live, Phase, Trial};
use super::worker::{Ending, Job, Task};
use crate::checkpoint::SaveError;
use crate::journal::{FlushError, Record, TrialLog};
use crate::logger;
use crate::resources::Grant;
use crate::scheduler::Decision;
use crate::trainable::TrialContext;
use crate::trial::{TrialId, TrialStatus};

impl Driver {
    /// Ends the trials the scheduler gave up on, then creates and starts trials while
    /// resources, concurrency and the searcher allow. Returns whether anything happened.
    pub fn fill(&mut self) -> bool {
        if self.fatal.is_some() {
            self.halt();
        }
        let mut started = self.apply_scheduler_stops();
        loop {
            if self.stopping || self.running >= self.s.max_concurrent {
                return started;
            }
            if self.pending.is_empty() && !self.searcher_done && !self.searcher_waiting {
                if self.is_shared() {
                    // Catch up with the other processes first, so that the new trial's id
                    // is free and the searcher knows their trials.
                    if let Err(e) = self.sync() {
                        self.shared_failed(e);
                        return started;
                    }
                    if self.model.total_trials().is_some_and(|n| self.trials.len() >= n) {
                        self.searcher_done = true;
                        self.model.on_no_more_trials();
                        continue;
                    }
                }
                let id = TrialId(self.trials.len() as u32);
                match self.model.suggest(id) {
                    Suggested::Config => {
                        // `false`: another process created this trial first; the next turn
                        // catches up with it and suggests again.
                        started |= self.create(id);
                        continue;
                    }
                    Suggested::NotNow => self.searcher_waiting = true,
                    Suggested::Finished => {
                        self.searcher_done = true;
                        self.model.on_no_more_trials();
                        started |= self.apply_scheduler_stops();
                    }
                }
            }
            if self.pending.is_empty() && self.paused.is_empty() {
                return started;
            }
            let Some(id) = self.model.choose_trial_to_run(&self.pending, &self.paused) else {
                return started;
            };
            let Some(live) = self.trials.get(id.index()).and_then(|t| t.live.as_ref()) else {
                return started;
            };
            let Some(grant) = self.pool.try_acquire(&live.resources) else { return started };
            self.pending.retain(|p| *p != id);
            self.paused.retain(|p| *p != id);
            self.launch(id, grant);
            started = true;
        }
    }

    /// A new trial with the config the searcher just suggested. Returns false when another
    /// process of a shared experiment created that trial first.
    fn create(&mut self, id: TrialId) -> bool {
        let overridden = match &self.s.overrides {
            Some(over) => self.model.override_config(id, over),
            None => Ok(()),
        };
        if !self.push_trial(id) {
            return false;
        }
        if let Err(e) = overridden {
            self.end_trial(id, End::Error(format!("config overrides: {e}")));
            return true;
        }
        self.model.on_trial_add(id);
        let why =
            self.trials[id.index()].live.as_ref().and_then(|l| self.pool.never_fits(&l.resources));
        match why {
            Some(why) => self.end_trial(id, End::Error(why)),
            None => self.pending.push(id),
        }
        true
    }

    /// Records the new trial (in a shared experiment, only if no other process created
    /// trial `id` first: returns whether it did).
    fn push_trial(&mut self, id: TrialId) -> bool {
        let json = self.model.config_json(id);
        let rel_dir = logger::trial_dir_name(self.model.trainable(), id, &json);
        let dir = self.s.experiment_dir.join(&rel_dir);
        let record = Record::Trial {
            trial: id.0,
            id: id.to_string(),
            dir: Some(rel_dir.clone()),
            config: json,
            searcher: None,
        };
        if let Some(j) = &mut self.journal {
            match j.create(&record, id.0) {
                Ok(true) => {}
                Ok(false) => return false,
                Err(FlushError::LeaseExpired) => {
                    self.fenced();
                    return false;
                }
                Err(e) => {
                    let path = self.s.experiment_dir.join(crate::journal::JOURNAL_FILE);
                    self.fatal.get_or_insert(crate::logger::LogError { path, source: e.into_io() });
                    self.journal = None;
                }
            }
        }
        let mut log = TrialLog::empty(id.0, self.width);
        log.dir = self.s.file_logging.then(|| dir.clone());
        self.counts[status_slot(TrialStatus::Pending)] += 1;
        let mut live =
            Live::new(self.model.resources(id), dir, rel_dir, Phase::Pending { from: None });
        if let Some((_, meta)) = &self.s.restore {
            live.iteration = meta.iteration;
            live.time_total = meta.time_total_s;
        }
        self.trials.push(Trial {
            log,
            live: Some(Box::new(live)),
            counted: Some(TrialStatus::Pending),
        });
        true
    }

    pub fn context(&self, id: TrialId, live: &Live, gpu_ids: Vec<usize>) -> TrialContext {
        TrialContext {
            trial_id: id.to_string(),
            trial_dir: self.s.file_logging.then(|| live.dir.clone()),
            gpu_ids,
            resources: live.resources.clone(),
            seed: splitmix64(self.s.seed ^ splitmix64(u64::from(id.0))),
            data: self.s.data.clone(),
        }
    }

    /// Starts (or resumes) an admitted trial on a worker.
    fn launch(&mut self, id: TrialId, grant: Grant) {
        let i = id.index();
        let Some(mut live) = self.trials[i].live.take() else { return };
        let gpu_ids = grant.gpu_ids.clone();
        live.grant = Some(grant);
        self.running += 1;
        let phase = std::mem::replace(&mut live.phase, Phase::Busy);
        let (iteration, time_total_s) = (live.iteration, live.time_total);
        let start = match &phase {
            Phase::PausedInMemory(_) => Start::Unpaused { iteration, time_total_s },
            Phase::PausedOnDisk { from } | Phase::Pending { from: Some(from) } => {
                Start::Restored { from: from.clone(), iteration, time_total_s }
            }
            _ => match &self.s.restore {
                Some((dir, _)) => Start::Restored { from: dir.clone(), iteration, time_total_s },
                None => Start::First,
            },
        };
        let task = match phase {
            Phase::PausedInMemory(inst) => {
                let work = self.work(id, &mut live);
                live.ticket += 1;
                Some(Task::Run { trial: id.0, ticket: live.ticket, inst, work })
            }
            Phase::PausedOnDisk { from } => {
                Some(self.start_task(id, &mut live, gpu_ids, Some(from)))
            }
            Phase::Pending { from } => {
                let from = from.or_else(|| self.s.restore.as_ref().map(|(d, _)| d.clone()));
                Some(self.start_task(id, &mut live, gpu_ids, from))
            }
            other => {
                // Only pending and paused trials are admitted.
                live.phase = other;
                None
            }
        };
        self.trials[i].live = Some(live);
        match task {
            Some(task) => {
                self.emit_start(id, start);
                self.send(task);
                self.set_status(id, TrialStatus::Running, None);
            }
            None => self.end_trial(
                id,
                End::Error("internal: admitted a trial that was not waiting".into()),
            ),
        }
    }

    fn start_task(
        &mut self,
        id: TrialId,
        live: &mut Live,
        gpu_ids: Vec<usize>,
        restore: Option<std::path::PathBuf>,
    ) -> Task {
        let ctx = self.context(id, live, gpu_ids);
        let work = self.work(id, live);
        live.ticket += 1;
        Task::Start {
            trial: id.0,
            ticket: live.ticket,
            config: self.model.start_config(id),
            ctx,
            restore,
            reuse: if self.s.reuse_actors { self.idle.pop() } else { None },
            work,
        }
    }

    pub fn send(&mut self, task: Task) {
        // A trial's task is timed from here (`Tuner::step_timeout`) and runs within its CPU
        // budget; cleanups of instances no trial holds are counted apart, for `shutdown`.
        let mut threads = None;
        match &task {
            Task::Start { trial, .. }
            | Task::Run { trial, .. }
            | Task::Finish { trial, .. }
            | Task::Suspend { trial, .. } => {
                if let Some(live) = self.trials[*trial as usize].live.as_mut() {
                    live.sent = Some(Instant::now());
                    threads = Some(super::threads::threads_for(&live.resources));
                }
            }
            Task::Cleanup { .. } => {
                self.cleanups += 1;
                threads = Some(1);
            }
        }
        let threads = threads.filter(|_| self.s.cpu_budgets);
        self.in_flight += 1;
        if self.in_flight > self.workers.threads() {
            // Every task in flight gets a thread: fractional CPUs admit more trials than
            // there are cores, and each must make progress. Abandoned tasks (a step that
            // never returned) are in flight and hold their thread.
            let _ = self.workers.grow(self.in_flight);
        }
        if self.workers.tasks.send(Job { task, threads }).is_err() {
            // Workers only exit when the queue closes, which happens after the loop.
            self.in_flight -= 1;
        }
    }

    pub fn send_cleanup(&mut self, inst: Box<dyn Instance>) {
        self.send(Task::Cleanup { inst });
    }

    /// The next decision on a trial that has its instance back.
    pub fn dispatch(&mut self, id: TrialId, inst: Box<dyn Instance>, decision: Decision) {
        let i = id.index();
        match decision {
            Decision::Continue => {
                let Some(mut live) = self.trials[i].live.take() else { return };
                let work = self.work(id, &mut live);
                live.ticket += 1;
                live.phase = Phase::Busy;
                let task = Task::Run { trial: id.0, ticket: live.ticket, inst, work };
                self.trials[i].live = Some(live);
                self.send(task);
            }
            Decision::Pause => self.pause(id, inst),
            Decision::Stop => self.finish(id, inst, End::Terminated),
            Decision::Exploit => self.exploit(id, inst),
        }
    }

    /// Ends a trial that has its instance: checkpoint at end (or to suspend), then cleanup
    /// or keep it for reuse.
    pub fn finish(&mut self, id: TrialId, inst: Box<dyn Instance>, end: End) {
        let i = id.index();
        let Some(mut live) = self.trials[i].live.take() else { return };
        let end = live.ending.take().unwrap_or(end);
        let checkpoint = (matches!(end, End::Terminated) && self.s.checkpoint_at_end
            || matches!(end, End::Suspended))
        .then(|| self.end_checkpoint(id, &live))
        .flatten();
        let more = !self.searcher_done || !self.pending.is_empty();
        let keep = self.s.reuse_actors && !matches!(end, End::Error(_)) && more && !self.stopping;
        live.ticket += 1;
        live.phase = Phase::Finishing(end);
        let task = Task::Finish {
            trial: id.0,
            ticket: live.ticket,
            inst,
            ending: Ending { checkpoint, keep },
        };
        self.trials[i].live = Some(live);
        self.send(task);
    }

    /// A `Finish` task returned.
    pub fn on_finished(
        &mut self,
        id: TrialId,
        inst: Option<Box<dyn Instance>>,
        checkpoint: Option<Result<(), SaveError>>,
    ) {
        let i = id.index();
        let end = match self.trials[i]
            .live
            .as_mut()
            .map(|l| std::mem::replace(&mut l.phase, Phase::Busy))
        {
            Some(Phase::Finishing(end)) => end,
            _ => End::Terminated,
        };
        let end = self.ended_checkpoint(id, checkpoint, end);
        if let Some(inst) = inst {
            self.idle.push(inst);
        }
        self.end_trial(id, end);
    }

    /// Registers the checkpoint a trial wrote as it ended; a failure to write it changes
    /// how the trial ends.
    pub fn ended_checkpoint(
        &mut self,
        id: TrialId,
        checkpoint: Option<Result<(), SaveError>>,
        end: End,
    ) -> End {
        match checkpoint {
            Some(Ok(())) => {
                let iteration = self.trials[id.index()].live.as_ref().map_or(0, |l| l.iteration);
                self.register_checkpoint(id, iteration, false);
                end
            }
            Some(Err(SaveError::Trial(e))) if !matches!(end, End::Error(_)) => End::Error(e),
            Some(Err(SaveError::Storage { path, source })) => {
                self.storage_refused(path, source);
                match end {
                    End::Error(e) => End::Error(e),
                    _ => End::Suspended,
                }
            }
            _ => end,
        }
    }

    /// Ends a trial: TERMINATED, ERROR (or retried), or suspended for a resume; releases
    /// what it holds and tells the scheduler and the searcher.
    pub fn end_trial(&mut self, id: TrialId, end: End) {
        let i = id.index();
        let end = match end {
            End::Error(e) if self.retry(id, &e) => return,
            end => end,
        };
        if end == End::Suspended {
            return self.suspend(id);
        }
        self.pool_release(id);
        self.pending.retain(|p| *p != id);
        self.paused.retain(|p| *p != id);
        let Some(live) = self.trials[i].live.take() else { return };
        let error = match end {
            End::Error(e) => Some(e),
            _ => None,
        };
        if let (Some(msg), true) = (&error, self.s.file_logging) {
            // A trial that never started has no params.json yet: write it beside the error.
            let params = (self.trials[i].log.status == TrialStatus::Pending)
                .then(|| self.model.config_json(id));
            let failures = &self.trials[i].log.failures;
            if let Err(e) = logger::write_errors(&live.dir, failures, Some(msg), params.as_ref()) {
                self.fatal.get_or_insert(e);
            }
        }
        let failed = error.is_some();
        let status = if failed { TrialStatus::Error } else { TrialStatus::Terminated };
        self.emit_end(id, error.as_deref());
        self.set_status(id, status, error);
        self.flush_journal();
        self.model.on_trial_complete(id, failed);
        self.searcher_waiting = false;
        self.finished += 1;
        self.reporter.finished(self.finished);
        self.save_state(false);
    }

    pub fn pool_release(&mut self, id: TrialId) {
        if let Some(live) = self.trials[id.index()].live.as_mut() {
            if let Some(grant) = live.grant.take() {
                self.pool.release(&live.resources, &grant);
                self.running -= 1;
            }
        }
    }

    /// No new trials; running ones stop after their current step.
    pub fn stop_all(&mut self) {
        self.stopping = true;
        for id in std::mem::take(&mut self.pending) {
            self.end_trial(id, End::Terminated);
        }
        for id in std::mem::take(&mut self.paused) {
            self.end_waiting(id, End::Terminated);
        }
    }

    /// Ends a trial that waits (pending or paused): a paused one with its instance goes
    /// through `finish` (checkpoint at end, cleanup).
    pub fn end_waiting(&mut self, id: TrialId, end: End) {
        let live = self.trials[id.index()].live.as_mut();
        let inst = live.and_then(|l| match std::mem::replace(&mut l.phase, Phase::Busy) {
            Phase::PausedInMemory(inst) => Some(inst),
            other => {
                l.phase = other;
                None
            }
        });
        match inst {
            Some(inst) => self.finish(id, inst, end),
            None => self.end_trial(id, end),
        }
    }
}
