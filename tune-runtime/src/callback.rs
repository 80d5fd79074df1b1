//! Callbacks: code of yours that the runner calls as an experiment goes (a trial starts,
//! reports a result, writes a checkpoint, ends; the experiment ends).
//!
//! The payloads are untyped, so one callback serves every trainable: a trial is its index,
//! its id, its directory and its config as JSON; a result is a row of `f64`s in the order
//! of the experiment's metric names, then the automatic fields
//! ([`Auto::ALL`](crate::trial::Auto::ALL)). The built-in loggers (`result.json`, `progress.csv`,
//! TensorBoard event files, in [`logger`](crate::logger)) are callbacks like any other.
//!
//! Every method runs on the driver thread, between two results: keep it quick (buffer,
//! and write in [`Callback::flush`], which the runner calls every status tick and when a
//! trial ends). An error stops the run the way a full disk does: running trials are
//! suspended after their current step, nothing written is lost, and the experiment
//! resumes with `.resume(true)` once the cause is fixed.
//!
//! ```
//! use tune_runtime::callback::{Callback, CallbackError, ExperimentView, ResultView, TrialView};
//!
//! /// Prints the best value of the first metric seen so far.
//! #[derive(Debug, Default)]
//! struct Best {
//!     metric: String,
//!     best: Option<f64>,
//! }
//!
//! impl Callback for Best {
//!     fn on_experiment_start(&mut self, exp: &ExperimentView<'_>) -> Result<(), CallbackError> {
//!         self.metric = exp.metric_names.first().cloned().unwrap_or_default();
//!         Ok(())
//!     }
//!
//!     fn on_trial_result(
//!         &mut self,
//!         trial: &TrialView<'_>,
//!         result: &ResultView<'_>,
//!     ) -> Result<(), CallbackError> {
//!         let v = result.row[0];
//!         if self.best.is_none_or(|b| v > b) {
//!             self.best = Some(v);
//!             println!("new best {}={v} from trial {}", self.metric, trial.id);
//!         }
//!         Ok(())
//!     }
//! }
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A callback failed to write: the file (or other target) and the I/O error.
///
/// The runner stops the experiment resumably on the first one and returns it from
/// `Tuner::run` as `RunError::Logging` with this path.
#[derive(Debug, thiserror::Error)]
#[error("writing `{}` failed: {source}", path.display())]
#[non_exhaustive]
pub struct CallbackError {
    /// What could not be written: a file, or a name of the target for sinks that are not
    /// files (a URL, a table).
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

impl CallbackError {
    /// An error writing `path`.
    ///
    /// ```
    /// use tune_runtime::callback::CallbackError;
    /// let e = CallbackError::new("/results/log.txt", std::io::Error::other("disk full"));
    /// assert_eq!(e.to_string(), "writing `/results/log.txt` failed: disk full");
    /// ```
    pub fn new(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self { path: path.into(), source }
    }

    /// A function turning an I/O error on `path` into a [`CallbackError`], for `map_err`.
    pub(crate) fn at(path: &Path) -> impl FnOnce(io::Error) -> CallbackError + '_ {
        move |source| CallbackError { path: path.to_path_buf(), source }
    }
}

/// The experiment, as the runner starts (or resumes) it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ExperimentView<'a> {
    /// The experiment's name (its directory's name).
    pub name: &'a str,
    /// The experiment directory.
    pub dir: &'a Path,
    /// The trainable's name.
    pub trainable: &'a str,
    /// The metric names, in the order of the values of a result row.
    pub metric_names: &'a [String],
    /// Unix time (seconds) the experiment first started (kept on a resume).
    pub started: u64,
    /// Whether this run resumes the experiment.
    pub resumed: bool,
}

impl<'a> ExperimentView<'a> {
    /// The view of an experiment; the other fields are the defaults of a fresh start (not
    /// resumed, started at `started`).
    ///
    /// ```
    /// use std::path::Path;
    /// use tune_runtime::callback::ExperimentView;
    /// let names = vec!["loss".to_string()];
    /// let exp = ExperimentView::new("exp", Path::new("/results/exp"), "Model", &names, 0);
    /// assert_eq!(exp.metric_names, ["loss"]);
    /// ```
    pub fn new(
        name: &'a str,
        dir: &'a Path,
        trainable: &'a str,
        metric_names: &'a [String],
        started: u64,
    ) -> Self {
        Self { name, dir, trainable, metric_names, started, resumed: false }
    }

    /// The same view, marked as a resume.
    pub fn resumed(mut self, yes: bool) -> Self {
        self.resumed = yes;
        self
    }
}

/// A trial, as every trial event names it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TrialView<'a> {
    /// The trial's creation index (0 for the first trial).
    pub index: u32,
    /// The trial's id, unique across experiments (`4f1c2_00003`, see
    /// [`logger::trial_id`](crate::logger::trial_id)).
    pub id: &'a str,
    /// The trial's directory (`None` when file logging is off).
    pub dir: Option<&'a Path>,
    /// The trial's config as JSON (its current one, after any exploit).
    pub config: &'a Value,
}

impl<'a> TrialView<'a> {
    /// The view of trial `index`.
    ///
    /// ```
    /// use tune_runtime::callback::TrialView;
    /// let config = serde_json::json!({"lr": 0.01});
    /// let trial = TrialView::new(3, "4f1c2_00003", None, &config);
    /// assert_eq!(trial.index, 3);
    /// ```
    pub fn new(index: u32, id: &'a str, dir: Option<&'a Path>, config: &'a Value) -> Self {
        Self { index, id, dir, config }
    }
}

/// Where a trial (re)starts: its first start, a restore from a checkpoint (a retry, a
/// resume, a trial paused to disk), or a trial paused in memory that goes on.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct StartView<'a> {
    /// The iteration the trial goes on from (0 on a first start).
    pub iteration: u64,
    /// Seconds spent in its steps before (0 on a first start).
    pub time_total_s: f64,
    /// The checkpoint it was restored from, if any.
    pub restored_from: Option<&'a Path>,
}

impl<'a> StartView<'a> {
    /// A first start: iteration 0, no checkpoint.
    pub fn first() -> Self {
        Self { iteration: 0, time_total_s: 0.0, restored_from: None }
    }

    /// A start from `checkpoint`, which holds `iteration` after `time_total_s` seconds of
    /// steps.
    ///
    /// ```
    /// use std::path::Path;
    /// use tune_runtime::callback::StartView;
    /// let start = StartView::restored(Path::new("t/checkpoint_000004"), 4, 2.5);
    /// assert_eq!(start.iteration, 4);
    /// ```
    pub fn restored(checkpoint: &'a Path, iteration: u64, time_total_s: f64) -> Self {
        Self { iteration, time_total_s, restored_from: Some(checkpoint) }
    }

    /// A trial paused in memory that continues at `iteration` (nothing was restored).
    pub fn unpaused(iteration: u64, time_total_s: f64) -> Self {
        Self { iteration, time_total_s, restored_from: None }
    }
}

/// One result of a trial.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ResultView<'a> {
    /// The values: the metrics in the order of [`ExperimentView::metric_names`], then
    /// `training_iteration`, `time_this_iter_s`, `time_total_s`, `timestamp`.
    pub row: &'a [f64],
    /// Whether the trial ended after this result.
    pub done: bool,
    /// The directory name of the checkpoint written at this result, if one was
    /// (`checkpoint_000010`).
    pub checkpoint: Option<&'a str>,
}

impl<'a> ResultView<'a> {
    /// A result that wrote no checkpoint.
    ///
    /// ```
    /// use tune_runtime::callback::ResultView;
    /// // loss, then training_iteration, time_this_iter_s, time_total_s, timestamp
    /// let row = [0.5, 3.0, 0.1, 0.3, 1.7e9];
    /// let r = ResultView::new(&row, false);
    /// assert_eq!(r.training_iteration(), 3);
    /// assert_eq!(r.metrics(), &[0.5]);
    /// ```
    pub fn new(row: &'a [f64], done: bool) -> Self {
        Self { row, done, checkpoint: None }
    }

    /// The same result, with the checkpoint written at it.
    pub fn with_checkpoint(mut self, dir_name: &'a str) -> Self {
        self.checkpoint = Some(dir_name);
        self
    }

    fn auto(&self, k: usize) -> f64 {
        let n = self.row.len();
        if n >= 4 { self.row[n - 4 + k] } else { f64::NAN }
    }

    /// The metric values (the row without the automatic fields).
    pub fn metrics(&self) -> &'a [f64] {
        &self.row[..self.row.len().saturating_sub(4)]
    }

    /// `training_iteration`.
    pub fn training_iteration(&self) -> u64 {
        self.auto(0) as u64
    }

    /// `time_this_iter_s`.
    pub fn time_this_iter_s(&self) -> f64 {
        self.auto(1)
    }

    /// `time_total_s`.
    pub fn time_total_s(&self) -> f64 {
        self.auto(2)
    }

    /// `timestamp` (Unix seconds).
    pub fn timestamp(&self) -> u64 {
        self.auto(3) as u64
    }
}

/// A checkpoint a trial wrote.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CheckpointView<'a> {
    /// The training iteration it holds.
    pub iteration: u64,
    /// Its directory.
    pub path: &'a Path,
}

impl<'a> CheckpointView<'a> {
    /// The checkpoint of `iteration` in `path`.
    pub fn new(iteration: u64, path: &'a Path) -> Self {
        Self { iteration, path }
    }
}

/// What a trial keeps when it goes back to an earlier point (a retry from its latest
/// checkpoint, or a resume): its results after these rows are void.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct KeptView<'a> {
    /// The results kept, flattened: `row_len` values each, as in [`ResultView::row`].
    pub rows: &'a [f64],
    /// Values per row (metrics + 4 automatic fields).
    pub row_len: usize,
    /// Whether the trial ended after its last kept row.
    pub last_done: bool,
    /// The checkpoints kept: (iteration, directory name).
    pub checkpoints: &'a [(u64, &'a str)],
}

impl<'a> KeptView<'a> {
    /// The kept rows, `row_len` values each, with no checkpoints.
    ///
    /// ```
    /// use tune_runtime::callback::KeptView;
    /// let rows = [0.5, 1.0, 0.1, 0.1, 1.7e9, 0.4, 2.0, 0.1, 0.2, 1.7e9];
    /// assert_eq!(KeptView::new(&rows, 5, false).len(), 2);
    /// ```
    pub fn new(rows: &'a [f64], row_len: usize, last_done: bool) -> Self {
        Self { rows, row_len, last_done, checkpoints: &[] }
    }

    /// The same, with the checkpoints kept.
    pub fn with_checkpoints(mut self, checkpoints: &'a [(u64, &'a str)]) -> Self {
        self.checkpoints = checkpoints;
        self
    }

    /// Number of rows kept.
    pub fn len(&self) -> usize {
        self.rows.len().checked_div(self.row_len).unwrap_or(0)
    }

    /// Whether no row is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each kept row as a result (`done` on the last one when the trial had ended, with
    /// the checkpoint written at its iteration).
    pub fn results(&self) -> impl Iterator<Item = ResultView<'a>> + '_ {
        let n = self.len();
        let width = self.row_len.max(1);
        // The checkpoint goes on the last kept row of its iteration.
        let mut last_row: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
        for (k, row) in self.rows.chunks_exact(width).enumerate() {
            last_row.insert(ResultView::new(row, false).training_iteration(), k);
        }
        self.rows.chunks_exact(width).enumerate().map(move |(k, row)| {
            let mut r = ResultView::new(row, self.last_done && k + 1 == n);
            let it = r.training_iteration();
            if last_row.get(&it) == Some(&k) {
                if let Some((_, name)) = self.checkpoints.iter().rev().find(|(i, _)| *i == it) {
                    r.checkpoint = Some(name);
                }
            }
            r
        })
    }
}

/// How the experiment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndKind {
    /// Every trial ended.
    Finished,
    /// Stopped early (Ctrl-C, a failed write): it can be resumed.
    Interrupted,
}

/// Code the runner calls on the events of an experiment. Every method has a default
/// that does nothing: implement the ones you need. See the [module docs](self).
///
/// For each trial the runner calls, in order: [`on_trial_start`](Callback::on_trial_start)
/// (again after every restore or unpause), [`on_trial_result`](Callback::on_trial_result)
/// for each result (after the checkpoint written at it, if any, was reported with
/// [`on_checkpoint`](Callback::on_checkpoint)), then
/// [`on_trial_complete`](Callback::on_trial_complete) or
/// [`on_trial_error`](Callback::on_trial_error). A trial that goes back to a checkpoint
/// (a retry, a resume) gets [`on_trial_reset`](Callback::on_trial_reset) with the rows it
/// keeps, then a new start.
pub trait Callback: Send {
    /// The experiment starts, or resumes.
    fn on_experiment_start(
        &mut self,
        experiment: &ExperimentView<'_>,
    ) -> Result<(), CallbackError> {
        let _ = experiment;
        Ok(())
    }

    /// A trial starts running: its first start, or after a restore or an unpause.
    fn on_trial_start(
        &mut self,
        trial: &TrialView<'_>,
        start: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (trial, start);
        Ok(())
    }

    /// A trial reported a result.
    fn on_trial_result(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (trial, result);
        Ok(())
    }

    /// A trial's checkpoint was written.
    fn on_checkpoint(
        &mut self,
        trial: &TrialView<'_>,
        checkpoint: &CheckpointView<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (trial, checkpoint);
        Ok(())
    }

    /// A trial ended normally (TERMINATED).
    fn on_trial_complete(&mut self, trial: &TrialView<'_>) -> Result<(), CallbackError> {
        let _ = trial;
        Ok(())
    }

    /// A trial ended in ERROR with this message.
    fn on_trial_error(&mut self, trial: &TrialView<'_>, error: &str) -> Result<(), CallbackError> {
        let _ = (trial, error);
        Ok(())
    }

    /// A trial went back to an earlier point: only `kept` of its results stand. Loggers
    /// that write files rewrite them from these rows.
    fn on_trial_reset(
        &mut self,
        trial: &TrialView<'_>,
        kept: &KeptView<'_>,
    ) -> Result<(), CallbackError> {
        let _ = (trial, kept);
        Ok(())
    }

    /// Write out what is buffered. Called every status tick, when a trial ends and at the
    /// end of the experiment.
    fn flush(&mut self) -> Result<(), CallbackError> {
        Ok(())
    }

    /// The experiment ended (after a last [`flush`](Callback::flush)).
    fn on_experiment_end(&mut self, end: EndKind) -> Result<(), CallbackError> {
        let _ = end;
        Ok(())
    }
}

/// The callbacks of an experiment, called in the order they were added: what the runner
/// owns and calls. Each event goes to every callback even when one fails; the first error
/// is returned.
///
/// ```
/// use tune_runtime::callback::{Callbacks, ResultView, TrialView};
/// let mut callbacks = Callbacks::new();
/// assert!(callbacks.is_empty());
/// let config = serde_json::json!({});
/// let trial = TrialView::new(0, "a_00000", None, &config);
/// // With none set, a result costs a length check.
/// callbacks.on_trial_result(&trial, &ResultView::new(&[1.0, 1.0, 0.1, 0.1, 0.0], false)).unwrap();
/// ```
#[derive(Default)]
pub struct Callbacks {
    list: Vec<Box<dyn Callback>>,
}

impl fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks").field("len", &self.list.len()).finish()
    }
}

macro_rules! dispatch {
    ($self:ident, $cb:ident => $call:expr) => {{
        let mut first = None;
        for $cb in $self.list.iter_mut() {
            if let Err(e) = $call {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }};
}

impl Callbacks {
    /// No callbacks.
    pub fn new() -> Self {
        Self { list: Vec::new() }
    }

    /// The built-in loggers: `result.json`, `progress.csv` and, with `tensorboard`,
    /// TensorBoard event files, in each trial's directory.
    pub fn builtin_loggers(tensorboard: bool) -> Self {
        let mut c = Self::new();
        c.push(crate::logger::JsonLogger::new());
        c.push(crate::logger::CsvLogger::new());
        if tensorboard {
            c.push(crate::logger::TensorBoardLogger::new());
        }
        c
    }

    /// Adds a callback, called after the ones added before.
    pub fn push(&mut self, callback: impl Callback + 'static) {
        self.list.push(Box::new(callback));
    }

    /// Adds a boxed callback.
    pub fn push_boxed(&mut self, callback: Box<dyn Callback>) {
        self.list.push(callback);
    }

    /// Moves every callback of `other` after these.
    pub fn append(&mut self, other: &mut Callbacks) {
        self.list.append(&mut other.list);
    }

    /// Whether there is none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of callbacks.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// See [`Callback::on_experiment_start`].
    pub fn on_experiment_start(&mut self, e: &ExperimentView<'_>) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_experiment_start(e))
    }

    /// See [`Callback::on_trial_start`].
    pub fn on_trial_start(
        &mut self,
        trial: &TrialView<'_>,
        start: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_trial_start(trial, start))
    }

    /// See [`Callback::on_trial_result`]. With no callback set this is a length check.
    #[inline]
    pub fn on_trial_result(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        if self.list.is_empty() {
            return Ok(());
        }
        dispatch!(self, cb => cb.on_trial_result(trial, result))
    }

    /// See [`Callback::on_checkpoint`].
    pub fn on_checkpoint(
        &mut self,
        trial: &TrialView<'_>,
        checkpoint: &CheckpointView<'_>,
    ) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_checkpoint(trial, checkpoint))
    }

    /// See [`Callback::on_trial_complete`].
    pub fn on_trial_complete(&mut self, trial: &TrialView<'_>) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_trial_complete(trial))
    }

    /// See [`Callback::on_trial_error`].
    pub fn on_trial_error(
        &mut self,
        trial: &TrialView<'_>,
        error: &str,
    ) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_trial_error(trial, error))
    }

    /// See [`Callback::on_trial_reset`].
    pub fn on_trial_reset(
        &mut self,
        trial: &TrialView<'_>,
        kept: &KeptView<'_>,
    ) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_trial_reset(trial, kept))
    }

    /// See [`Callback::flush`].
    pub fn flush(&mut self) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.flush())
    }

    /// See [`Callback::on_experiment_end`].
    pub fn on_experiment_end(&mut self, end: EndKind) -> Result<(), CallbackError> {
        dispatch!(self, cb => cb.on_experiment_end(end))
    }
}

/// What [`Tuner`](crate::Tuner) holds for the callbacks and the status table until the
/// runner takes it.
#[derive(Debug)]
pub(crate) struct ResultOptions {
    /// The user's callbacks, called after the built-in loggers.
    pub callbacks: Callbacks,
    /// Write TensorBoard event files (default true).
    pub tensorboard: bool,
    /// The metrics shown in the status table (all when `None`).
    pub metric_columns: Option<Vec<String>>,
    /// The hyperparameters shown in the status table (all when `None`).
    pub parameter_columns: Option<Vec<String>>,
}

impl Default for ResultOptions {
    fn default() -> Self {
        Self {
            callbacks: Callbacks::new(),
            tensorboard: true,
            metric_columns: None,
            parameter_columns: None,
        }
    }
}

impl ResultOptions {
    /// Checks `metric_columns` against the metric names; the error says what to change.
    #[allow(dead_code)] // Called by the driver once it is wired.
    pub fn validate(&self, metric_names: &[&str]) -> Result<(), String> {
        for c in self.metric_columns.iter().flatten() {
            if !metric_names.contains(&c.as_str()) {
                return Err(format!(
                    "`metric_columns` names `{c}`, which the trainable does not report; \
                     it reports: {}",
                    metric_names.join(", ")
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Record(Arc<Mutex<Vec<String>>>, bool);
    impl Callback for Record {
        fn on_trial_result(
            &mut self,
            t: &TrialView<'_>,
            r: &ResultView<'_>,
        ) -> Result<(), CallbackError> {
            self.0.lock().unwrap().push(format!("{} {}", t.id, r.training_iteration()));
            if self.1 { Err(CallbackError::new("sink", io::Error::other("down"))) } else { Ok(()) }
        }
    }

    #[test]
    fn every_callback_sees_the_event_and_the_first_error_is_returned() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut c = Callbacks::new();
        c.push(Record(Arc::clone(&seen), true));
        c.push(Record(Arc::clone(&seen), false));
        let config = serde_json::json!({});
        let t = TrialView::new(0, "x_00000", None, &config);
        let err =
            c.on_trial_result(&t, &ResultView::new(&[1.0, 7.0, 0.0, 0.0, 0.0], false)).unwrap_err();
        assert_eq!(err.path, Path::new("sink"));
        assert_eq!(*seen.lock().unwrap(), ["x_00000 7", "x_00000 7"]);
    }

    #[test]
    fn unknown_metric_columns_are_named() {
        let o = ResultOptions { metric_columns: Some(vec!["acc".into()]), ..Default::default() };
        assert!(o.validate(&["acc", "loss"]).is_ok());
        let e = o.validate(&["loss"]).unwrap_err();
        assert!(e.contains("`acc`") && e.contains("reports: loss"), "{e}");
    }

    #[test]
    fn kept_rows_carry_done_and_their_checkpoints() {
        // iteration 1, 2, then 2 again (after a rollback inside the kept rows).
        let rows = [0.1, 1.0, 0.0, 0.0, 0.0, 0.2, 2.0, 0.0, 0.0, 0.0, 0.3, 2.0, 0.0, 0.0, 0.0];
        let cps = [(2, "checkpoint_000002")];
        let kept = KeptView::new(&rows, 5, true).with_checkpoints(&cps);
        let r: Vec<_> =
            kept.results().map(|r| (r.training_iteration(), r.done, r.checkpoint)).collect();
        assert_eq!(r, [(1, false, None), (2, false, None), (2, true, Some("checkpoint_000002"))]);
    }
}
