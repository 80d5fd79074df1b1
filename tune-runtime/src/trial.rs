//! Trials and their results: ids, statuses, the automatic result fields and metric keys.

use std::fmt;
use std::marker::PhantomData;

use crate::metrics::{Metric, Metrics};

/// The id of a trial, unique in its experiment: its creation index, shown as `00042`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrialId(pub(crate) u32);

impl TrialId {
    /// The id of the trial created `index`-th; for driving a searcher or scheduler outside
    /// the runner (tests, benchmarks).
    pub fn new(index: u32) -> Self {
        Self(index)
    }

    /// The trial's creation index (0 for the first trial of the experiment).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for TrialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:05}", self.0)
    }
}

/// The lifecycle state of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TrialStatus {
    /// Created, waiting for resources.
    Pending,
    /// Holding resources and being stepped.
    Running,
    /// Stopped for now by the scheduler; its instance is kept and it may resume.
    Paused,
    /// Ended normally (a stop criterion, the scheduler, the time budget, or the trainable
    /// finished).
    Terminated,
    /// Ended by an error or a panic; see the trial's `error.txt`.
    Error,
}

impl TrialStatus {
    /// The name shown in the status table and written to the journal (`RUNNING`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Terminated => "TERMINATED",
            Self::Error => "ERROR",
        }
    }

    /// Whether the trial has ended (terminated or errored).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Terminated | Self::Error)
    }
}

impl fmt::Display for TrialStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The automatic fields the runner adds to every result, next to the typed metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auto {
    /// Number of `step` calls so far, counting from 1 (continues after a restore).
    TrainingIteration,
    /// Seconds spent in this `step`.
    TimeThisIterS,
    /// Seconds spent in all `step`s of the trial so far.
    TimeTotalS,
    /// Unix time (seconds) when the result was received.
    Timestamp,
}

impl Auto {
    /// Every automatic field, in the order they follow the metrics in a result row.
    pub const ALL: [Auto; 4] =
        [Auto::TrainingIteration, Auto::TimeThisIterS, Auto::TimeTotalS, Auto::Timestamp];

    /// The field's name in `result.json` and `progress.csv`.
    pub const fn name(self) -> &'static str {
        match self {
            Auto::TrainingIteration => "training_iteration",
            Auto::TimeThisIterS => "time_this_iter_s",
            Auto::TimeTotalS => "time_total_s",
            Auto::Timestamp => "timestamp",
        }
    }

    pub(crate) const fn offset(self) -> usize {
        match self {
            Auto::TrainingIteration => 0,
            Auto::TimeThisIterS => 1,
            Auto::TimeTotalS => 2,
            Auto::Timestamp => 3,
        }
    }
}

/// A field of a result that criteria and analysis can name: a typed metric or an
/// automatic field. Both convert into it, so APIs take `impl Into<Key<M>>`:
/// `Stop::at_least(MyMetrics::ACCURACY, 0.9)` or `Stop::at_least(Auto::TimeTotalS, 60.0)`.
pub enum Key<M> {
    /// A field of the metrics struct.
    Metric(Metric<M>),
    /// An automatic field.
    Auto(Auto),
}

impl<M> Clone for Key<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Key<M> {}
impl<M> PartialEq for Key<M> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Key::Metric(a), Key::Metric(b)) => a == b,
            (Key::Auto(a), Key::Auto(b)) => a == b,
            _ => false,
        }
    }
}
impl<M> fmt::Debug for Key<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<M> From<Metric<M>> for Key<M> {
    fn from(m: Metric<M>) -> Self {
        Key::Metric(m)
    }
}
impl<M> From<Auto> for Key<M> {
    fn from(a: Auto) -> Self {
        Key::Auto(a)
    }
}

impl<M> Key<M> {
    /// The field's name.
    pub fn name(&self) -> &'static str {
        match self {
            Key::Metric(m) => m.name(),
            Key::Auto(a) => a.name(),
        }
    }
}

impl<M: Metrics> Key<M> {
    /// Position of the field in a result row (metrics first, then [`Auto::ALL`]).
    pub(crate) fn column(&self) -> usize {
        match self {
            Key::Metric(m) => m.index(),
            Key::Auto(a) => M::NAMES.len() + a.offset(),
        }
    }

    /// The key whose name is `name`, if the metrics or the automatic fields have one.
    pub fn by_name(name: &str) -> Option<Self> {
        if let Some(i) = M::NAMES.iter().position(|n| *n == name) {
            return Some(Key::Metric(Metric::new(i, M::NAMES[i])));
        }
        Auto::ALL.into_iter().find(|a| a.name() == name).map(Key::Auto)
    }
}

/// Number of values in a result row of `M`: the metrics then the automatic fields.
pub(crate) const fn row_len<M: Metrics>() -> usize {
    M::NAMES.len() + Auto::ALL.len()
}

/// One result of a trial as the runner sees it live: the typed metrics and the automatic
/// fields. Stop criteria, schedulers and searchers receive it.
#[derive(Debug, Clone)]
pub struct TrialResult<M> {
    /// The metrics returned by `step`.
    pub metrics: M,
    /// The trial that reported it.
    pub trial_id: TrialId,
    /// Number of steps so far, from 1.
    pub training_iteration: u64,
    /// Seconds spent in this step.
    pub time_this_iter_s: f64,
    /// Seconds spent in all steps so far.
    pub time_total_s: f64,
    /// Unix time in seconds.
    pub timestamp: u64,
    /// Whether this is the trial's last result. Criteria see `false`; the value written to
    /// disk says whether the trial stopped after it.
    pub done: bool,
}

impl<M: Metrics> TrialResult<M> {
    /// The value of a metric or automatic field.
    pub fn get(&self, key: impl Into<Key<M>>) -> f64 {
        match key.into() {
            Key::Metric(m) => m.get(&self.metrics),
            Key::Auto(Auto::TrainingIteration) => self.training_iteration as f64,
            Key::Auto(Auto::TimeThisIterS) => self.time_this_iter_s,
            Key::Auto(Auto::TimeTotalS) => self.time_total_s,
            Key::Auto(Auto::Timestamp) => self.timestamp as f64,
        }
    }

    pub(crate) fn write_row(&self, row: &mut Vec<f64>) {
        for i in 0..M::NAMES.len() {
            row.push(self.metrics.value(i));
        }
        row.push(self.training_iteration as f64);
        row.push(self.time_this_iter_s);
        row.push(self.time_total_s);
        row.push(self.timestamp as f64);
    }
}

/// A recorded result: a view on one row of a trial's history (in memory, or loaded from
/// an experiment directory). Values are `f64`s in the order of `M::NAMES`, then
/// [`Auto::ALL`].
pub struct ResultRow<'a, M> {
    values: &'a [f64],
    _m: PhantomData<fn() -> M>,
}

impl<M> Clone for ResultRow<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for ResultRow<'_, M> {}

impl<'a, M: Metrics> ResultRow<'a, M> {
    pub(crate) fn new(values: &'a [f64]) -> Self {
        Self { values, _m: PhantomData }
    }

    /// The value of a metric or automatic field.
    pub fn get(&self, key: impl Into<Key<M>>) -> f64 {
        self.values[key.into().column()]
    }

    /// The training iteration of this result.
    pub fn training_iteration(&self) -> u64 {
        self.get(Auto::TrainingIteration) as u64
    }

    /// Seconds spent in all steps up to this result.
    pub fn time_total_s(&self) -> f64 {
        self.get(Auto::TimeTotalS)
    }

    /// Every value, metrics first, then the automatic fields.
    pub fn values(&self) -> &'a [f64] {
        self.values
    }

    /// `(name, value)` for every field.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + 'a {
        M::NAMES
            .iter()
            .copied()
            .chain(Auto::ALL.iter().map(|a| a.name()))
            .zip(self.values.iter().copied())
    }
}

impl<M: Metrics> fmt::Debug for ResultRow<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Whether a smaller or a larger value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Smaller is better (losses, errors).
    Min,
    /// Larger is better (accuracies, rewards).
    Max,
}

impl Mode {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Mode::Min => a < b,
            Mode::Max => a > b,
        }
    }
}

/// Which results of a trial count when comparing trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The last result.
    Last,
    /// The best result the trial ever reported.
    All,
    /// The average of the last `k` results.
    LastAvg(usize),
}
