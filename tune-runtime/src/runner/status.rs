//! What the live status table and the final summary show.

use super::driver::Driver;
use super::settings::Column;
use crate::journal::TrialLog;
use crate::reporter::{MAX_ROWS, StatusRow, StatusView};
use crate::trial::{Auto, TrialStatus};

/// A config value for the status table: floats with 6 significant digits.
fn short_value(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => {
            if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e6) {
                format!("{f:.4e}")
            } else {
                let s = format!("{f:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// The trial's last value of a column.
fn last_value(t: &TrialLog<()>, col: usize) -> Option<f64> {
    t.rows().last().and_then(|r| r.get(col).copied())
}

impl Driver {
    pub fn view(&self) -> StatusView<'_> {
        let metric = self.s.metric;
        let m = self.model.metric_names().len();
        let mut rows = Vec::new();
        let mut best: Option<(String, f64)> = None;
        let name = |i: usize| format!("{}_{:05}", self.model.trainable(), i);
        let row_of = |i: usize, t: &TrialLog<()>| {
            let params = match self.model.config_json(crate::trial::TrialId(i as u32)) {
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .take(6)
                    .map(|(k, v)| (k, short_value(&v)))
                    .collect(),
                _ => Vec::new(),
            };
            StatusRow {
                name: name(i),
                status: t.status,
                params,
                metric: metric.and_then(|c| last_value(t, c.index)),
                time_total_s: last_value(t, m + Auto::TimeTotalS.offset()).unwrap_or(0.0),
                iteration: last_value(t, m).map_or(0, |v| v as u64),
            }
        };
        for (i, t) in self.trials.iter().enumerate() {
            if let Some(Column { index, mode, .. }) = metric {
                if let Some(v) = last_value(&t.log, index) {
                    if best.as_ref().is_none_or(|(_, b)| mode.better(v, *b)) {
                        best = Some((name(i), v));
                    }
                }
            }
            if rows.len() < MAX_ROWS && !t.log.status.is_finished() {
                rows.push(row_of(i, &t.log));
            }
        }
        // Fill up with the most recently created finished trials, shown in creation order.
        let mut done: Vec<usize> = Vec::new();
        for (i, t) in self.trials.iter().enumerate().rev() {
            if rows.len() + done.len() >= MAX_ROWS {
                break;
            }
            if t.log.status.is_finished() {
                done.push(i);
            }
        }
        rows.extend(done.into_iter().rev().map(|i| row_of(i, &self.trials[i].log)));
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        StatusView {
            scheduler: self.model.scheduler_name(),
            cpu: (self.pool.used_cpu(), self.pool.total_cpu()),
            gpu: (self.pool.used_gpu(), self.pool.total_gpu()),
            dir: &self.s.experiment_dir,
            counts: self.counts,
            metric_name: metric.map(|c| c.name),
            rows,
            elapsed: self.start.elapsed(),
            best,
        }
    }

    /// The final summary: the table, how the run ended, and the best trial. After an
    /// interruption only finished trials compete for best, and the summary says how to
    /// continue.
    pub fn summary(&self) {
        if !(self.reporter.wants_status() || self.s.verbosity >= 1) {
            return;
        }
        let view = self.view();
        let interrupted = self.interrupted.is_some();
        let best = self.s.metric.and_then(|c| {
            self.trials
                .iter()
                .enumerate()
                .filter(|(_, t)| !interrupted || t.log.status == TrialStatus::Terminated)
                .filter_map(|(i, t)| last_value(&t.log, c.index).map(|v| (i, v)))
                .reduce(|a, b| if c.mode.better(b.1, a.1) { b } else { a })
                .map(|(i, v)| {
                    format!(
                        "Best {}trial: {}_{i:05} with {}={v} and config {}",
                        if interrupted { "finished " } else { "" },
                        self.model.trainable(),
                        c.name,
                        self.model.config_json(crate::trial::TrialId(i as u32))
                    )
                })
        });
        let headline = if self.fatal.is_some() {
            "Experiment stopped by a failed write"
        } else if interrupted {
            "Experiment interrupted"
        } else {
            "Experiment finished"
        };
        self.reporter.summary(&view, headline, best);
    }
}
