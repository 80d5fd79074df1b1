//! The analysis of an experiment: returned by [`Tuner::run`](crate::Tuner::run) and
//! loadable from an experiment directory with [`Analysis::from_dir`].

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub use crate::journal::CheckpointInfo;
use crate::journal::{ExperimentLog, JOURNAL_FILE, JournalError, JournalStore, TrialLog};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{Auto, Key, Mode, ResultRow, Scope, TrialId, TrialStatus, row_len};

/// Everything recorded about one trial.
pub struct TrialInfo<C, M> {
    pub(crate) id: TrialId,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) config: C,
    pub(crate) status: TrialStatus,
    pub(crate) error: Option<String>,
    /// Result rows, flattened: `row_len::<M>()` values per result.
    pub(crate) history: Vec<f64>,
    pub(crate) checkpoints: Vec<CheckpointInfo>,
    /// The errors of failed attempts that were retried (`max_failures`), oldest first.
    pub(crate) failures: Vec<String>,
    pub(crate) _m: PhantomData<fn() -> M>,
}

impl<C: fmt::Debug, M: Metrics> fmt::Debug for TrialInfo<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrialInfo")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("config", &self.config)
            .field("results", &(self.history.len() / row_len::<M>()))
            .field("error", &self.error)
            .finish()
    }
}

impl<C: Space, M: Metrics> TrialInfo<C, M> {
    #[cfg(test)]
    pub(crate) fn new(id: TrialId, dir: Option<PathBuf>, config: C) -> Self {
        Self {
            id,
            dir,
            config,
            status: TrialStatus::Pending,
            error: None,
            history: Vec::new(),
            checkpoints: Vec::new(),
            failures: Vec::new(),
            _m: PhantomData,
        }
    }

    /// The typed view of a trial the journal fold produced.
    pub(crate) fn from_log(log: TrialLog<C>) -> Self {
        Self {
            id: TrialId(log.index),
            dir: log.dir,
            config: log.config,
            status: log.status,
            error: log.error,
            history: log.history,
            checkpoints: log.checkpoints,
            failures: log.failures,
            _m: PhantomData,
        }
    }

    /// The errors of the failed attempts that were retried from a checkpoint
    /// (`Tuner::max_failures`), oldest first. The error that ended an `ERROR` trial is
    /// [`TrialInfo::error`].
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// The trial's id.
    pub fn id(&self) -> TrialId {
        self.id
    }

    /// The trial's directory (`None` when file logging was off).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The trial's config.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// The trial's final (or current) status.
    pub fn status(&self) -> TrialStatus {
        self.status
    }

    /// The error that ended the trial, for `ERROR` trials.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Number of results the trial reported.
    pub fn num_results(&self) -> usize {
        self.history.len() / row_len::<M>()
    }

    /// Every result, in order.
    pub fn results(&self) -> impl ExactSizeIterator<Item = ResultRow<'_, M>> + '_ {
        self.history.chunks_exact(row_len::<M>()).map(ResultRow::new)
    }

    /// The last result.
    pub fn last_result(&self) -> Option<ResultRow<'_, M>> {
        self.results().last()
    }

    /// The checkpoints that still exist, oldest first.
    pub fn checkpoints(&self) -> &[CheckpointInfo] {
        &self.checkpoints
    }

    /// The result the trial reported just before writing `checkpoint` (the one at its
    /// iteration): what the state in it scored. `None` for a checkpoint that is not one of
    /// this trial's, and for a copy of another trial's checkpoint taken by a PBT exploit,
    /// which none of this trial's results describes (even when the iterations match).
    pub fn checkpoint_result(&self, checkpoint: &CheckpointInfo) -> Option<ResultRow<'_, M>> {
        if checkpoint.copied || !self.checkpoints.contains(checkpoint) {
            return None;
        }
        let row = self.results().nth(checkpoint.rows.checked_sub(1)?)?;
        (row.training_iteration() == checkpoint.iteration).then_some(row)
    }

    /// The trial's checkpoint whose result ([`TrialInfo::checkpoint_result`]) scores best
    /// for `key` and `mode`, with that result; the newer one on a tie. Checkpoints without
    /// a result of their own (PBT copies) are not ranked.
    pub fn best_checkpoint(
        &self,
        key: impl Into<Key<M>>,
        mode: Mode,
    ) -> Option<(&CheckpointInfo, ResultRow<'_, M>)> {
        let key = key.into();
        self.checkpoints
            .iter()
            .filter_map(|c| self.checkpoint_result(c).map(|r| (c, r)))
            .filter(|(_, r)| !r.get(key).is_nan())
            .reduce(|a, b| if mode.better(a.1.get(key), b.1.get(key)) { a } else { b })
    }

    /// The trial's score for `key` in `scope`: the last value, the best one (by `mode`),
    /// or the average of the last `k`. `None` without results.
    pub fn score(&self, key: impl Into<Key<M>>, mode: Mode, scope: Scope) -> Option<f64> {
        let key = key.into();
        let values = self.results().map(|r| r.get(key));
        match scope {
            Scope::Last => values.last(),
            Scope::All => values.reduce(|a, b| if mode.better(b, a) { b } else { a }),
            Scope::LastAvg(k) => {
                let n = self.num_results();
                let k = k.max(1).min(n);
                (k > 0)
                    .then(|| self.results().skip(n - k).map(|r| r.get(key)).sum::<f64>() / k as f64)
            }
        }
    }

    /// The result that `scope` picks: the last one, or the best by `key` and `mode`.
    fn pick(&self, key: Key<M>, mode: Mode, scope: Scope) -> Option<ResultRow<'_, M>> {
        match scope {
            Scope::All => self
                .results()
                .reduce(|a, b| if mode.better(b.get(key), a.get(key)) { b } else { a }),
            Scope::Last | Scope::LastAvg(_) => self.last_result(),
        }
    }
}

/// A table of trials: one row per trial, config columns then result columns. Cells are
/// rendered as text; [`Table::to_csv`] exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names: `trial_id`, `status`, `config/<field>`..., then result fields.
    pub columns: Vec<String>,
    /// One row per trial.
    pub rows: Vec<Vec<String>>,
}

fn csv_field(s: &str, out: &mut String) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

impl Table {
    /// The table as CSV text (RFC 4180 quoting), header first.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for row in std::iter::once(&self.columns).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(cell, &mut out);
            }
            out.push('\n');
        }
        out
    }

    /// Writes [`Table::to_csv`] to `path`.
    pub fn write_csv(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_csv())
    }
}

/// Which result of each trial fills the table's result columns.
#[derive(Debug)]
pub enum Rows<M> {
    /// The last result.
    Last,
    /// The best result by a key and mode.
    Best(Key<M>, Mode),
}

/// An error loading an experiment with [`Analysis::from_dir`].
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The journal cannot be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The journal was written for other metrics.
    #[error(
        "the experiment reports metrics [{found}] but the analysis was asked for [{expected}]; \
         load it with the metrics type of the trainable that ran it"
    )]
    Metrics {
        /// Names in the journal.
        found: String,
        /// Names of the requested type.
        expected: String,
    },
    /// A trial's config does not parse as the requested config type.
    #[error("trial {trial}: {message}; load it with the config type of the trainable that ran it")]
    Config {
        /// The trial id.
        trial: String,
        /// What is wrong.
        message: String,
    },
    /// The journal holds no experiment (it is empty).
    #[error("`{}` holds no experiment: its journal is empty", .0.display())]
    Empty(PathBuf),
    /// The shared journal could not be opened (the database is unreachable).
    #[error("cannot open the shared experiment: {0}")]
    Shared(String),
}

/// The outcome of an experiment: every trial with its config, status and results.
///
/// ```no_run
/// # use tune_runtime::prelude::*;
/// # search_space! { pub struct MyConfig { lr: f64 = loguniform(1e-4, 1e-1) } }
/// # #[derive(Debug, Clone, Metrics)] pub struct MyMetrics { accuracy: f64, loss: f64 }
/// # #[trainable(config = MyConfig, metrics = MyMetrics)] pub struct MyTrainable { lr: f64 }
/// # impl Trainable for MyTrainable {
/// #     fn setup(c: &MyConfig, _: &TrialContext) -> TrainResult<Self> { Ok(Self { lr: c.lr }) }
/// #     fn step(&mut self) -> TrainResult<MyMetrics> { Ok(MyMetrics { accuracy: self.lr, loss: 1.0 - self.lr }) }
/// # }
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let tuner = Tuner::<MyTrainable>::new();
/// let analysis = tuner.run()?;
/// let best = analysis.best_config(MyMetrics::LOSS, Mode::Min, Scope::Last);
/// analysis.table(Rows::Last).write_csv("trials.csv")?;
/// for t in analysis.errored_trials() { eprintln!("{}: {}", t.id(), t.error().unwrap_or("")); }
/// # Ok(()) }
/// ```
pub struct Analysis<C, M> {
    pub(crate) experiment_dir: PathBuf,
    pub(crate) trials: Vec<TrialInfo<C, M>>,
}

impl<C: fmt::Debug, M: Metrics> fmt::Debug for Analysis<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Analysis")
            .field("experiment_dir", &self.experiment_dir)
            .field("trials", &self.trials)
            .finish()
    }
}

impl<C: Space, M: Metrics> Analysis<C, M> {
    /// Loads an experiment from its directory (the one holding `experiment_journal.jsonl`),
    /// finished or interrupted.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, AnalysisError> {
        let dir = dir.as_ref();
        let path = dir.join(JOURNAL_FILE);
        let mut failed = None;
        let log = crate::journal::fold_file(&path, dir, false, &mut decoder::<C>(&mut failed));
        Self::from_log(log, failed, dir)
    }

    /// Loads an experiment whose journal lives in `store` (a custom [`JournalStore`]);
    /// `dir` is the experiment directory its trial and checkpoint paths are relative to.
    pub fn from_store(
        store: &mut dyn JournalStore,
        dir: impl AsRef<Path>,
    ) -> Result<Self, AnalysisError> {
        let dir = dir.as_ref();
        let mut failed = None;
        let log = crate::journal::fold_store(store, dir, false, &mut decoder::<C>(&mut failed));
        Self::from_log(log, failed, dir)
    }

    /// Loads an experiment from a journal shared by several processes (a PostgreSQL
    /// journal): what it holds now, finished or still running. `dir` is the experiment's
    /// local directory its checkpoint paths are relative to.
    pub fn from_shared(
        journal: &mut dyn crate::journal::shared::SharedJournal,
        dir: impl AsRef<Path>,
    ) -> Result<Self, AnalysisError> {
        let dir = dir.as_ref();
        let mut failed = None;
        let log = crate::journal::fold_shared(journal, dir, false, &mut decoder::<C>(&mut failed))
            .map(|(log, _)| log);
        Self::from_log(log, failed, dir)
    }

    /// Loads experiment `experiment` from the PostgreSQL database at `url` (feature
    /// `postgres`; see `docs/distributed.md`): what it holds now, finished or still running.
    /// Creates nothing: an experiment the database does not hold is an error. `dir` is the
    /// experiment's local directory (`local_dir/experiment` of the run) its checkpoint paths
    /// are relative to.
    #[cfg(feature = "postgres")]
    pub fn from_postgres(
        url: &str,
        experiment: &str,
        dir: impl AsRef<Path>,
    ) -> Result<Self, AnalysisError> {
        let mut journal = crate::journal::shared::PostgresJournal::open_existing(url, experiment)
            .map_err(|e| AnalysisError::Shared(e.to_string()))?;
        Self::from_shared(&mut journal, dir)
    }

    fn from_log(
        log: Result<ExperimentLog<C>, JournalError>,
        failed: Option<(u32, String)>,
        dir: &Path,
    ) -> Result<Self, AnalysisError> {
        if let Some((trial, message)) = failed {
            return Err(AnalysisError::Config { trial: TrialId(trial).to_string(), message });
        }
        let log = log?;
        let Some(header) = &log.header else { return Err(AnalysisError::Empty(dir.to_path_buf())) };
        if header.metrics.iter().map(String::as_str).ne(M::NAMES.iter().copied()) {
            return Err(AnalysisError::Metrics {
                found: header.metrics.join(", "),
                expected: M::NAMES.join(", "),
            });
        }
        let trials = log.trials.into_iter().map(TrialInfo::from_log).collect();
        Ok(Self { experiment_dir: dir.to_path_buf(), trials })
    }

    /// The experiment directory.
    pub fn experiment_dir(&self) -> &Path {
        &self.experiment_dir
    }

    /// Every trial, in creation order.
    pub fn trials(&self) -> &[TrialInfo<C, M>] {
        &self.trials
    }

    /// The trial with this id.
    pub fn trial(&self, id: TrialId) -> Option<&TrialInfo<C, M>> {
        self.trials.get(id.index()).filter(|t| t.id == id)
    }

    /// The trials that ended in `ERROR`, with their messages in [`TrialInfo::error`].
    pub fn errored_trials(&self) -> Vec<&TrialInfo<C, M>> {
        self.trials.iter().filter(|t| t.status == TrialStatus::Error).collect()
    }

    /// Number of trials with each status.
    pub fn count(&self, status: TrialStatus) -> usize {
        self.trials.iter().filter(|t| t.status == status).count()
    }

    /// The trial with the best score for `key` in `scope` (trials without results are
    /// skipped; ties go to the earlier trial).
    pub fn best_trial(
        &self,
        key: impl Into<Key<M>>,
        mode: Mode,
        scope: Scope,
    ) -> Option<&TrialInfo<C, M>> {
        let key = key.into();
        let mut best: Option<(&TrialInfo<C, M>, f64)> = None;
        for t in &self.trials {
            let Some(s) = t.score(key, mode, scope) else { continue };
            if s.is_nan() {
                continue;
            }
            if best.is_none_or(|(_, b)| mode.better(s, b)) {
                best = Some((t, s));
            }
        }
        best.map(|(t, _)| t)
    }

    /// The config of [`Analysis::best_trial`], as the typed config struct.
    pub fn best_config(&self, key: impl Into<Key<M>>, mode: Mode, scope: Scope) -> Option<&C> {
        self.best_trial(key, mode, scope).map(|t| &t.config)
    }

    /// The result of [`Analysis::best_trial`] that `scope` looks at: its last result, or
    /// its best one for [`Scope::All`].
    pub fn best_result(
        &self,
        key: impl Into<Key<M>>,
        mode: Mode,
        scope: Scope,
    ) -> Option<ResultRow<'_, M>> {
        let key = key.into();
        self.best_trial(key, mode, scope).and_then(|t| t.pick(key, mode, scope))
    }

    /// The best checkpoint of [`Analysis::best_trial`]: the one whose result scores best
    /// for `key` and `mode` ([`TrialInfo::best_checkpoint`], which also gives that result
    /// and the checkpoint's iteration).
    pub fn best_checkpoint(
        &self,
        key: impl Into<Key<M>>,
        mode: Mode,
        scope: Scope,
    ) -> Option<&Path> {
        let key = key.into();
        let t = self.best_trial(key, mode, scope)?;
        t.best_checkpoint(key, mode).map(|(c, _)| c.path.as_path())
    }

    /// One row per trial: id, status, config fields (nested fields as `a.b`), then the
    /// result fields of the result `rows` picks.
    ///
    /// The config columns are those of every trial: with an enum hyperparameter, each
    /// variant's fields get columns (`config/opt.Adam.beta1`), empty for trials of another
    /// variant, and the enum's own column (`config/opt`) names the variant a trial used.
    pub fn table(&self, rows: Rows<M>) -> Table {
        let selectors = enum_selectors::<C>();
        let mut config_keys: Vec<String> = Vec::new();
        let configs: Vec<Vec<(String, String)>> = self
            .trials
            .iter()
            .map(|t| {
                let mut cells = Vec::new();
                flatten(&t.config.to_json_value(), "", &selectors, &mut |k, v| cells.push((k, v)));
                for (k, _) in &cells {
                    if !config_keys.contains(k) {
                        insert_column(&mut config_keys, k.clone());
                    }
                }
                cells
            })
            .collect();
        let mut columns = vec!["trial_id".to_string(), "status".to_string()];
        columns.extend(config_keys.iter().map(|k| format!("config/{k}")));
        columns.extend(M::NAMES.iter().map(|s| s.to_string()));
        columns.extend(Auto::ALL.iter().map(|a| a.name().to_string()));
        let rows = self
            .trials
            .iter()
            .zip(configs)
            .map(|(t, cells)| {
                let mut row = vec![t.id.to_string(), t.status.to_string()];
                let mut cells: std::collections::HashMap<String, String> =
                    cells.into_iter().collect();
                row.extend(config_keys.iter().map(|k| cells.remove(k).unwrap_or_default()));
                let picked = match &rows {
                    Rows::Last => t.last_result(),
                    Rows::Best(k, m) => t.pick(*k, *m, Scope::All),
                };
                match picked {
                    Some(r) => row.extend(r.values().iter().map(|v| v.to_string())),
                    None => row.extend(std::iter::repeat_n(String::new(), row_len::<M>())),
                }
                row
            })
            .collect();
        Table { columns, rows }
    }
}

/// The enum fields of the config space, by dotted path, with their variants: the
/// categorical dimensions that other dimensions depend on (an enum's variant selector).
fn enum_selectors<C: Space>() -> Vec<(String, Vec<String>)> {
    let dims = C::dims();
    dims.iter()
        .enumerate()
        .filter(|(i, _)| dims.iter().any(|d| d.condition.is_some_and(|c| c.dim == *i)))
        .filter_map(|(_, d)| match &d.kind {
            crate::space::DimKind::Categorical { choices } => {
                Some((d.name.clone(), choices.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Inserts a config column that earlier trials did not have (another enum variant's
/// field) after the last column it shares the longest path prefix with, so that a
/// variant's fields stay beside the enum's other fields; at the end when it shares none.
fn insert_column(keys: &mut Vec<String>, key: String) {
    let shared = |k: &str| k.split('.').zip(key.split('.')).take_while(|(a, b)| a == b).count();
    let best = keys.iter().map(|k| shared(k)).max().unwrap_or(0);
    let at = match best {
        0 => keys.len(),
        _ => keys.iter().rposition(|k| shared(k) == best).map_or(keys.len(), |p| p + 1),
    };
    keys.insert(at, key);
}

/// A config decoder for the fold that remembers the first failure, so that it is reported
/// as a config error (with the trial) rather than as a corrupt journal.
fn decoder<C: Space>(
    failed: &mut Option<(u32, String)>,
) -> impl FnMut(u32, serde_json::Value) -> Result<C, String> + '_ {
    move |trial, value| {
        C::from_json_value(value).map_err(|e| {
            let message = e.to_string();
            failed.get_or_insert((trial, message.clone()));
            message
        })
    }
}

/// Calls `f` with every leaf of a config's JSON by dotted path. An enum field
/// (`selectors`) gets a cell of its own with the variant's name, whether the variant is
/// a plain string (`"Plain"`) or an object with the variant's fields (`{"Adam": {..}}`).
fn flatten(
    v: &serde_json::Value,
    prefix: &str,
    selectors: &[(String, Vec<String>)],
    f: &mut impl FnMut(String, String),
) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some((_, variants)) = selectors.iter().find(|(name, _)| name == prefix) {
                if let Some((variant, _)) = map.iter().next().filter(|_| map.len() == 1) {
                    if variants.contains(variant) {
                        f(prefix.to_string(), variant.clone());
                    }
                }
            }
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, &key, selectors, f);
            }
        }
        serde_json::Value::String(s) => f(prefix.to_string(), s.clone()),
        other => f(prefix.to_string(), other.to_string()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, SCORE, Score};

    fn trial(i: u32, scores: &[f64]) -> TrialInfo<Cfg, Score> {
        let mut t = TrialInfo::new(TrialId(i), None, Cfg { x: 0.5, k: i as i64 + 1 });
        for (n, s) in scores.iter().enumerate() {
            t.history.extend_from_slice(&[*s, n as f64 + 1.0, 0.1, 0.1 * (n as f64 + 1.0), 0.0]);
        }
        t.status = TrialStatus::Terminated;
        t
    }

    /// A PBT exploit copies another trial's checkpoint at iteration 2 after this trial
    /// reported its own (great) result at iteration 2: the copy is not ranked by that
    /// result, which another state scored. Before, `best_checkpoint` took the first result
    /// at the copy's iteration and returned the copy.
    #[test]
    fn a_checkpoint_is_ranked_by_its_own_result_and_pbt_copies_by_none() {
        let mut t = trial(0, &[5.0, 9.0, 6.0, 7.0]);
        let ckpt = |iteration: u64, rows: usize, epoch: usize, copied: bool| CheckpointInfo {
            iteration,
            path: PathBuf::from(format!("c{iteration}-{copied}")),
            rows,
            epoch,
            copied,
        };
        t.checkpoints = vec![ckpt(1, 1, 0, false), ckpt(2, 2, 1, true), ckpt(4, 4, 1, false)];
        let [own1, copy, own4] = [0, 1, 2].map(|i| t.checkpoints[i].clone());
        assert_eq!(t.checkpoint_result(&own1).unwrap().get(SCORE), 5.0);
        assert_eq!(t.checkpoint_result(&own4).unwrap().get(SCORE), 7.0);
        assert!(t.checkpoint_result(&copy).is_none());
        // Not one of this trial's checkpoints.
        assert!(t.checkpoint_result(&ckpt(3, 3, 1, false)).is_none());
        let (best, result) = t.best_checkpoint(SCORE, Mode::Max).unwrap();
        assert_eq!((best.iteration, result.get(SCORE)), (4, 7.0));
        let (worst, _) = t.best_checkpoint(SCORE, Mode::Min).unwrap();
        assert_eq!(worst.iteration, 1);
        let a = Analysis { experiment_dir: PathBuf::new(), trials: vec![t] };
        assert_eq!(a.best_checkpoint(SCORE, Mode::Max, Scope::All), Some(own4.path.as_path()));
        // A checkpoint whose result's iteration is another (rows that do not match) is
        // not ranked either.
        let mut odd = trial(1, &[1.0, 2.0]);
        odd.checkpoints = vec![ckpt(5, 2, 0, false)];
        assert!(odd.best_checkpoint(SCORE, Mode::Max).is_none());
    }

    #[test]
    fn best_by_scope_and_mode() {
        let a = Analysis {
            experiment_dir: PathBuf::new(),
            trials: vec![trial(0, &[1.0, 9.0, 2.0]), trial(1, &[3.0, 3.0, 3.0])],
        };
        assert_eq!(a.best_trial(SCORE, Mode::Max, Scope::Last).unwrap().id(), TrialId(1));
        assert_eq!(a.best_trial(SCORE, Mode::Max, Scope::All).unwrap().id(), TrialId(0));
        assert_eq!(a.best_trial(SCORE, Mode::Max, Scope::LastAvg(2)).unwrap().id(), TrialId(0));
        assert_eq!(a.best_trial(SCORE, Mode::Min, Scope::All).unwrap().id(), TrialId(0));
        assert_eq!(a.best_result(SCORE, Mode::Max, Scope::All).unwrap().get(SCORE), 9.0);
        assert_eq!(a.best_config(SCORE, Mode::Max, Scope::Last).unwrap().k, 2);
        let table = a.table(Rows::Last);
        assert_eq!(table.columns[..5], ["trial_id", "status", "config/k", "config/x", "score"]);
        assert_eq!(table.rows[0][4], "2");
        assert!(
            table
                .to_csv()
                .starts_with("trial_id,status,config/k,config/x,score,training_iteration")
        );
    }
}
