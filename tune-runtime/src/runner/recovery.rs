//! Fault tolerance of the driver: retrying failed trials from their latest checkpoint
//! (`max_failures`), resuming an interrupted experiment from its journal, and suspending
//! trials on Ctrl-C.
//!
//! The journal is the record. A resume replays it, cuts a torn last line, rolls every
//! unfinished trial back to its latest checkpoint that verifies (falling back to older
//! ones, then to the start), rewrites that trial's `result.json`/`progress.csv` from the
//! journal's rows so no line is lost or duplicated, and restores the searcher and the
//! scheduler from their saved state.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::{CheckpointInfo, TrialInfo};
use crate::journal::{JOURNAL_FILE, Record, read_records};
use crate::logger::{self, TrialLogger};
use crate::metrics::Metrics;
use crate::searcher::Suggestion;
use crate::space::Space;
use crate::trainable::Trainable;
use crate::trial::{TrialId, TrialStatus, row_len};
use crate::tuner::RunError;

use super::{C, Driver, Live, M, status_slot, unix_now};

/// What happens to trials that ended in ERROR when an experiment is resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Errored {
    /// They stay ERROR.
    #[default]
    Keep,
    /// They continue from their latest checkpoint.
    Resume,
    /// They start again from scratch.
    Restart,
}

/// The fault-tolerance options of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct FaultSettings {
    pub max_failures: u32,
    /// `Some` when the experiment is resumed from its journal (if it has one).
    pub resume: Option<Errored>,
    pub handle_sigint: bool,
}

/// One trial as the journal has it.
struct ReplayTrial {
    dir: Option<String>,
    config: serde_json::Value,
    status: TrialStatus,
    error: Option<String>,
    history: Vec<f64>,
    checkpoints: Vec<(u64, String)>,
    failures: Vec<String>,
    /// The iteration of a result after which the trial ended by itself.
    done_at: Option<u64>,
    /// Created after the last saved scheduler state.
    after_state: bool,
}

/// The experiment as its journal has it.
pub(crate) struct Replay {
    pub seed: u64,
    trials: Vec<ReplayTrial>,
    searcher: Option<serde_json::Value>,
    scheduler: Option<serde_json::Value>,
}

fn resume_err(path: &Path, what: impl std::fmt::Display) -> RunError {
    RunError::Resume(format!("`{}`: {what}", path.display()))
}

/// Reads the journal of `experiment_dir` for a resume; `None` when there is none (the
/// experiment starts fresh). Cuts a torn last line off the file, so that appends start on
/// a line of their own.
pub(crate) fn load<T: Trainable>(experiment_dir: &Path) -> Result<Option<Replay>, RunError> {
    let path = experiment_dir.join(JOURNAL_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let (records, valid) = read_records(&path).map_err(|e| RunError::Resume(e.to_string()))?;
    let mut file =
        OpenOptions::new().read(true).write(true).open(&path).map_err(|e| resume_err(&path, e))?;
    file.set_len(valid).map_err(|e| resume_err(&path, e))?;
    if valid > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8];
        file.seek(SeekFrom::Start(valid - 1)).map_err(|e| resume_err(&path, e))?;
        file.read_exact(&mut last).map_err(|e| resume_err(&path, e))?;
        if last[0] != b'\n' {
            file.seek(SeekFrom::End(0)).map_err(|e| resume_err(&path, e))?;
            file.write_all(b"\n").map_err(|e| resume_err(&path, e))?;
        }
    }
    file.sync_all().map_err(|e| resume_err(&path, e))?;
    let names = <M<T> as Metrics>::NAMES;
    let width = row_len::<M<T>>();
    let mut replay = Replay { seed: 0, trials: Vec::new(), searcher: None, scheduler: None };
    let mut seen_experiment = false;
    for record in records {
        let unknown = |t: u32| resume_err(&path, format_args!("a record names unknown trial {t}"));
        match record {
            Record::Experiment { trainable, metrics, seed, .. } => {
                if trainable != T::NAME
                    || metrics.iter().map(String::as_str).ne(names.iter().copied())
                {
                    return Err(resume_err(
                        &path,
                        format_args!(
                            "the experiment ran `{trainable}` with metrics [{}], not `{}` with \
                             [{}]; resume it with the same trainable, or choose another `.name(..)`",
                            metrics.join(", "),
                            T::NAME,
                            names.join(", ")
                        ),
                    ));
                }
                // A journal appended by several fresh runs: the last run is resumed.
                replay = Replay { seed, trials: Vec::new(), searcher: None, scheduler: None };
                seen_experiment = true;
            }
            Record::Trial { trial, dir, config, searcher, .. } => {
                if trial as usize != replay.trials.len() {
                    return Err(resume_err(&path, format_args!("trial {trial} is out of order")));
                }
                if let Some(state) = searcher {
                    replay.searcher = Some(state);
                }
                replay.trials.push(ReplayTrial {
                    dir,
                    config,
                    status: TrialStatus::Pending,
                    error: None,
                    history: Vec::new(),
                    checkpoints: Vec::new(),
                    failures: Vec::new(),
                    done_at: None,
                    after_state: true,
                });
            }
            Record::Status { trial, status, error } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.status = status;
                if error.is_some() {
                    t.error = error;
                }
            }
            Record::Result { trial, v, done } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                if v.len() == width {
                    if done {
                        t.done_at = Some(v[names.len()] as u64);
                    }
                    t.history.extend_from_slice(&v);
                }
            }
            Record::Checkpoint { trial, iteration, path: p } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.checkpoints.retain(|c| c.0 != iteration);
                t.checkpoints.push((iteration, p));
            }
            Record::CheckpointDeleted { trial, path: p } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.checkpoints.retain(|c| c.1 != p);
            }
            Record::Failure { trial, error, .. } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.failures.push(error);
            }
            Record::Exploit { trial, new_config, .. } => {
                // PBT gave the trial a new config; its later checkpoints hold the state it
                // copied from the source.
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.config = new_config;
            }
            Record::Rollback { trial, iteration } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                let keep = t
                    .history
                    .chunks_exact(width)
                    .take_while(|r| r[names.len()] as u64 <= iteration)
                    .count();
                t.history.truncate(keep * width);
                if t.done_at.is_some_and(|d| d > iteration) {
                    t.done_at = None;
                }
            }
            Record::State { searcher, scheduler } => {
                replay.searcher = Some(searcher);
                replay.scheduler = Some(scheduler);
                for t in &mut replay.trials {
                    t.after_state = false;
                }
            }
            Record::Resume { .. } | Record::End { .. } => {}
        }
    }
    Ok(seen_experiment.then_some(replay))
}

/// The directory `experiment_dir/rel` when `rel` is one plain name.
fn trial_dir(experiment_dir: &Path, rel: &str) -> Result<PathBuf, RunError> {
    if crate::manifest::is_plain_relative(rel) && !rel.contains('/') {
        Ok(experiment_dir.join(rel))
    } else {
        Err(RunError::Resume(format!(
            "the journal names the trial directory `{rel}`, which is not a directory name \
             inside the experiment directory"
        )))
    }
}

impl<T: Trainable> Driver<T> {
    /// Rebuilds the experiment from `replay`: finished trials as they were, unfinished
    /// ones rolled back to their latest good checkpoint and queued.
    pub(super) fn resume_from(&mut self, replay: Replay) -> Result<(), RunError> {
        let errored = self.s.faults.resume.unwrap_or_default();
        let scheduler_saved = replay.scheduler.as_ref().is_some_and(|s| !s.is_null());
        let created = replay.trials.len();
        for (index, rt) in replay.trials.into_iter().enumerate() {
            let id = TrialId(index as u32);
            let config = <C<T> as Space>::from_json_value(rt.config.clone()).map_err(|e| {
                RunError::Resume(format!(
                    "trial {id}: {e}; resume with the config type of the trainable that ran it"
                ))
            })?;
            let rel = match &rt.dir {
                Some(rel) => rel.clone(),
                None => logger::trial_dir_name(T::NAME, id, &rt.config),
            };
            let dir = trial_dir(&self.s.experiment_dir, &rel)?;
            let mut info =
                TrialInfo::new(id, self.s.file_logging.then(|| dir.clone()), config.clone());
            info.history = rt.history;
            info.failures = rt.failures;
            info.status = rt.status;
            info.error = rt.error;
            for (iteration, p) in &rt.checkpoints {
                let path = crate::analysis::inside(&self.s.experiment_dir, p)
                    .map_err(|e| RunError::Resume(e.to_string()))?;
                info.checkpoints.push(CheckpointInfo { iteration: *iteration, path });
            }
            info.checkpoints.sort_by_key(|c| c.iteration);
            self.counts[status_slot(info.status)] += 1;
            let finished = info.status.is_finished()
                && !(info.status == TrialStatus::Error && errored != Errored::Keep);
            self.trials.push(info);
            if finished {
                self.live.push(None);
                self.finished += 1;
                let t = &self.trials[index];
                if self.s.file_logging
                    && logger::count_lines(&dir.join("result.json")) != t.num_results()
                {
                    // The files lost lines the journal has (or the other way round).
                    let done = t.status == TrialStatus::Terminated;
                    let json = t.config.to_json_value();
                    if let Err(e) = TrialLogger::rewrite::<M<T>>(&dir, &json, &t.history, id, done)
                    {
                        self.fatal.get_or_insert(e);
                    }
                }
                continue;
            }
            let resources = self.s.resources.clone().unwrap_or_else(|| T::resources(&config));
            let restart = self.trials[index].status == TrialStatus::Error;
            let failures = if restart { 0 } else { self.trials[index].failures.len() as u32 };
            self.live.push(Some(Box::new(Live::new(
                resources,
                dir.clone(),
                rel,
                0,
                0.0,
                failures,
            ))));
            let from_scratch = restart && errored == Errored::Restart;
            self.rewind(id, if from_scratch { Some(0) } else { None });
            let at = self.live[index].as_ref().map_or(0, |l| l.iteration);
            if at > 0 && rt.done_at == Some(at) && !restart {
                // It had reached its end and was checkpointed there: it only missed its
                // final status record.
                self.live[index] = None;
                if self.s.file_logging {
                    let t = &self.trials[index];
                    let json = t.config.to_json_value();
                    if let Err(e) = TrialLogger::rewrite::<M<T>>(&dir, &json, &t.history, id, true)
                    {
                        self.fatal.get_or_insert(e);
                    }
                }
                self.set_status(id, TrialStatus::Terminated, None);
                self.finished += 1;
                continue;
            }
            if self.trials[index].status == TrialStatus::Paused {
                self.paused.push(id);
            } else {
                self.set_status(id, TrialStatus::Pending, None);
                self.pending.push(id);
            }
            if !scheduler_saved || rt.after_state {
                self.s.scheduler.on_trial_add(id, &self.trials[index].config);
            }
        }
        if let Some(state) = replay.scheduler.filter(|s| !s.is_null()) {
            self.s.scheduler.restore_state(state).map_err(|e| {
                RunError::Resume(format!("the scheduler cannot restore its saved state: {e}"))
            })?;
        }
        match replay.searcher.filter(|s| !s.is_null()) {
            Some(state) => self.s.searcher.restore_state(state).map_err(|e| {
                RunError::Resume(format!("the searcher cannot restore its saved state: {e}"))
            })?,
            // A searcher without saved state: replay its suggestions (deterministic
            // searchers then continue where they were).
            None => {
                for k in 0..created {
                    if !matches!(self.s.searcher.suggest(TrialId(k as u32)), Suggestion::Config(_))
                    {
                        break;
                    }
                }
            }
        }
        self.reporter.finished(self.finished);
        self.flush_journal();
        Ok(())
    }

    /// Rolls an unfinished trial back to its latest checkpoint that verifies (older ones
    /// when newer ones are missing or corrupt; the start when none is left, or when
    /// `below == Some(0)`), no newer than `below`. Its results after that iteration are
    /// dropped from the history, the journal and its files. Nothing is deleted from disk.
    pub(super) fn rewind(&mut self, id: TrialId, below: Option<u64>) {
        let i = id.index();
        let mut chosen = None;
        let candidates: Vec<PathBuf> = self.trials[i]
            .checkpoints
            .iter()
            .rev()
            .filter(|c| below.is_none_or(|b| c.iteration <= b))
            .map(|c| c.path.clone())
            .collect();
        for path in candidates {
            match crate::checkpoint::read_meta(&path) {
                Ok(meta) if meta.trainable == T::NAME => {
                    chosen = Some((path, meta.iteration, meta.time_total_s));
                    break;
                }
                Ok(meta) => self.warn(&format!(
                    "checkpoint `{}` was written by `{}`; trying an older one",
                    path.display(),
                    meta.trainable
                )),
                Err(e) => self.warn(&format!("{e}; trying an older checkpoint")),
            }
        }
        if chosen.is_none() && below != Some(0) {
            if let Some((dir, meta)) = &self.s.restore {
                chosen = Some((dir.clone(), meta.iteration, meta.time_total_s));
            }
        }
        let (path, iteration, time_total) = match chosen {
            Some((p, it, t)) => (Some(p), it, t),
            None => (None, 0, 0.0),
        };
        let t = &mut self.trials[i];
        t.rollback(iteration);
        t.checkpoints.retain(|c| c.iteration <= iteration);
        let kept: Vec<(u64, f64, PathBuf)> =
            t.checkpoints.iter().map(|c| (c.iteration, f64::NAN, c.path.clone())).collect();
        let rows = t.history.clone();
        let json = t.config.to_json_value();
        self.journal(&Record::Rollback { trial: id.0, iteration });
        let file_logging = self.s.file_logging;
        let Some(live) = self.live[i].as_mut() else { return };
        live.iteration = iteration;
        live.time_total = time_total;
        live.last = None;
        live.error = None;
        live.suspend = false;
        live.paused = None;
        live.checkpoints = kept;
        live.last_checkpoint = path.as_ref().map(|_| iteration);
        live.restore_from = path;
        if let Some(mut l) = live.logger.take() {
            let _ = l.flush();
        }
        if file_logging && (iteration > 0 || live.dir.join("result.json").exists()) {
            match TrialLogger::rewrite::<M<T>>(&live.dir, &json, &rows, id, false) {
                Ok(l) => live.logger = Some(l),
                Err(e) => {
                    self.fatal.get_or_insert(e);
                }
            }
        }
    }

    /// On an error of a started trial: when it has retries left, records the failure,
    /// rolls the trial back to its latest checkpoint and queues it again. Returns whether
    /// it did.
    pub(super) fn retry(&mut self, id: TrialId, message: &str) -> bool {
        let i = id.index();
        if self.trials[i].status != TrialStatus::Running || (self.stopping && !self.interrupted) {
            return false;
        }
        let Some(live) = self.live[i].as_mut() else { return false };
        if live.failures >= self.s.faults.max_failures {
            return false;
        }
        live.failures += 1;
        let attempt = live.failures;
        // A checkpoint that failed to restore is not tried again.
        let below = match &live.restore_from {
            Some(_) if message.starts_with("restoring `") => {
                Some(live.last_checkpoint.unwrap_or(0).saturating_sub(1))
            }
            _ => None,
        };
        let dir = live.dir.clone();
        self.pool_release(id);
        self.trials[i].failures.push(message.to_string());
        self.journal(&Record::Failure { trial: id.0, attempt, error: message.to_string() });
        if self.s.file_logging {
            if let Err(e) = logger::write_errors(&dir, &self.trials[i].failures, None, None) {
                self.fatal.get_or_insert(e);
            }
        }
        self.warn(&format!(
            "trial {}_{id} failed (attempt {attempt} of {}): {message}; retrying from its \
             latest checkpoint",
            T::NAME,
            self.s.faults.max_failures + 1
        ));
        self.rewind(id, below);
        self.set_status(id, TrialStatus::Pending, None);
        self.pending.push(id);
        self.flush_journal();
        true
    }

    /// Ctrl-C: no new trials; running trials stop after their current step, paused ones
    /// at once, each with a checkpoint, and are left resumable.
    pub(super) fn interrupt(&mut self) {
        self.interrupted = true;
        self.stopping = true;
        for id in std::mem::take(&mut self.paused) {
            let inst = self.live[id.index()].as_mut().and_then(|l| {
                l.suspend = true;
                l.paused.take()
            });
            if let Some(inst) = inst {
                self.finish(id, inst);
            }
        }
    }

    /// Ends the run's part of a trial stopped by Ctrl-C: PENDING (PAUSED when the
    /// scheduler had paused it), its files flushed, for a resume to continue it.
    pub(super) fn suspend(&mut self, id: TrialId) {
        let i = id.index();
        self.pool_release(id);
        self.pending.retain(|p| *p != id);
        self.paused.retain(|p| *p != id);
        if let Some(mut live) = self.live[i].take() {
            if let Some(mut l) = live.logger.take() {
                if let Err(e) = l.flush() {
                    self.fatal.get_or_insert(e);
                }
            }
        }
        let status = match self.trials[i].status {
            TrialStatus::Paused => TrialStatus::Paused,
            _ => TrialStatus::Pending,
        };
        self.set_status(id, status, None);
        self.flush_journal();
    }

    /// Saves the searcher's and the scheduler's state in the journal when it changed.
    pub(super) fn save_state(&mut self) {
        if self.journal.is_none() {
            return;
        }
        let state = (self.s.searcher.save_state(), self.s.scheduler.save_state());
        if self.saved_state.as_ref() != Some(&state) {
            self.journal(&Record::State { searcher: state.0.clone(), scheduler: state.1.clone() });
            self.saved_state = Some(state);
        }
    }

    /// Records the resume in the journal (instead of a new `experiment` record).
    pub(super) fn resume_record() -> Record {
        Record::Resume { started: unix_now() }
    }

    fn warn(&mut self, message: &str) {
        if self.s.verbosity >= 1 {
            eprintln!("tune: {message}");
        }
    }
}
