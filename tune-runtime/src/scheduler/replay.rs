//! Replaying the schedule of hyperparameters that population based training gave a trial.

use std::path::Path;

use super::pbt::PbtLogEntry;
use super::{Decision, Exploit, Scheduler};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{TrialId, TrialResult};

/// Why a PBT log cannot be replayed.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The log file cannot be read.
    #[error(
        "cannot read the PBT log `{path}`: {source}; pass the `pbt_log.jsonl` of the experiment directory"
    )]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the log is not a [`PbtLogEntry`].
    #[error("the PBT log is corrupt at line {line}: {message}")]
    Corrupt {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// The trial never exploited nor was exploited: its schedule is its own config.
    #[error(
        "trial {0} does not appear in the PBT log; it kept one config throughout, so run that \
         config without a scheduler"
    )]
    UnknownTrial(u32),
    /// A logged config does not fit the config type.
    #[error("a config of the PBT log does not fit this config type: {0}")]
    BadConfig(String),
}

/// Replays a trial's hyperparameter schedule from a PBT log: the trial's lineage (the
/// trials it copied, recursively) gives the config it started from and the iterations at
/// which its config changed. Run a single trial with [`PbtReplay::initial_config`] (for
/// example as JSON config overrides) and this scheduler: at each logged iteration it
/// changes the config, keeping the trial's own state (through a checkpoint it asks for at
/// that iteration), as Ray Tune's `PopulationBasedTrainingReplay` does.
#[derive(Debug, Clone)]
pub struct PbtReplay<C> {
    initial: C,
    changes: Vec<(u64, C)>,
    next: Vec<usize>,
}

impl<C: Space> PbtReplay<C> {
    /// Reads [`super::PBT_LOG_FILE`] and builds the schedule of `trial`.
    ///
    /// # Errors
    ///
    /// [`ReplayError`] when the file is unreadable or the trial is not in it.
    pub fn from_log(path: impl AsRef<Path>, trial: TrialId) -> Result<Self, ReplayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReplayError::Io { path: path.display().to_string(), source })?;
        let mut entries = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: PbtLogEntry = serde_json::from_str(line)
                .map_err(|e| ReplayError::Corrupt { line: n + 1, message: e.to_string() })?;
            entries.push(e);
        }
        Self::from_entries(&entries, trial)
    }

    /// Builds the schedule of `trial` from log entries in the order they were logged.
    ///
    /// # Errors
    ///
    /// [`ReplayError::UnknownTrial`] when no entry names the trial,
    /// [`ReplayError::BadConfig`] when a config does not parse as `C`.
    pub fn from_entries(entries: &[PbtLogEntry], trial: TrialId) -> Result<Self, ReplayError> {
        if !entries.iter().any(|e| e.target == trial.0 || e.source == trial.0) {
            return Err(ReplayError::UnknownTrial(trial.0));
        }
        let mut segments = lineage(entries, trial.0, u64::MAX, entries.len());
        // Later changes at the same iteration replace earlier ones.
        segments.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = later.1.clone();
                true
            } else {
                false
            }
        });
        let parse = |v: &serde_json::Value| {
            C::from_json_value(v.clone()).map_err(|e| ReplayError::BadConfig(e.to_string()))
        };
        let initial = parse(&segments[0].1)?;
        let changes = segments[1..]
            .iter()
            .map(|(it, v)| Ok((*it, parse(v)?)))
            .collect::<Result<Vec<_>, ReplayError>>()?;
        Ok(Self { initial, changes, next: Vec::new() })
    }

    /// The config the lineage started from.
    pub fn initial_config(&self) -> &C {
        &self.initial
    }

    /// `(iteration, config)`: after the result of `iteration` the config becomes `config`.
    pub fn changes(&self) -> &[(u64, C)] {
        &self.changes
    }
}

/// The `(from iteration, config)` segments of `trial`'s state up to iteration `upto`,
/// using the entries logged before `before`.
fn lineage(
    entries: &[PbtLogEntry],
    trial: u32,
    upto: u64,
    before: usize,
) -> Vec<(u64, serde_json::Value)> {
    let last = entries[..before]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, e)| e.target == trial && e.source_iteration <= upto);
    match last {
        Some((k, e)) => {
            let mut segs = if e.source == trial {
                lineage(entries, trial, e.source_iteration, k)
            } else {
                lineage(entries, e.source, e.source_iteration, k)
            };
            segs.push((e.source_iteration, e.new_config.clone()));
            segs
        }
        None => {
            let initial = entries
                .iter()
                .find(|e| e.target == trial)
                .map(|e| e.old_config.clone())
                .or_else(|| {
                    entries.iter().find(|e| e.source == trial).map(|e| e.source_config.clone())
                })
                .unwrap_or(serde_json::Value::Null);
            vec![(0, initial)]
        }
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for PbtReplay<C> {
    fn name(&self) -> &str {
        "PopulationBasedTrainingReplay"
    }

    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let i = trial.index();
        if self.next.len() <= i {
            self.next.resize(i + 1, 0);
        }
        match self.changes.get(self.next[i]) {
            Some((it, _)) if *it <= result.training_iteration => Decision::Exploit,
            _ => Decision::Continue,
        }
    }

    fn wants_checkpoint(&self, trial: TrialId, iteration: u64) -> bool {
        let n = self.next.get(trial.index()).copied().unwrap_or(0);
        self.changes.get(n).is_some_and(|(it, _)| *it == iteration)
    }

    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<C>> {
        let n = self.next.get_mut(trial.index())?;
        let (_, config) = self.changes.get(*n)?;
        *n += 1;
        Some(Exploit { source: trial, config: config.clone() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{Cfg, Score, result};

    fn entry(target: u32, source: u32, at: u64, old: f64, new: f64, src: f64) -> PbtLogEntry {
        PbtLogEntry {
            target,
            source,
            target_iteration: at,
            source_iteration: at,
            old_config: json!({"x": old, "k": 1}),
            new_config: json!({"x": new, "k": 1}),
            source_config: json!({"x": src, "k": 1}),
        }
    }

    #[test]
    fn follows_the_lineage_through_the_sources() {
        // Trial 1 copies trial 0 at 4 (x 0.1 -> 0.3); trial 2 copies trial 1 at 8
        // (x 0.2 -> 0.5); trial 0 copies trial 2 at 12 (x 0.1 -> 0.6).
        let log = [
            entry(1, 0, 4, 0.2, 0.3, 0.1),
            entry(2, 1, 8, 0.4, 0.5, 0.3),
            entry(0, 2, 12, 0.1, 0.6, 0.5),
        ];
        let r = PbtReplay::<Cfg>::from_entries(&log, TrialId(0)).unwrap();
        // Trial 0's state at the end: trial 2's up to 12, which is trial 1's up to 8, which
        // is trial 0's (x 0.1) up to 4.
        assert_eq!(r.initial_config().x, 0.1);
        let xs: Vec<(u64, f64)> = r.changes().iter().map(|(i, c)| (*i, c.x)).collect();
        assert_eq!(xs, [(4, 0.3), (8, 0.5), (12, 0.6)]);
        let r = PbtReplay::<Cfg>::from_entries(&log, TrialId(1)).unwrap();
        assert_eq!(r.initial_config().x, 0.1);
        assert_eq!(r.changes().len(), 1);
        assert!(matches!(
            PbtReplay::<Cfg>::from_entries(&log, TrialId(7)),
            Err(ReplayError::UnknownTrial(7))
        ));
    }

    #[test]
    fn changes_the_config_at_the_logged_iterations() {
        let log = [entry(1, 0, 2, 0.2, 0.3, 0.1)];
        let mut r = PbtReplay::<Cfg>::from_entries(&log, TrialId(1)).unwrap();
        let s: &mut dyn Scheduler<Cfg, Score> = &mut r;
        assert_eq!(s.on_trial_result(TrialId(0), &result(0, 1, 0.0)), Decision::Continue);
        assert!(s.wants_checkpoint(TrialId(0), 2));
        assert_eq!(s.on_trial_result(TrialId(0), &result(0, 2, 0.0)), Decision::Exploit);
        let e = s.take_exploit(TrialId(0)).unwrap();
        assert_eq!((e.source, e.config.x), (TrialId(0), 0.3));
        assert_eq!(s.on_trial_result(TrialId(0), &result(0, 3, 0.0)), Decision::Continue);
    }
}
