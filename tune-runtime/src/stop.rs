//! Stop criteria: when a trial has trained enough.

use std::fmt;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::trial::{Auto, Key, TrialResult};

type StopFn<M> = Box<dyn FnMut(&TrialResult<M>) -> bool + Send>;

/// When to stop a trial, checked by the runner after every result.
///
/// Criteria combine with [`Stop::and`] and [`Stop::or`]:
///
/// ```
/// # use tune_runtime::{Metrics, Stop};
/// # #[derive(Debug, Clone, Metrics)] struct MyMetrics { accuracy: f64 }
/// use std::time::Duration;
/// let stop = Stop::iterations(100)
///     .or(Stop::at_least(MyMetrics::ACCURACY, 0.95))
///     .or(Stop::time_total(Duration::from_secs(60)));
/// ```
pub struct Stop<M> {
    kind: Kind<M>,
}

enum Kind<M> {
    Never,
    Iterations(u64),
    TimeTotal(f64),
    AtLeast(Key<M>, f64),
    AtMost(Key<M>, f64),
    Named { name: String, value: f64, at_least: bool },
    When(StopFn<M>),
    All(Vec<Stop<M>>),
    Any(Vec<Stop<M>>),
}

impl<M> fmt::Debug for Stop<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Never => f.write_str("never"),
            Kind::Iterations(n) => write!(f, "training_iteration >= {n}"),
            Kind::TimeTotal(s) => write!(f, "time_total_s >= {s}"),
            Kind::AtLeast(k, v) => write!(f, "{} >= {v}", k.name()),
            Kind::AtMost(k, v) => write!(f, "{} <= {v}", k.name()),
            Kind::Named { name, value, at_least } => {
                write!(f, "{name} {} {value}", if *at_least { ">=" } else { "<=" })
            }
            Kind::When(_) => f.write_str("<closure>"),
            Kind::All(v) => f.debug_tuple("all").field(v).finish(),
            Kind::Any(v) => f.debug_tuple("any").field(v).finish(),
        }
    }
}

impl<M> Default for Stop<M> {
    fn default() -> Self {
        Self { kind: Kind::Never }
    }
}

impl<M: Metrics> Stop<M> {
    /// Never stops: the trial runs until the trainable finishes, the scheduler stops it or
    /// the experiment's time budget runs out.
    pub fn never() -> Self {
        Self { kind: Kind::Never }
    }

    /// Stops after `n` training iterations (the result with `training_iteration == n`
    /// is the last).
    pub fn iterations(n: u64) -> Self {
        Self { kind: Kind::Iterations(n) }
    }

    /// Stops once the trial's total training time reaches `limit`.
    pub fn time_total(limit: Duration) -> Self {
        Self { kind: Kind::TimeTotal(limit.as_secs_f64()) }
    }

    /// Stops once `key` is at least `value` (Ray Tune's `stop={"metric": value}`).
    pub fn at_least(key: impl Into<Key<M>>, value: f64) -> Self {
        Self { kind: Kind::AtLeast(key.into(), value) }
    }

    /// Stops once `key` is at most `value`.
    pub fn at_most(key: impl Into<Key<M>>, value: f64) -> Self {
        Self { kind: Kind::AtMost(key.into(), value) }
    }

    /// Stops once the field named `name` is at least `value`. For names that come from
    /// outside the program (a config file); the name is checked when the run starts.
    pub fn named_at_least(name: impl Into<String>, value: f64) -> Self {
        Self { kind: Kind::Named { name: name.into(), value, at_least: true } }
    }

    /// Stops once the field named `name` is at most `value`; see [`Stop::named_at_least`].
    pub fn named_at_most(name: impl Into<String>, value: f64) -> Self {
        Self { kind: Kind::Named { name: name.into(), value, at_least: false } }
    }

    /// Stops when `f` returns `true` for a result.
    pub fn when(f: impl FnMut(&TrialResult<M>) -> bool + Send + 'static) -> Self {
        Self { kind: Kind::When(Box::new(f)) }
    }

    /// Stops when both criteria hold.
    pub fn and(self, other: Stop<M>) -> Self {
        match self.kind {
            Kind::All(mut v) => {
                v.push(other);
                Self { kind: Kind::All(v) }
            }
            _ => Self { kind: Kind::All(vec![self, other]) },
        }
    }

    /// Stops when either criterion holds.
    pub fn or(self, other: Stop<M>) -> Self {
        match self.kind {
            Kind::Any(mut v) => {
                v.push(other);
                Self { kind: Kind::Any(v) }
            }
            _ => Self { kind: Kind::Any(vec![self, other]) },
        }
    }

    /// Resolves names to keys; the error names the unknown field and the known ones.
    pub(crate) fn resolve(&mut self) -> Result<(), String> {
        match &mut self.kind {
            Kind::Named { name, value, at_least } => {
                let Some(key) = Key::<M>::by_name(name) else {
                    let known: Vec<&str> = M::NAMES
                        .iter()
                        .copied()
                        .chain(Auto::ALL.iter().map(|a| a.name()))
                        .collect();
                    return Err(format!(
                        "the stop criterion names `{name}`, which the trainable does not report; \
                         use one of: {}",
                        known.join(", ")
                    ));
                };
                self.kind =
                    if *at_least { Kind::AtLeast(key, *value) } else { Kind::AtMost(key, *value) };
                Ok(())
            }
            Kind::All(v) | Kind::Any(v) => v.iter_mut().try_for_each(Stop::resolve),
            _ => Ok(()),
        }
    }

    /// How many more results a trial at `iteration` may produce such that only the last
    /// of them can stop it, when that follows from the iteration alone; `None` when the
    /// criterion depends on values (metrics, time, a closure).
    pub(crate) fn safe_steps(&self, iteration: u64) -> Option<u64> {
        match &self.kind {
            Kind::Never => Some(u64::MAX),
            Kind::Iterations(n) => Some(n.saturating_sub(iteration).max(1)),
            Kind::Any(v) => v
                .iter()
                .map(|s| s.safe_steps(iteration))
                .try_fold(u64::MAX, |a, b| b.map(|b| a.min(b))),
            Kind::All(v) => {
                v.iter().map(|s| s.safe_steps(iteration)).try_fold(1, |a, b| b.map(|b| a.max(b)))
            }
            _ => None,
        }
    }

    /// After how many more results a trial at `iteration` certainly stops, whatever its
    /// metrics: `Some` only for criteria on the iteration alone that end it (an iteration
    /// limit), `None` when it may run on or the end depends on values.
    pub(crate) fn ends_after(&self, iteration: u64) -> Option<u64> {
        match &self.kind {
            Kind::Iterations(n) => Some(n.saturating_sub(iteration).max(1)),
            // The earliest criterion that certainly ends it; value criteria may end it
            // earlier, which `safe_steps` rules out before this is used.
            Kind::Any(v) => v.iter().filter_map(|s| s.ends_after(iteration)).min(),
            Kind::All(v) => {
                v.iter().map(|s| s.ends_after(iteration)).try_fold(1, |a, b| b.map(|b| a.max(b)))
            }
            _ => None,
        }
    }

    /// Whether the trial must stop after `result`.
    pub(crate) fn should_stop(&mut self, result: &TrialResult<M>) -> bool {
        match &mut self.kind {
            Kind::Never | Kind::Named { .. } => false,
            Kind::Iterations(n) => result.training_iteration >= *n,
            Kind::TimeTotal(s) => result.time_total_s >= *s,
            Kind::AtLeast(k, v) => result.get(*k) >= *v,
            Kind::AtMost(k, v) => result.get(*k) <= *v,
            Kind::When(f) => f(result),
            // Every sub-criterion sees every result, so stateful closures stay consistent.
            Kind::All(v) => v.iter_mut().fold(true, |acc, s| s.should_stop(result) & acc),
            Kind::Any(v) => v.iter_mut().fold(false, |acc, s| s.should_stop(result) | acc),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{SCORE, Score};
    use crate::trial::TrialId;

    fn result(iter: u64, score: f64) -> TrialResult<Score> {
        TrialResult {
            metrics: Score { score },
            trial_id: TrialId(0),
            training_iteration: iter,
            time_this_iter_s: 0.5,
            time_total_s: iter as f64 * 0.5,
            timestamp: 0,
            done: false,
        }
    }

    #[test]
    fn combinators() {
        let mut s = Stop::iterations(3).or(Stop::at_least(SCORE, 10.0));
        assert!(!s.should_stop(&result(1, 1.0)));
        assert!(s.should_stop(&result(1, 10.0)));
        assert!(s.should_stop(&result(3, 1.0)));
        let mut s = Stop::iterations(3).and(Stop::at_most(SCORE, 0.0));
        assert!(!s.should_stop(&result(3, 1.0)));
        assert!(s.should_stop(&result(3, 0.0)));
        let mut s = Stop::time_total(Duration::from_secs(1));
        assert!(s.should_stop(&result(2, 0.0)));
        let mut s = Stop::when(|r: &TrialResult<Score>| r.metrics.score > 2.0);
        assert!(s.should_stop(&result(1, 3.0)));
    }

    #[test]
    fn ends_after_knows_only_certain_ends() {
        assert_eq!(Stop::<Score>::iterations(5).ends_after(2), Some(3));
        assert_eq!(Stop::<Score>::iterations(5).ends_after(7), Some(1));
        assert_eq!(Stop::<Score>::never().ends_after(0), None);
        let any = Stop::<Score>::iterations(5).or(Stop::iterations(3));
        assert_eq!(any.ends_after(0), Some(3));
        let all = Stop::<Score>::iterations(5).and(Stop::never());
        assert_eq!(all.ends_after(0), None);
        let all = Stop::<Score>::iterations(5).and(Stop::iterations(3));
        assert_eq!(all.ends_after(0), Some(5));
    }

    #[test]
    fn safe_steps_follow_iteration_criteria_only() {
        assert_eq!(Stop::<Score>::iterations(10).safe_steps(3), Some(7));
        assert_eq!(Stop::<Score>::iterations(10).safe_steps(12), Some(1));
        assert_eq!(Stop::<Score>::never().safe_steps(0), Some(u64::MAX));
        assert_eq!(Stop::<Score>::iterations(10).or(Stop::iterations(4)).safe_steps(0), Some(4));
        assert_eq!(Stop::<Score>::iterations(10).and(Stop::iterations(4)).safe_steps(0), Some(10));
        assert_eq!(Stop::iterations(10).or(Stop::at_least(SCORE, 1.0)).safe_steps(0), None);
        assert_eq!(Stop::<Score>::time_total(Duration::from_secs(1)).safe_steps(0), None);
    }

    #[test]
    fn named_criteria_are_checked() {
        let mut s = Stop::<Score>::named_at_least("scor", 1.0);
        let err = s.resolve().unwrap_err();
        assert!(err.contains("`scor`") && err.contains("score"), "{err}");
        let mut s = Stop::<Score>::named_at_least("training_iteration", 2.0);
        s.resolve().unwrap();
        assert!(s.should_stop(&result(2, 0.0)));
    }
}
