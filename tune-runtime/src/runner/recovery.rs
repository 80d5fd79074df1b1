//! Fault tolerance of the driver: retrying failed trials from their latest checkpoint
//! (`max_failures`), resuming an interrupted experiment from its journal, and suspending
//! trials on Ctrl-C.
//!
//! The journal is the record. A resume replays it, cuts a torn last line, rolls every
//! unfinished trial back to its latest checkpoint that verifies (falling back to older
//! ones, then to the start), rewrites that trial's `result.json`/`progress.csv` from the
//! journal's rows so no line is lost or duplicated, restores the searcher and the
//! scheduler from their saved state, and gives them back what the journal records after
//! it (trials created, results, trial ends), so that they decide as in an uninterrupted
//! run.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::analysis::{CheckpointInfo, TrialInfo};
use crate::journal::{JOURNAL_FILE, Record, read_records};
use crate::logger::{self, TrialLogger};
use crate::metrics::Metrics;
use crate::scheduler::Decision;
use crate::space::Space;
use crate::trainable::Trainable;
use crate::trial::{TrialId, TrialResult, TrialStatus, row_len};
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
    /// For each row of `history`, the absolute index of its [`Event::Result`].
    row_events: Vec<usize>,
    /// The row of `history` the driver held as the trial's last result (`Live::last`,
    /// which a retry clears), and whether the trial ended after it.
    last: Option<(usize, bool)>,
    /// The highest iteration of a result the last saved scheduler state holds.
    sched_seen: u64,
    /// The highest iteration of a result journaled since the scheduler's previous state.
    unsaved: u64,
    /// PBT exploited the trial (its iterations need not grow one by one).
    exploited: bool,
}

/// What the searcher and the scheduler were told, in journal order: what a resume gives
/// back to them after their saved state (see `Driver::replay`).
#[derive(Debug, Clone, PartialEq)]
enum Event {
    /// A trial was created with this config (`on_trial_add`; `suggest` for a searcher
    /// without saved state).
    Added { trial: u32, config: serde_json::Value },
    /// A result: `pos` is its row in the trial's history, `done` whether the trial ended
    /// after it. `retried` holds its values once a retry rolled it back: the searcher and
    /// the scheduler saw it, and the history no longer holds it.
    Result { trial: u32, pos: usize, done: bool, retried: Option<Vec<f64>> },
    /// The exploit the scheduler asked for after the trial's previous result was carried
    /// out (population based training).
    Exploited { trial: u32 },
    /// The trial ended (TERMINATED, or ERROR when `error`); `last` is its last result, as
    /// the driver held it, and whether the trial ended after that result.
    End { trial: u32, error: bool, last: Option<(Vec<f64>, bool)> },
    /// A result a later resume rolled back: the trial produced it again after the resume.
    Dropped,
}

/// The events of a journal, without those both the searcher and the scheduler saved a
/// state after (only the tail after the older of the two cuts is kept).
#[derive(Debug, Default)]
struct Events {
    list: Vec<Event>,
    /// The absolute index (counted from the `experiment` record's first event) of `list[0]`.
    base: usize,
    /// The first event after the last saved scheduler state (0: none was saved).
    sched_from: usize,
    /// The first event after the last saved searcher state (0: none was saved).
    search_from: usize,
}

impl Events {
    /// Appends `event`; returns its absolute index.
    fn push(&mut self, event: Event) -> usize {
        self.list.push(event);
        self.base + self.list.len() - 1
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Event> {
        index.checked_sub(self.base).and_then(|i| self.list.get_mut(i))
    }

    /// The scheduler saved its state after every event so far.
    fn cut_scheduler(&mut self) {
        self.sched_from = self.base + self.list.len();
        self.trim();
    }

    /// The searcher saved its state after every event so far.
    fn cut_searcher(&mut self) {
        self.search_from = self.base + self.list.len();
        self.trim();
    }

    /// Drops the events both saved states include.
    fn trim(&mut self) {
        let from = self.sched_from.min(self.search_from);
        if from > self.base {
            self.list.drain(..from - self.base);
            self.base = from;
        }
    }
}

/// The experiment as its journal has it.
pub(crate) struct Replay {
    pub seed: u64,
    trials: Vec<ReplayTrial>,
    /// The last non-null saved searcher state.
    searcher: Option<serde_json::Value>,
    /// The last non-null saved scheduler state.
    scheduler: Option<serde_json::Value>,
    events: Events,
}

impl Replay {
    fn new(seed: u64) -> Self {
        Replay {
            seed,
            trials: Vec::new(),
            searcher: None,
            scheduler: None,
            events: Events::default(),
        }
    }
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
    let mut replay = Replay::new(0);
    let mut seen_experiment = false;
    // The trial of the record just read when it was a `Failure`.
    let mut failed: Option<u32> = None;
    // Trials with results journaled since the scheduler's last saved state.
    let mut unsaved: Vec<u32> = Vec::new();
    for record in records {
        let unknown = |t: u32| resume_err(&path, format_args!("a record names unknown trial {t}"));
        let after_failure = failed.take();
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
                replay = Replay::new(seed);
                unsaved.clear();
                seen_experiment = true;
            }
            Record::Trial { trial, dir, config, searcher, .. } => {
                if trial as usize != replay.trials.len() {
                    return Err(resume_err(&path, format_args!("trial {trial} is out of order")));
                }
                replay.events.push(Event::Added { trial, config: config.clone() });
                if let Some(state) = searcher.filter(|s| !s.is_null()) {
                    // Saved right after the searcher suggested this trial.
                    replay.searcher = Some(state);
                    replay.events.cut_searcher();
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
                    row_events: Vec::new(),
                    last: None,
                    sched_seen: 0,
                    unsaved: 0,
                    exploited: false,
                });
            }
            Record::Status { trial, status, error } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.status = status;
                if error.is_some() {
                    t.error = error;
                }
                if status.is_finished() {
                    let last = t.last.and_then(|(pos, done)| {
                        let row = t.history.get(pos * width..(pos + 1) * width)?;
                        Some((row.to_vec(), done))
                    });
                    let error = status == TrialStatus::Error;
                    replay.events.push(Event::End { trial, error, last });
                }
            }
            Record::Result { trial, v, done } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                if v.len() == width {
                    if done {
                        t.done_at = Some(v[names.len()] as u64);
                    }
                    let pos = t.row_events.len();
                    if t.unsaved == 0 {
                        unsaved.push(trial);
                    }
                    t.unsaved = t.unsaved.max(v[names.len()] as u64);
                    t.history.extend_from_slice(&v);
                    t.last = Some((pos, done));
                    let index =
                        replay.events.push(Event::Result { trial, pos, done, retried: None });
                    t.row_events.push(index);
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
                failed = Some(trial);
            }
            Record::Exploit { trial, new_config, .. } => {
                // PBT gave the trial a new config; its later checkpoints hold the state it
                // copied from the source.
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                t.config = new_config;
                t.exploited = true;
                replay.events.push(Event::Exploited { trial });
            }
            Record::Rollback { trial, iteration } => {
                let t = replay.trials.get_mut(trial as usize).ok_or_else(|| unknown(trial))?;
                let keep = t
                    .history
                    .chunks_exact(width)
                    .take_while(|r| r[names.len()] as u64 <= iteration)
                    .count();
                if t.done_at.is_some_and(|d| d > iteration) {
                    t.done_at = None;
                }
                // A retry (`Driver::retry` journals the trial's `Failure` right before its
                // `Rollback`) happens within a run: the searcher and the scheduler saw the
                // results it rolls back, and an uninterrupted run sees them too (then the
                // new results the trial reports for the same iterations), so they stay in
                // the events with their values. A resume's rollback (no `Failure` before
                // it) undoes results that the resumed run then reported again, and that an
                // uninterrupted run reports once: they are dropped.
                let retry = after_failure == Some(trial);
                for (pos, &index) in t.row_events.iter().enumerate().skip(keep) {
                    if let Some(event) = replay.events.get_mut(index) {
                        if !retry {
                            *event = Event::Dropped;
                        } else if let Event::Result { retried, .. } = event {
                            *retried =
                                t.history.get(pos * width..(pos + 1) * width).map(<[f64]>::to_vec);
                        }
                    }
                }
                t.history.truncate(keep * width);
                t.row_events.truncate(keep);
                // `Live::last`: a retry clears it; after a resume it is the last result kept.
                t.last = match t.last {
                    _ if retry => None,
                    Some((pos, done)) if pos < keep => Some((pos, done)),
                    Some(_) => keep.checked_sub(1).map(|pos| (pos, false)),
                    None => None,
                };
            }
            Record::State { searcher, scheduler } => {
                if !scheduler.is_null() {
                    replay.scheduler = Some(scheduler);
                    replay.events.cut_scheduler();
                    // Rollbacks do not lower it: the state keeps what the scheduler saw.
                    for k in unsaved.drain(..) {
                        if let Some(t) = replay.trials.get_mut(k as usize) {
                            t.sched_seen = t.sched_seen.max(t.unsaved);
                            t.unsaved = 0;
                        }
                    }
                }
                if !searcher.is_null() {
                    replay.searcher = Some(searcher);
                    replay.events.cut_searcher();
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
    /// ones rolled back to their latest good checkpoint and queued; then the searcher and
    /// the scheduler restore their saved state and are given what happened after it.
    pub(super) fn resume_from(&mut self, replay: Replay) -> Result<(), RunError> {
        let errored = self.s.faults.resume.unwrap_or_default();
        let Replay { trials, searcher, scheduler, events, .. } = replay;
        // Trials found to have ended although the journal lacks their final status.
        let mut ended = Vec::new();
        for (index, rt) in trials.into_iter().enumerate() {
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
                ended.push(id);
                continue;
            }
            // The driver held the result of the rollback point as the trial's last.
            let last =
                self.trials[index].last_result().and_then(|r| Self::rebuild(id, r.values(), false));
            let paused = self.trials[index].status == TrialStatus::Paused;
            if let Some(live) = self.live[index].as_mut() {
                live.last = last;
                // Results it reports again that the restored scheduler already holds get the
                // decision the run made then (see `Live::seen_upto`). Not for a trial PBT
                // exploited or one the scheduler has paused: those schedulers take the
                // trial's results again themselves.
                if !rt.exploited && !paused && live.iteration < rt.sched_seen {
                    live.seen_upto = rt.sched_seen;
                    live.stop_at = rt.done_at;
                }
            }
            if paused {
                self.paused.push(id);
            } else {
                self.set_status(id, TrialStatus::Pending, None);
                self.pending.push(id);
            }
        }
        if let Some(state) = scheduler {
            self.s.scheduler.restore_state(state).map_err(|e| {
                RunError::Resume(format!("the scheduler cannot restore its saved state: {e}"))
            })?;
        }
        let searcher_saved = searcher.is_some();
        if let Some(state) = searcher {
            self.s.searcher.restore_state(state).map_err(|e| {
                RunError::Resume(format!("the searcher cannot restore its saved state: {e}"))
            })?;
        }
        self.replay(events, searcher_saved, &ended)?;
        // Saved at once: a later resume restores this state, which holds what was just
        // given back and comes after this resume's rollbacks, instead of the older one and
        // every event after it.
        self.save_state();
        self.reporter.finished(self.finished);
        self.flush_journal();
        Ok(())
    }

    /// The result a history row records, as the driver built it live; `None` when the
    /// metrics type cannot be rebuilt from its values (no `Metrics::from_values`).
    fn rebuild(id: TrialId, row: &[f64], done: bool) -> Option<TrialResult<M<T>>> {
        let n = <M<T> as Metrics>::NAMES.len();
        let metrics = <M<T> as Metrics>::from_values(row.get(..n)?)?;
        let &[iteration, time_this_iter_s, time_total_s, timestamp] = row.get(n..)? else {
            return None;
        };
        Some(TrialResult {
            metrics,
            trial_id: id,
            training_iteration: iteration as u64,
            time_this_iter_s,
            time_total_s,
            timestamp: timestamp as u64,
            done,
        })
    }

    /// Gives the scheduler the events after its saved state, and the searcher those after
    /// its own (all of them, with a `suggest` per trial, when it saved none), in journal
    /// order and with the calls the driver made live (see `apply` and `end_trial`), so
    /// that both continue as in an uninterrupted run. Their answers are not acted on: the
    /// journal holds what came of them. A result above the rollback point of a trial that
    /// runs again is left out, since the trial reports it again. `ended` are trials this
    /// resume found finished without their final status record.
    fn replay(
        &mut self,
        events: Events,
        searcher_saved: bool,
        ended: &[TrialId],
    ) -> Result<(), RunError> {
        let Events { list, base, sched_from, search_from } = events;
        let width = row_len::<M<T>>();
        let mut lost = false;
        let mut list = list.into_iter().enumerate().peekable();
        while let Some((k, event)) = list.next() {
            let (to_scheduler, to_searcher) = (base + k >= sched_from, base + k >= search_from);
            match event {
                Event::Added { trial, config } => {
                    let id = TrialId(trial);
                    if to_searcher && !searcher_saved {
                        // Deterministic searchers without a saved state suggest again what
                        // they suggested then.
                        let _ = self.s.searcher.suggest(id);
                    }
                    if to_scheduler {
                        let config = <C<T> as Space>::from_json_value(config).map_err(|e| {
                            RunError::Resume(format!(
                                "trial {id}: {e}; resume with the config type of the trainable \
                                 that ran it"
                            ))
                        })?;
                        self.s.scheduler.on_trial_add(id, &config);
                    }
                }
                Event::Result { trial, pos, done, retried } => {
                    let id = TrialId(trial);
                    let row = match &retried {
                        Some(row) => Some(&row[..]),
                        // Past the rollback point when the trial runs again (it reports the
                        // result again), else its row in the history.
                        None => self
                            .trials
                            .get(id.index())
                            .and_then(|t| t.history.get(pos * width..(pos + 1) * width)),
                    };
                    let Some(row) = row else { continue };
                    let Some(result) = Self::rebuild(id, row, false) else {
                        lost = true;
                        continue;
                    };
                    // A result on which the stop criteria ended the trial never reached the
                    // scheduler (one it stopped the trial on did).
                    if to_scheduler && !(done && self.s.stop.should_stop(&result)) {
                        let decision = self.s.scheduler.on_trial_result(id, &result);
                        if decision == Decision::Exploit {
                            if let Some(exploit) = self.s.scheduler.take_exploit(id) {
                                let carried_out = matches!(
                                    list.peek(),
                                    Some((_, Event::Exploited { trial: t })) if *t == trial
                                );
                                if !carried_out {
                                    self.s.scheduler.on_exploit_failed(
                                        id,
                                        exploit.source,
                                        "the experiment stopped before the exploit",
                                    );
                                }
                            }
                        }
                    }
                    if to_searcher {
                        self.s.searcher.on_trial_result(id, &result);
                    }
                }
                Event::End { trial, error, last } => {
                    let id = TrialId(trial);
                    let last = match last {
                        Some((row, done)) => {
                            let rebuilt = Self::rebuild(id, &row, done);
                            lost |= rebuilt.is_none();
                            rebuilt
                        }
                        None => None,
                    };
                    if to_scheduler {
                        self.s.scheduler.on_trial_complete(id, last.as_ref(), error);
                    }
                    if to_searcher {
                        self.s.searcher.on_trial_complete(id, last.as_ref(), error);
                    }
                }
                Event::Exploited { .. } | Event::Dropped => {}
            }
        }
        for &id in ended {
            let last = self.trials[id.index()]
                .last_result()
                .and_then(|r| Self::rebuild(id, r.values(), true));
            self.s.scheduler.on_trial_complete(id, last.as_ref(), false);
            self.s.searcher.on_trial_complete(id, last.as_ref(), false);
        }
        if lost {
            self.warn(&format!(
                "the metrics type of `{}` cannot be rebuilt from its values \
                 (`Metrics::from_values`, which `#[derive(Metrics)]` generates): results \
                 journaled after the searcher's and the scheduler's saved state are not given \
                 to them again",
                T::NAME
            ));
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};

    use super::*;
    use crate::journal::read_journal;
    use crate::scheduler::{Decision, Scheduler};
    use crate::searcher::{Searcher, Suggestion};
    use crate::testing::{Cfg, Counter, Score};
    use crate::{Stop, Tuner};

    fn experiment() -> Record {
        Record::Experiment {
            version: crate::journal::JOURNAL_VERSION,
            name: "exp".into(),
            trainable: "Counter".into(),
            metrics: vec!["score".into()],
            seed: 1,
            started: 0,
        }
    }

    fn trial(trial: u32, searcher: Option<Value>) -> Record {
        Record::Trial {
            trial,
            id: format!("{trial:05}"),
            dir: Some(format!("t{trial}")),
            config: json!({"x": 0.5, "k": trial + 1}),
            searcher,
        }
    }

    /// A row of `Counter`: score, iteration, time this iteration, time total, timestamp.
    fn row(iteration: u64) -> Vec<f64> {
        let it = iteration as f64;
        vec![10.0 * it, it, 1.0, it, 0.0]
    }

    fn result(trial: u32, iteration: u64, done: bool) -> Record {
        Record::Result { trial, v: row(iteration), done }
    }

    fn status(trial: u32, status: TrialStatus) -> Record {
        Record::Status { trial, status, error: None }
    }

    fn state(searcher: Value, scheduler: Value) -> Record {
        Record::State { searcher, scheduler }
    }

    /// Writes `records` as the journal of `dir/exp`, with the trial directories.
    fn write(dir: &Path, records: &[Record]) -> PathBuf {
        let exp = dir.join("exp");
        for t in 0..3 {
            std::fs::create_dir_all(exp.join(format!("t{t}"))).unwrap();
        }
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).unwrap());
            text.push('\n');
        }
        std::fs::write(exp.join(JOURNAL_FILE), text).unwrap();
        exp
    }

    fn load_records(records: &[Record]) -> Replay {
        let dir = tempfile::tempdir().unwrap();
        let exp = write(dir.path(), records);
        load::<Counter>(&exp).unwrap().unwrap()
    }

    /// A result event at `pos`; `Some(iteration)` for one a retry rolled back.
    fn res(trial: u32, pos: usize, retried: Option<u64>) -> Event {
        Event::Result { trial, pos, done: false, retried: retried.map(row) }
    }

    fn added(trial: u32) -> Event {
        Event::Added { trial, config: json!({"x": 0.5, "k": trial + 1}) }
    }

    #[test]
    fn the_events_start_after_the_older_of_the_two_saved_states() {
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            // The scheduler saved its state, the searcher none yet: everything is kept.
            state(Value::Null, json!({"s": 1})),
            result(0, 2, false),
            trial(1, Some(json!({"q": 1}))),
            result(1, 1, false),
            status(0, TrialStatus::Terminated),
            // Null states are no cuts.
            state(Value::Null, Value::Null),
        ]);
        let e = &r.events;
        assert_eq!((e.base, e.sched_from, e.search_from), (2, 2, 4));
        let end = Event::End { trial: 0, error: false, last: Some((row(2), false)) };
        assert_eq!(e.list, [res(0, 1, None), added(1), res(1, 0, None), end]);
        assert_eq!(r.scheduler, Some(json!({"s": 1})));
        assert_eq!(r.searcher, Some(json!({"q": 1})));

        // Once both saved a state, what both hold is dropped.
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            state(json!({"q": 0}), json!({"s": 0})),
            result(0, 2, false),
        ]);
        assert_eq!((r.events.base, r.events.sched_from, r.events.search_from), (2, 2, 2));
        assert_eq!(r.events.list, [res(0, 1, None)]);

        // No saved state at all: the whole experiment.
        let r = load_records(&[experiment(), trial(0, None), result(0, 1, false)]);
        assert_eq!((r.events.base, r.events.sched_from, r.events.search_from), (0, 0, 0));
        assert_eq!(r.events.list, [added(0), res(0, 0, None)]);
        assert_eq!((r.scheduler, r.searcher), (None, None));
    }

    #[test]
    fn a_retry_marks_the_results_it_rolls_back_seen_and_a_resume_drops_them() {
        let failure = |trial| Record::Failure { trial, attempt: 1, error: "boom".into() };
        let rollback = |trial, iteration| Record::Rollback { trial, iteration };
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            result(0, 2, false),
            result(0, 3, false),
            // A retry: the scheduler saw 2 and 3, and sees 2 and 3 again below.
            failure(0),
            rollback(0, 1),
            result(0, 2, false),
            result(0, 3, false),
            trial(1, None),
            result(1, 1, false),
            result(1, 2, false),
            failure(1),
            // Not right after a failure of trial 0: a resume's rollback.
            rollback(0, 2),
            rollback(1, 0),
            Record::Resume { started: 0 },
            result(0, 3, false),
            status(0, TrialStatus::Error),
            // A retry clears the last result, and keeps the result it rolls back.
            trial(2, None),
            result(2, 1, false),
            failure(2),
            rollback(2, 0),
            status(2, TrialStatus::Error),
        ]);
        assert_eq!(
            r.events.list,
            [
                added(0),
                res(0, 0, None),
                res(0, 1, Some(2)),
                res(0, 2, Some(3)),
                res(0, 1, None),
                Event::Dropped,
                added(1),
                Event::Dropped,
                Event::Dropped,
                res(0, 2, None),
                Event::End { trial: 0, error: true, last: Some((row(3), false)) },
                added(2),
                res(2, 0, Some(1)),
                Event::End { trial: 2, error: true, last: None },
            ]
        );
        let iterations =
            |t: usize| -> Vec<f64> { r.trials[t].history.chunks_exact(5).map(|r| r[1]).collect() };
        assert_eq!(iterations(0), [1.0, 2.0, 3.0]);
        assert!(iterations(1).is_empty() && iterations(2).is_empty());
    }

    /// Records every call a scheduler or a searcher gets (after `setup`).
    #[derive(Clone)]
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
        who: &'static str,
        /// As a scheduler, answer `Exploit` to even iterations.
        exploit: bool,
    }

    impl Recorder {
        fn note(&self, what: String) {
            self.log.lock().unwrap().push(format!("{} {what}", self.who));
        }
    }

    fn last_iteration(last: Option<&TrialResult<Score>>) -> Option<u64> {
        last.map(|r| r.training_iteration)
    }

    impl Scheduler<Cfg, Score> for Recorder {
        fn name(&self) -> &str {
            "recorder"
        }
        fn on_trial_add(&mut self, trial: TrialId, _config: &Cfg) {
            self.note(format!("add {trial}"));
        }
        fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Score>) -> Decision {
            self.note(format!("result {trial} {}", result.training_iteration));
            if self.exploit && result.training_iteration % 2 == 0 {
                Decision::Exploit
            } else {
                Decision::Continue
            }
        }
        fn take_exploit(&mut self, trial: TrialId) -> Option<crate::scheduler::Exploit<Cfg>> {
            self.note(format!("take_exploit {trial}"));
            Some(crate::scheduler::Exploit { source: trial, config: Cfg { x: 0.25, k: 1 } })
        }
        fn on_exploit_failed(&mut self, trial: TrialId, source: TrialId, _why: &str) {
            self.note(format!("exploit_failed {trial} {source}"));
        }
        fn on_trial_complete(&mut self, t: TrialId, last: Option<&TrialResult<Score>>, e: bool) {
            self.note(format!("complete {t} {:?} {e}", last_iteration(last)));
        }
        fn save_state(&self) -> Value {
            json!({"calls": self.log.lock().unwrap().len()})
        }
        fn restore_state(&mut self, state: Value) -> Result<(), crate::StateError> {
            self.note(format!("restore {state}"));
            Ok(())
        }
    }

    impl Searcher<Cfg, Score> for Recorder {
        fn suggest(&mut self, trial: TrialId) -> Suggestion<Cfg> {
            self.note(format!("suggest {trial}"));
            Suggestion::Finished
        }
        fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Score>) {
            self.note(format!("result {trial} {}", result.training_iteration));
        }
        fn on_trial_complete(&mut self, t: TrialId, last: Option<&TrialResult<Score>>, e: bool) {
            self.note(format!("complete {t} {:?} {e}", last_iteration(last)));
        }
    }

    #[test]
    fn the_results_and_end_of_a_trial_that_ended_after_the_saved_state_are_given_back() {
        for stop_at_3 in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let exp = write(
                dir.path(),
                &[
                    experiment(),
                    trial(0, None),
                    status(0, TrialStatus::Running),
                    result(0, 1, false),
                    result(0, 2, false),
                    state(Value::Null, json!({"calls": 7})),
                    result(0, 3, true),
                    status(0, TrialStatus::Terminated),
                    trial(1, None),
                    status(1, TrialStatus::Running),
                    result(1, 1, false),
                    status(1, TrialStatus::Error),
                    // Running, without a checkpoint: it runs again from the start.
                    trial(2, None),
                    status(2, TrialStatus::Running),
                    result(2, 1, false),
                    result(2, 2, false),
                ],
            );
            let log = Arc::new(Mutex::new(Vec::new()));
            let scheduler = Recorder { log: Arc::clone(&log), who: "scheduler", exploit: false };
            let searcher = Recorder { log: Arc::clone(&log), who: "searcher", exploit: false };
            let stop = Stop::iterations(if stop_at_3 { 3 } else { 4 });
            let a = Tuner::<Counter>::new()
                .local_dir(dir.path())
                .name("exp")
                .resume(true)
                .verbose(0)
                .stop(stop)
                .scheduler(scheduler)
                .searcher(searcher)
                .run()
                .unwrap();
            assert_eq!(a.trials().len(), 3);
            let log = log.lock().unwrap().clone();
            let from = log.iter().position(|l| l.starts_with("scheduler restore")).unwrap();
            let mut expected = vec![
                "scheduler restore {\"calls\":7}",
                // The searcher saved no state: it gets the whole experiment.
                "searcher suggest 00000",
                "searcher result 00000 1",
                "searcher result 00000 2",
                // Unless the stop criteria ended the trial there (then it never saw it).
                "scheduler result 00000 3",
                "searcher result 00000 3",
                "scheduler complete 00000 Some(3) false",
                "searcher complete 00000 Some(3) false",
                "searcher suggest 00001",
                "scheduler add 00001",
                "scheduler result 00001 1",
                "searcher result 00001 1",
                "scheduler complete 00001 Some(1) true",
                "searcher complete 00001 Some(1) true",
                // Its results come again when it runs again.
                "searcher suggest 00002",
                "scheduler add 00002",
                // The run itself: a new trial, and trial 2 from its start.
                "searcher suggest 00003",
                "scheduler result 00002 1",
                "searcher result 00002 1",
            ];
            if stop_at_3 {
                expected.retain(|l| *l != "scheduler result 00000 3");
            }
            assert_eq!(log[from..from + expected.len()], expected, "{log:#?}");
            // The state after the replay is saved at once, after the resume's rollback and
            // before the run goes on.
            let records = read_journal(&exp.join(JOURNAL_FILE)).unwrap();
            let resume = records.iter().position(|r| matches!(r, Record::Resume { .. })).unwrap();
            let after: Vec<&Record> = records[resume + 1..].iter().take(3).collect();
            assert!(
                matches!(
                    after[..],
                    [
                        Record::Rollback { trial: 2, .. },
                        Record::Status { .. },
                        Record::State { .. }
                    ]
                ),
                "{after:?}"
            );
        }
    }

    #[test]
    fn an_exploit_answer_is_taken_and_failed_when_the_journal_records_no_exploit() {
        let dir = tempfile::tempdir().unwrap();
        let exploit = Record::Exploit {
            trial: 0,
            source: 0,
            target_iteration: 2,
            source_iteration: 2,
            old_config: json!({"x": 0.5, "k": 1}),
            new_config: json!({"x": 0.25, "k": 1}),
            source_config: json!({"x": 0.5, "k": 1}),
        };
        write(
            dir.path(),
            &[
                experiment(),
                trial(0, None),
                status(0, TrialStatus::Running),
                result(0, 1, false),
                result(0, 2, false),
                exploit,
                result(0, 3, false),
                // No exploit follows this one (the trial ended first): the scheduler is told
                // that it failed, so that it does not count on it.
                result(0, 4, false),
                status(0, TrialStatus::Error),
            ],
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let scheduler = Recorder { log: Arc::clone(&log), who: "scheduler", exploit: true };
        let searcher = Recorder { log: Arc::clone(&log), who: "searcher", exploit: false };
        let a = Tuner::<Counter>::new()
            .local_dir(dir.path())
            .name("exp")
            .resume(true)
            .verbose(0)
            .scheduler(scheduler)
            .searcher(searcher)
            .run()
            .unwrap();
        assert_eq!(a.trials()[0].config().x, 0.25);
        let log: Vec<String> =
            log.lock().unwrap().iter().filter(|l| l.starts_with("scheduler")).cloned().collect();
        assert_eq!(
            log,
            [
                // No saved state: the whole experiment.
                "scheduler add 00000",
                "scheduler result 00000 1",
                "scheduler result 00000 2",
                "scheduler take_exploit 00000",
                "scheduler result 00000 3",
                "scheduler result 00000 4",
                "scheduler take_exploit 00000",
                "scheduler exploit_failed 00000 00000",
                "scheduler complete 00000 Some(4) true",
            ]
        );
    }
}
