//! The one fold of the journal: records in, an [`ExperimentLog`] out.
//!
//! Analysis, resume and tools all read an experiment through [`fold`]: it streams the
//! records once (nothing but the folded state stays in memory), checks each against what
//! came before, and builds every trial's config, status, results, failures and checkpoint
//! lineage. A resume also asks for the replay tail ([`Events`]): what the searcher and the
//! scheduler were told after their last saved state.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::record::Record;
use super::{JournalError, JournalStore};
use crate::trial::{Auto, TrialStatus};

/// The experiment's first record: what ran and how it was seeded.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Journal format version.
    pub version: u32,
    /// Experiment name.
    pub name: String,
    /// Name of the trainable that ran.
    pub trainable: String,
    /// Metric names, in the order of result values.
    pub metrics: Vec<String>,
    /// The experiment's seed.
    pub seed: u64,
    /// Unix time of the start.
    pub started: u64,
}

/// One run of the experiment: its start, or a resume, until it ended or was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Unix time it started.
    pub started: u64,
    /// Unix time it ended; `None` when it was interrupted or killed.
    pub ended: Option<u64>,
    /// Whether it resumed the experiment (`false` for the first run).
    pub resumed: bool,
}

/// A checkpoint in a trial's lineage.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// The training iteration it holds.
    pub iteration: u64,
    /// Its directory.
    pub path: PathBuf,
    /// How many of the trial's results it follows: restoring it keeps that many.
    pub(crate) rows: usize,
    /// The trial's config epoch it was written in (exploits start a new one).
    pub(crate) epoch: usize,
    /// A copy of another trial's checkpoint taken by a PBT exploit: none of this trial's
    /// results was reported by the state it holds.
    pub(crate) copied: bool,
}

/// Everything the journal records about one trial, with its config as `C` (JSON in the
/// untyped view).
#[derive(Debug, Clone)]
pub struct TrialLog<C = Value> {
    pub(crate) index: u32,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) config: C,
    /// The configs the trial had before each exploit, oldest first: `earlier[e]` is the
    /// config of epoch `e`; the current config is epoch `earlier.len()`.
    pub(crate) earlier: Vec<C>,
    pub(crate) status: TrialStatus,
    pub(crate) error: Option<String>,
    /// Result rows, flattened: metrics then [`Auto::ALL`], `width` values per result.
    pub(crate) history: Vec<f64>,
    pub(crate) width: usize,
    pub(crate) checkpoints: Vec<CheckpointInfo>,
    pub(crate) failures: Vec<String>,
}

/// What a resume needs to know of a trial beyond its record.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrialReplay {
    /// The row after which the trial ended by itself.
    pub done_pos: Option<usize>,
    /// The row the driver held as the trial's last result (a retry clears it), and
    /// whether the trial ended after it.
    pub last: Option<(usize, bool)>,
    /// The highest iteration of a result the last saved scheduler state holds.
    pub sched_seen: u64,
    /// The highest iteration of a result journaled since the scheduler's previous state.
    unsaved: u64,
    /// PBT exploited the trial.
    pub exploited: bool,
    /// After a resume rolled the trial back: the highest iteration of a result the
    /// scheduler had been given that the rollback undid. The resumed run decides the
    /// trial's results up to it without asking the scheduler again (see `model::Ask`), so
    /// those results go to the searcher only ([`Who::Searcher`]).
    pub redo_upto: u64,
}

impl TrialLog<()> {
    /// A new trial's record (the driver keeps configs apart).
    pub(crate) fn empty(index: u32, width: usize) -> Self {
        TrialLog {
            index,
            dir: None,
            config: (),
            earlier: Vec::new(),
            status: TrialStatus::Pending,
            error: None,
            history: Vec::new(),
            width,
            checkpoints: Vec::new(),
            failures: Vec::new(),
        }
    }
}

impl<C> TrialLog<C> {
    /// The trial's creation index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The trial's id as shown (`00003`).
    pub fn id(&self) -> String {
        format!("{:05}", self.index)
    }

    /// The trial's directory (`None` when file logging was off).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The trial's config (after its latest exploit, for population based training).
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The trial's status when the journal ends.
    pub fn status(&self) -> TrialStatus {
        self.status
    }

    /// The error that ended the trial, for `ERROR` trials.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The errors of failed attempts that were retried, oldest first.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Number of results.
    pub fn num_results(&self) -> usize {
        self.history.len().checked_div(self.width).unwrap_or(0)
    }

    /// Every result row: metric values in the order of the experiment's metric names,
    /// then `training_iteration`, `time_this_iter_s`, `time_total_s`, `timestamp`.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.history.chunks_exact(self.width.max(1))
    }

    /// The checkpoints that still exist, in the order they were written.
    pub fn checkpoints(&self) -> &[CheckpointInfo] {
        &self.checkpoints
    }

    /// Keeps the first `rows` results (a rollback).
    /// Keeps the first `rows` results; returns the rows dropped.
    pub(crate) fn truncate(&mut self, rows: usize) -> Vec<f64> {
        self.history.split_off((rows * self.width).min(self.history.len()))
    }

    /// The iteration of result `pos`.
    pub(crate) fn iteration_at(&self, pos: usize) -> Option<u64> {
        let m = self.width.checked_sub(Auto::ALL.len())?;
        self.history.get(pos * self.width + m).map(|v| *v as u64)
    }

    /// Goes back to the config of `epoch` (a rollback past an exploit).
    pub(crate) fn back_to_epoch(&mut self, epoch: usize) {
        if epoch < self.earlier.len() {
            self.earlier.truncate(epoch + 1);
            if let Some(c) = self.earlier.pop() {
                self.config = c;
            }
        }
    }

    /// The same trial with another config (every epoch's).
    pub(crate) fn with_config<D>(self, config: D) -> TrialLog<D> {
        TrialLog {
            index: self.index,
            dir: self.dir,
            config,
            earlier: Vec::new(),
            status: self.status,
            error: self.error,
            history: self.history,
            width: self.width,
            checkpoints: self.checkpoints,
            failures: self.failures,
        }
    }

    /// The current config epoch.
    pub(crate) fn epoch(&self) -> usize {
        self.earlier.len()
    }

    /// Replaces the config, keeping the old one as an earlier epoch (an exploit).
    pub(crate) fn new_epoch(&mut self, config: C) {
        let old = std::mem::replace(&mut self.config, config);
        self.earlier.push(old);
    }
}

/// What the searcher and the scheduler were told, in journal order: what a resume gives
/// back to them after their saved state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A trial was created with this config (`on_trial_add`; `suggest` for a searcher
    /// without saved state).
    Added { trial: u32, config: Value },
    /// A result: `pos` is its row in the trial's history, `done` whether the trial ended
    /// after it, `who` was given it. `retried` holds its values once a rollback undid it
    /// (the history no longer holds it): a retry's (the searcher and the scheduler saw
    /// it), or a resume's (the scheduler saw it; the trial reports it again to the
    /// searcher).
    Result { trial: u32, pos: usize, done: bool, retried: Option<Vec<f64>>, who: Who },
    /// The exploit the scheduler asked for after the trial's previous result was carried
    /// out (population based training): the trial now has `config`.
    Exploited { trial: u32, config: Value },
    /// The trial ended (TERMINATED, or ERROR when `error`); `last` is its last result, as
    /// the driver held it, and whether the trial ended after that result.
    End { trial: u32, error: bool, last: Option<(Vec<f64>, bool)> },
    /// A result a later resume rolled back: the trial produced it again after the resume.
    Dropped,
}

/// Who a result event was given to in the run that journaled it, and is given to again
/// by a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Who {
    /// The searcher and the scheduler.
    Both,
    /// The scheduler only: a result a resume rolled back, which the trial then reported
    /// again (to the searcher).
    Scheduler,
    /// The searcher only: a result a resumed trial reported again, decided as before
    /// without asking the scheduler (which had it already).
    Searcher,
}

/// The events of a journal after the older of the searcher's and the scheduler's saved
/// states (earlier ones are dropped as they are read).
#[derive(Debug, Default)]
pub(crate) struct Events {
    pub list: Vec<Event>,
    /// The absolute index (counted from the run's first event) of `list[0]`.
    pub base: usize,
    /// The first event after the last saved scheduler state (0: none was saved).
    pub sched_from: usize,
    /// The first event after the last saved searcher state (0: none was saved).
    pub search_from: usize,
}

impl Events {
    fn push(&mut self, event: Event) {
        self.list.push(event);
    }

    fn cut_scheduler(&mut self) {
        self.sched_from = self.base + self.list.len();
        self.trim();
    }

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

/// An experiment as its journal records it: the header, the runs, every trial, the last
/// saved searcher and scheduler state, and (for a resume) the events after them.
///
/// `C` is the config type: JSON in the untyped view that tools use
/// ([`ExperimentLog::from_dir`]), the typed config in [`Analysis`](crate::Analysis).
#[derive(Debug)]
pub struct ExperimentLog<C = Value> {
    pub(crate) dir: PathBuf,
    pub(crate) header: Option<Header>,
    pub(crate) runs: Vec<Run>,
    /// How many fresh runs (`experiment` records) the journal holds; only the last one's
    /// trials are kept.
    pub(crate) fresh_runs: usize,
    pub(crate) trials: Vec<TrialLog<C>>,
    pub(crate) searcher: Option<Value>,
    pub(crate) scheduler: Option<Value>,
    pub(crate) events: Events,
    /// What a resume needs to know of each trial beyond its record (a resume's fold only).
    pub(crate) replay: Vec<TrialReplay>,
}

impl ExperimentLog<Value> {
    /// Reads the experiment in `dir` (the directory holding `experiment_journal.jsonl`)
    /// without knowing its Rust types: configs as JSON, metrics by name.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, JournalError> {
        let dir = dir.as_ref();
        let path = dir.join(super::JOURNAL_FILE);
        fold_file(&path, dir, false, &mut |_, v| Ok(v))
    }

    /// Reads an experiment from a journal shared by several processes (a PostgreSQL
    /// journal, `PostgresJournal::open_existing`): what it holds now, finished or still
    /// running. `dir` is the experiment's local directory (`local_dir/name` of the run)
    /// that its trial and checkpoint paths are relative to.
    pub fn from_shared(
        journal: &mut dyn super::shared::SharedJournal,
        dir: impl AsRef<Path>,
    ) -> Result<Self, JournalError> {
        fold_shared(journal, dir.as_ref(), false, &mut |_, v| Ok(v)).map(|(log, _)| log)
    }
}

impl<C> ExperimentLog<C> {
    /// The experiment directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The experiment's first record (`None` for an empty journal).
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// The names of the metrics, in the order of result values.
    pub fn metric_names(&self) -> &[String] {
        self.header.as_ref().map_or(&[], |h| &h.metrics)
    }

    /// The index of a metric or automatic field in a result row.
    pub fn column(&self, name: &str) -> Option<usize> {
        let m = self.metric_names();
        m.iter()
            .position(|n| n == name)
            .or_else(|| Auto::ALL.iter().position(|a| a.name() == name).map(|k| m.len() + k))
    }

    /// The experiment's runs: its start and every resume.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Every trial, in creation order.
    pub fn trials(&self) -> &[TrialLog<C>] {
        &self.trials
    }

    /// Number of trials with `status`.
    pub fn count(&self, status: TrialStatus) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// Whether the last run ended (it was not interrupted or killed).
    pub fn is_finished(&self) -> bool {
        self.runs.last().is_some_and(|r| r.ended.is_some())
    }
}

/// Where the fold keeps the trials: the experiment log's own list, or the driver's
/// trials when it follows a journal other processes append to.
pub(crate) trait Book<C> {
    fn count(&self) -> usize;
    fn at(&mut self, index: usize) -> Option<&mut TrialLog<C>>;
    fn add(&mut self, trial: TrialLog<C>);
    /// Forgets every trial (a journal holding several fresh runs).
    fn forget(&mut self);
}

impl<C> Book<C> for Vec<TrialLog<C>> {
    fn count(&self) -> usize {
        self.len()
    }
    fn at(&mut self, index: usize) -> Option<&mut TrialLog<C>> {
        self.get_mut(index)
    }
    fn add(&mut self, trial: TrialLog<C>) {
        self.push(trial);
    }
    fn forget(&mut self) {
        self.clear();
    }
}

/// Turns a trial's config from JSON into `C`; the error says what is wrong.
pub(crate) type Decode<'a, C> = dyn FnMut(u32, Value) -> Result<C, String> + 'a;

/// Folds the journal file at `path` of the experiment in `dir`.
pub(crate) fn fold_file<C>(
    path: &Path,
    dir: &Path,
    replay: bool,
    decode: &mut Decode<'_, C>,
) -> Result<ExperimentLog<C>, JournalError> {
    let mut fold = Fold::new(dir, replay, decode);
    let mut failure = None;
    let read = super::store::read_lines(path, &mut |line| fold.line(line, &mut failure));
    finish(fold, read, failure, path)
}

/// Folds the records of `store` (which repairs a torn tail).
pub(crate) fn fold_store<C>(
    store: &mut dyn JournalStore,
    dir: &Path,
    replay: bool,
    decode: &mut Decode<'_, C>,
) -> Result<ExperimentLog<C>, JournalError> {
    let mut fold = Fold::new(dir, replay, decode);
    let mut failure = None;
    let read = store.read(&mut |line| fold.line(line, &mut failure));
    finish(fold, read.map(|()| super::store::Tail::Clean), failure, &dir.join(super::JOURNAL_FILE))
}

/// Folds the records of a shared journal (another process may be appending meanwhile:
/// the fold stops at the end it saw).
pub(crate) fn fold_shared<C>(
    journal: &mut dyn super::shared::SharedJournal,
    dir: &Path,
    replay: bool,
    decode: &mut Decode<'_, C>,
) -> Result<(ExperimentLog<C>, u64), JournalError> {
    let mut fold = Fold::new(dir, replay, decode);
    let mut failure = None;
    let read = journal.read_from(0, &mut |_, _, line| fold.line(line, &mut failure));
    let next = *read.as_ref().unwrap_or(&0);
    let log = finish(fold, read.map(|_| ()), failure, &dir.join(super::JOURNAL_FILE))?;
    Ok((log, next))
}

fn finish<C, T>(
    fold: Fold<'_, C>,
    read: std::io::Result<T>,
    failure: Option<JournalError>,
    path: &Path,
) -> Result<ExperimentLog<C>, JournalError> {
    if let Some(e) = failure {
        return Err(e.at(path));
    }
    read.map_err(|source| {
        match source.get_ref().and_then(|e| e.downcast_ref::<super::store::LineTooLong>()) {
            Some(long) => JournalError::Corrupt {
                path: path.to_path_buf(),
                line: long.line,
                message: format!("the line is longer than {} bytes", super::MAX_RECORD_BYTES),
            },
            None => JournalError::Io { path: path.to_path_buf(), source },
        }
    })?;
    Ok(fold.log)
}

/// The replay bookkeeping of `trial` (made on first use: a fold that follows a shared
/// journal sees only the other processes' records of some trials).
fn replay_of(table: &mut Vec<TrialReplay>, trial: u32) -> &mut TrialReplay {
    let i = trial as usize;
    if table.len() <= i {
        table.resize_with(i + 1, TrialReplay::default);
    }
    &mut table[i]
}

pub(crate) struct Fold<'a, C> {
    log: ExperimentLog<C>,
    decode: &'a mut Decode<'a, C>,
    replay: bool,
    /// Following a shared journal: records are applied as they come, the events drained
    /// after each batch, and saved states (another process's) ignored.
    follow: bool,
    /// Values per result row (metrics + automatic fields).
    width: usize,
    /// The trial of the previous record when it was a `Failure`.
    failed: Option<u32>,
    /// Trials with results journaled since the scheduler's last saved state.
    unsaved: Vec<u32>,
    line: usize,
}

impl<'a, C> Fold<'a, C> {
    fn new(dir: &Path, replay: bool, decode: &'a mut Decode<'a, C>) -> Self {
        Fold {
            log: ExperimentLog {
                dir: dir.to_path_buf(),
                header: None,
                runs: Vec::new(),
                fresh_runs: 0,
                trials: Vec::new(),
                searcher: None,
                scheduler: None,
                events: Events::default(),
                replay: Vec::new(),
            },
            decode,
            replay,
            follow: false,
            width: 0,
            failed: None,
            unsaved: Vec::new(),
            line: 0,
        }
    }

    /// A fold that follows a shared journal into the driver's trials: configs are left to
    /// the caller (they arrive in the events), and the events are taken after each batch.
    pub(crate) fn follow(dir: &Path) -> Fold<'static, ()> {
        let decode: &'static mut Decode<'static, ()> = Box::leak(Box::new(|_, _| Ok(())));
        let mut fold = Fold::new(dir, true, decode);
        fold.follow = true;
        fold
    }

    /// The events since the last call (following a shared journal).
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.log.events.list)
    }

    /// One line of the journal; a failure is kept in `failure` and stops the read.
    fn line(&mut self, bytes: &[u8], failure: &mut Option<JournalError>) -> ControlFlow<()> {
        let mut trials = std::mem::take(&mut self.log.trials);
        let flow = self.line_into(&mut trials, bytes, failure);
        self.log.trials = trials;
        flow
    }

    /// [`Fold::line`] into another book of trials.
    pub(crate) fn line_into(
        &mut self,
        book: &mut dyn Book<C>,
        bytes: &[u8],
        failure: &mut Option<JournalError>,
    ) -> ControlFlow<()> {
        self.line += 1;
        let result = match serde_json::from_slice::<Record>(bytes) {
            Ok(record) => self.record(book, record),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(message) => {
                *failure =
                    Some(JournalError::Corrupt { path: PathBuf::new(), line: self.line, message });
                ControlFlow::Break(())
            }
        }
    }

    fn trial(book: &mut dyn Book<C>, t: u32) -> Result<&mut TrialLog<C>, String> {
        book.at(t as usize)
            .ok_or_else(|| format!("the record names trial {t}, which the journal never created"))
    }

    fn path(&self, rel: &str) -> Result<PathBuf, String> {
        if crate::manifest::is_plain_relative(rel) {
            Ok(self.log.dir.join(rel))
        } else {
            Err(format!(
                "the path `{rel}` is not inside the experiment directory; the journal was not \
                 written by this runner"
            ))
        }
    }

    fn record(&mut self, book: &mut dyn Book<C>, record: Record) -> Result<(), String> {
        let after_failure = self.failed.take();
        if self.log.header.is_none() && !matches!(record, Record::Experiment { .. }) {
            return Err("the journal does not start with an `experiment` record".into());
        }
        match record {
            Record::Experiment { version, name, trainable, metrics, seed, started, .. } => {
                if version > super::JOURNAL_VERSION {
                    return Err(format!(
                        "the journal has format version {version}; this build reads versions up \
                         to {}: upgrade tune-runtime",
                        super::JOURNAL_VERSION
                    ));
                }
                // A journal that several fresh runs appended to (before runs took a lock on
                // the experiment): the last run is the experiment.
                self.width = metrics.len() + Auto::ALL.len();
                self.log.header = Some(Header { version, name, trainable, metrics, seed, started });
                self.log.fresh_runs += 1;
                self.log.runs = vec![Run { started, ended: None, resumed: false }];
                book.forget();
                self.log.searcher = None;
                self.log.scheduler = None;
                self.log.events = Events::default();
                self.log.replay.clear();
                self.unsaved.clear();
            }
            Record::Trial { trial, dir, config, searcher, .. } => {
                if trial as usize != book.count() {
                    return Err(format!(
                        "trial {trial} is out of order: {} trials were created before it",
                        book.count()
                    ));
                }
                let dir = match dir {
                    Some(d) if crate::manifest::is_plain_relative(&d) && !d.contains('/') => {
                        Some(self.log.dir.join(d))
                    }
                    Some(d) => {
                        return Err(format!(
                            "the trial directory `{d}` is not inside the experiment directory \
                             (it must be one plain directory name)"
                        ));
                    }
                    None => None,
                };
                if self.replay {
                    self.log.events.push(Event::Added { trial, config: config.clone() });
                    if let Some(state) = searcher.filter(|s| !s.is_null()) {
                        // Version 2 saved it right after the searcher suggested this trial.
                        self.log.searcher = Some(state);
                        self.log.events.cut_searcher();
                    }
                }
                let config =
                    (self.decode)(trial, config).map_err(|e| format!("trial {trial:05}: {e}"))?;
                book.add(TrialLog {
                    index: trial,
                    dir,
                    config,
                    earlier: Vec::new(),
                    status: TrialStatus::Pending,
                    error: None,
                    history: Vec::new(),
                    width: self.width,
                    checkpoints: Vec::new(),
                    failures: Vec::new(),
                });
                if self.replay {
                    replay_of(&mut self.log.replay, trial);
                }
            }
            Record::Status { trial, status, error } => {
                let replay = self.replay;
                let t = Self::trial(book, trial)?;
                t.status = status;
                if error.is_some() {
                    t.error = error;
                }
                if replay && status.is_finished() {
                    let width = t.width;
                    let r = replay_of(&mut self.log.replay, trial);
                    let last = r.last.and_then(|(pos, done)| {
                        let row = t.history.get(pos * width..(pos + 1) * width)?;
                        Some((row.to_vec(), done))
                    });
                    let error = status == TrialStatus::Error;
                    self.log.events.push(Event::End { trial, error, last });
                }
            }
            Record::Result { trial, v, done } => {
                let width = self.width;
                if v.len() != width {
                    return Err(format!(
                        "a result of trial {trial:05} has {} values where the experiment's \
                         metrics and automatic fields make {width}",
                        v.len()
                    ));
                }
                if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                    return Err(format!(
                        "a result of trial {trial:05} has the non-finite value {} at position {k}",
                        v[k]
                    ));
                }
                let iteration = v[width - Auto::ALL.len()] as u64;
                let replay = self.replay;
                let t = Self::trial(book, trial)?;
                let pos = t.num_results();
                t.history.extend_from_slice(&v);
                if replay {
                    let r = replay_of(&mut self.log.replay, trial);
                    if done {
                        r.done_pos = Some(pos);
                    }
                    let who = if !r.exploited && iteration <= r.redo_upto {
                        Who::Searcher
                    } else {
                        Who::Both
                    };
                    let first_unsaved = r.unsaved == 0 && who == Who::Both;
                    if who == Who::Both {
                        r.unsaved = r.unsaved.max(iteration);
                    }
                    r.last = Some((pos, done));
                    if first_unsaved {
                        self.unsaved.push(trial);
                    }
                    self.log.events.push(Event::Result { trial, pos, done, retried: None, who });
                }
            }
            Record::Checkpoint { trial, iteration, path } => {
                let path = self.path(&path)?;
                let t = Self::trial(book, trial)?;
                let (rows, epoch) = (t.num_results(), t.epoch());
                // The same directory written again replaces the older checkpoint.
                t.checkpoints.retain(|c| c.path != path);
                t.checkpoints.push(CheckpointInfo { iteration, path, rows, epoch, copied: false });
            }
            Record::CheckpointDeleted { trial, path } => {
                let path = self.path(&path)?;
                let t = Self::trial(book, trial)?;
                t.checkpoints.retain(|c| c.path != path);
            }
            Record::Failure { trial, error, .. } => {
                Self::trial(book, trial)?.failures.push(error);
                self.failed = Some(trial);
            }
            Record::Exploit { trial, source_iteration, new_config, checkpoint, .. } => {
                let json = self.replay.then(|| new_config.clone());
                let config = (self.decode)(trial, new_config)
                    .map_err(|e| format!("trial {trial:05}: {e}"))?;
                let path = checkpoint.map(|p| self.path(&p)).transpose()?;
                let t = Self::trial(book, trial)?;
                // The checkpoint the trial goes on from: named by version 3; in version 2 the
                // latest one at the source's iteration (the copy was journaled just before).
                let from = match path {
                    Some(p) => Some(p),
                    None => t
                        .checkpoints
                        .iter()
                        .rev()
                        .find(|c| c.iteration == source_iteration)
                        .map(|c| c.path.clone()),
                };
                t.new_epoch(config);
                if let Some(path) = from {
                    let (rows, epoch) = (t.num_results(), t.epoch());
                    t.checkpoints.retain(|c| c.path != path);
                    t.checkpoints.push(CheckpointInfo {
                        iteration: source_iteration,
                        path,
                        rows,
                        epoch,
                        copied: true,
                    });
                }
                if self.replay {
                    replay_of(&mut self.log.replay, trial).exploited = true;
                    let config = json.unwrap_or_default();
                    self.log.events.push(Event::Exploited { trial, config });
                }
            }
            Record::Rollback { trial, iteration, rows, checkpoint } => {
                let path = checkpoint.map(|p| self.path(&p)).transpose()?;
                let retry = after_failure == Some(trial);
                self.rollback(book, trial, iteration, rows, path, retry)?;
            }
            Record::State { searcher, scheduler } => {
                if !self.replay || self.follow {
                    return Ok(());
                }
                if !scheduler.is_null() {
                    self.log.scheduler = Some(scheduler);
                    self.log.events.cut_scheduler();
                    // Rollbacks do not lower it: the state keeps what the scheduler saw.
                    for k in self.unsaved.drain(..) {
                        if let Some(r) = self.log.replay.get_mut(k as usize) {
                            r.sched_seen = r.sched_seen.max(r.unsaved);
                            r.unsaved = 0;
                        }
                    }
                }
                if !searcher.is_null() {
                    self.log.searcher = Some(searcher);
                    self.log.events.cut_searcher();
                }
            }
            Record::Resume { started } => {
                self.log.runs.push(Run { started, ended: None, resumed: true });
            }
            Record::End { ended } => {
                if let Some(run) = self.log.runs.last_mut() {
                    run.ended = Some(ended);
                }
            }
        }
        Ok(())
    }

    /// A trial goes back to a checkpoint (`path`) or its start: its results after it are
    /// dropped, and its config goes back to the checkpoint's epoch.
    fn rollback(
        &mut self,
        book: &mut dyn Book<C>,
        trial: u32,
        iteration: u64,
        rows: Option<u64>,
        path: Option<PathBuf>,
        retry: bool,
    ) -> Result<(), String> {
        let replay = self.replay;
        let Some(t) = book.at(trial as usize) else {
            return Err(format!("the record names trial {trial}, which the journal never created"));
        };
        let n = t.num_results();
        let keep = match rows {
            Some(r) if r as usize <= n => r as usize,
            Some(r) => {
                return Err(format!(
                    "a rollback of trial {trial:05} keeps {r} results but it has only {n}"
                ));
            }
            // Version 2: the results up to the iteration.
            None => {
                (0..n).take_while(|&p| t.iteration_at(p).is_some_and(|i| i <= iteration)).count()
            }
        };
        match (&path, rows) {
            // Back to a checkpoint of the lineage: the ones after it are gone (newer, or
            // corrupt), and the config is the one of its epoch.
            (Some(p), _) => {
                if let Some(k) = t.checkpoints.iter().rposition(|c| &c.path == p) {
                    let epoch = t.checkpoints[k].epoch;
                    t.back_to_epoch(epoch);
                    t.checkpoints.truncate(k + 1);
                }
            }
            // Back to the start.
            (None, Some(_)) => {
                t.back_to_epoch(0);
                t.checkpoints.clear();
            }
            // Version 2 numbered checkpoints by iteration alone.
            (None, None) => t.checkpoints.retain(|c| c.iteration <= iteration),
        }
        if replay {
            let r = replay_of(&mut self.log.replay, trial);
            r.done_pos = r.done_pos.filter(|&d| d < keep);
            // A retry (`Failure` right before the `Rollback`) happens within a run: the
            // searcher and the scheduler saw the results it rolls back, and an uninterrupted
            // run sees them too (then the new results for the same iterations), so they stay
            // in the events with their values. A resume's rollback undoes results that the
            // resumed run then reports again, and that an uninterrupted run reports once:
            // the scheduler keeps them, in journal order (its decisions on other trials
            // depended on them, a HyperBand rung for one), and the resumed run decides them
            // again as then without asking it (up to `redo_upto`); the searcher gets them
            // when they are reported again. Results of a trial PBT exploited are dropped:
            // its scheduler takes them again.
            let width = t.width;
            let m = width.saturating_sub(Auto::ALL.len());
            let mut redo = 0u64;
            let exploited = r.exploited;
            for event in self.log.events.list.iter_mut().rev() {
                let pos = match event {
                    Event::Result { trial: et, pos, retried: None, .. } if *et == trial => *pos,
                    Event::Added { trial: et, .. } if *et == trial => break,
                    _ => continue,
                };
                if pos < keep {
                    continue;
                }
                let values = t.history.get(pos * width..(pos + 1) * width).map(<[f64]>::to_vec);
                let Event::Result { retried, who, .. } = event else { continue };
                match (retry, *who) {
                    (true, _) => *retried = values,
                    (false, Who::Both) if !exploited => {
                        redo = redo.max(values.as_ref().map_or(0, |v| v[m] as u64));
                        *retried = values;
                        *who = Who::Scheduler;
                    }
                    (false, _) => *event = Event::Dropped,
                }
            }
            // As the resumed run computes it (`Live::seen_upto`): results the scheduler's
            // saved state holds count too.
            let upto = redo.max(r.sched_seen);
            if !retry && !exploited && upto > iteration {
                r.redo_upto = r.redo_upto.max(upto);
            }
            // `Live::last`: a retry clears it; after a resume it is the last result kept.
            r.last = match r.last {
                _ if retry => None,
                Some((pos, done)) if pos < keep => Some((pos, done)),
                Some(_) => keep.checked_sub(1).map(|pos| (pos, false)),
                None => None,
            };
        }
        t.truncate(keep);
        Ok(())
    }
}

#[cfg(test)]
#[path = "fold_tests.rs"]
mod tests;
