//! What the live status table and the final summary show.

use super::driver::Driver;
use super::settings::Column;
use crate::journal::TrialLog;
use crate::reporter::{BestTrial, MAX_ROWS, StatusReport, TrialRow};
use crate::trial::{TrialId, TrialStatus};

/// The trial's last value of a column.
fn last_value(t: &TrialLog<()>, col: usize) -> Option<f64> {
    t.rows().last().and_then(|r| r.get(col).copied())
}

impl Driver {
    fn row(&self, i: usize, loc: &str) -> TrialRow {
        let t = &self.trials[i].log;
        TrialRow {
            name: format!("{}_{:05}", self.model.trainable(), i),
            status: t.status,
            // Where it runs: this process, for the trials it runs.
            loc: if t.status == TrialStatus::Running && self.trials[i].live.is_some() {
                loc.to_string()
            } else {
                String::new()
            },
            config: self.model.config_json(TrialId(i as u32)),
            last: t.rows().last().map(<[f64]>::to_vec),
        }
    }

    /// The best trial by the experiment's metric; after an interruption only finished
    /// trials compete.
    fn best(&self, finished_only: bool) -> Option<(usize, f64)> {
        let Column { index, mode, .. } = self.s.metric?;
        self.trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !finished_only || t.log.status == TrialStatus::Terminated)
            .filter_map(|(i, t)| last_value(&t.log, index).map(|v| (i, v)))
            .reduce(|a, b| if mode.better(b.1, a.1) { b } else { a })
    }

    /// Fills the status table: at most `MAX_ROWS` trials, the unfinished ones first, then
    /// the most recent finished ones.
    pub fn report<'a>(&'a self, names: &'a [String], finished_only: bool) -> StatusReport<'a> {
        let host = crate::logger::host_and_pid();
        let mut picked: Vec<usize> = (0..self.trials.len())
            .filter(|&i| !self.trials[i].log.status.is_finished())
            .take(MAX_ROWS)
            .collect();
        for i in (0..self.trials.len()).rev() {
            if picked.len() >= MAX_ROWS {
                break;
            }
            if self.trials[i].log.status.is_finished() {
                picked.push(i);
            }
        }
        picked.sort_unstable();
        let rows = picked.into_iter().map(|i| self.row(i, &host)).collect();
        let best = self.best(finished_only).map(|(i, value)| BestTrial {
            name: format!("{}_{:05}", self.model.trainable(), i),
            value,
            config: self.model.config_json(TrialId(i as u32)),
        });
        StatusReport {
            scheduler: self.model.scheduler_name(),
            scheduler_lines: self.model.scheduler_lines(),
            cpu: (self.pool.used_cpu(), self.pool.total_cpu()),
            gpu: (self.pool.used_gpu(), self.pool.total_gpu()),
            dir: &self.s.experiment_dir,
            counts: self.counts,
            total: self.model.total_trials(),
            metric_names: names,
            metric: self.s.metric.map(|c| (c.name, c.mode)),
            metric_columns: self.s.results.metric_columns.as_deref(),
            parameter_columns: self.s.results.parameter_columns.as_deref(),
            rows,
            max_rows: MAX_ROWS,
            best,
            elapsed: self.start.elapsed(),
        }
    }

    /// Prints the status block (a line when stdout is not a terminal).
    pub fn print_status(&self) {
        if !self.reporter.wants_status() {
            return;
        }
        let names: Vec<String> = self.model.metric_names().iter().map(|n| n.to_string()).collect();
        self.reporter.status(&self.report(&names, false));
    }

    /// The final summary: the table, how the run ended, and the best trial. After an
    /// interruption only finished trials compete for best, and the summary says how to
    /// continue.
    pub fn summary(&self) {
        if !(self.reporter.wants_status() || self.s.verbosity >= 1) {
            return;
        }
        let interrupted = self.interrupted.is_some();
        let names: Vec<String> = self.model.metric_names().iter().map(|n| n.to_string()).collect();
        let report = self.report(&names, interrupted);
        let best = self.s.metric.and_then(|c| {
            let (i, v) = self.best(interrupted)?;
            Some(format!(
                "Best {}trial: {}_{i:05} with {}={v} and config {}",
                if interrupted { "finished " } else { "" },
                self.model.trainable(),
                c.name,
                self.model.config_json(TrialId(i as u32))
            ))
        });
        let headline = if self.fatal.is_some() {
            "Experiment stopped by a failed write"
        } else if self.fenced {
            "Experiment left (this process lost its lease)"
        } else if interrupted {
            "Experiment interrupted"
        } else {
            "Experiment finished"
        };
        self.reporter.summary(&report, headline, best);
    }
}
