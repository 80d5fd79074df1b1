//! One self-contained HTML page about an experiment: optimization history, learning
//! curves (pruned and errored trials marked), parallel coordinates, hyperparameter
//! importance and the trials table. The page needs no network: its script, styles and the
//! experiment's data are inside it, and it draws on canvases, so it stays quick with
//! 10,000 trials.
//!
//! [`Report::write_html`] writes the report of an experiment directory; the dashboard
//! (`tune dashboard`) serves the same page with live data.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tune_runtime::report::{Report, ReportOptions};
//! # let dir = tempfile::tempdir()?;
//! # let exp = dir.path().join("exp");
//! # std::fs::create_dir_all(&exp)?;
//! # std::fs::write(exp.join("experiment_journal.jsonl"),
//! #   "{\"type\":\"experiment\",\"version\":3,\"name\":\"exp\",\"trainable\":\"M\",\"metrics\":[\"loss\"],\"seed\":1,\"started\":0}\n")?;
//! let report = Report::from_dir(&exp, &ReportOptions::default())?;
//! report.write_html(dir.path().join("report.html"))?;
//! # Ok(()) }
//! ```

mod importance;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::journal::{ExperimentLog, JournalError};
use crate::logger::trial_id;
use crate::reporter::sig6;
use crate::trial::{Mode, TrialStatus};

pub(crate) use importance::{Column, Kind, importance};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");

/// Most curve points the page holds in all; past it, curves are thinned evenly (every
/// trial keeps its first and last point).
pub const MAX_CURVE_POINTS: usize = 400_000;

/// What a report shows first (the page lets the reader switch).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReportOptions {
    /// The metric of the history, the curves and the importance. Default: the first.
    pub metric: Option<String>,
    /// Whether it is minimized or maximized. Default: minimized when its name says loss
    /// or error, else maximized.
    pub mode: Option<Mode>,
}

impl ReportOptions {
    /// The options for `metric` and `mode`.
    pub fn new(metric: Option<String>, mode: Option<Mode>) -> Self {
        Self { metric, mode }
    }
}

/// The data of a report, ready to be written as a page or served as JSON.
#[derive(Debug, Clone)]
pub struct Report {
    data: Value,
}

/// The mode a metric's name suggests.
pub fn guess_mode(metric: &str) -> Mode {
    let m = metric.to_ascii_lowercase();
    if ["loss", "err", "mse", "mae", "rmse", "regret", "cost", "time"].iter().any(|w| m.contains(w))
    {
        Mode::Min
    } else {
        Mode::Max
    }
}

/// The number of trials in each status (`RUNNING`, `PENDING`, `PAUSED`, `TERMINATED`,
/// `ERROR`), zeros included: the counts the report, the dashboard and `tune ls` show.
pub fn status_counts(log: &ExperimentLog) -> Map<String, Value> {
    crate::reporter::STATUSES
        .iter()
        .map(|s| (s.as_str().to_string(), Value::from(log.count(*s))))
        .collect()
}

/// An experiment's headline in a list of experiments: its first metric and the best of the
/// trials' last values of it, the direction guessed from the metric's name
/// ([`guess_mode`]). `None`s without metrics or finite values.
pub fn headline(log: &ExperimentLog) -> (Option<String>, Option<f64>) {
    let metric = log.metric_names().first().cloned();
    let best = metric.as_ref().and_then(|m| {
        let mode = guess_mode(m);
        log.trials()
            .iter()
            .filter_map(|t| t.rows().last().map(|r| r[0]))
            .filter(|v| v.is_finite())
            .reduce(|a, b| if mode.better(b, a) { b } else { a })
    });
    (metric, best)
}

/// A hyperparameter of the page: its flattened name and how its values are drawn.
struct Param {
    name: String,
    numeric: bool,
    log: bool,
    /// Categories in order of first appearance (categorical parameters).
    cats: Vec<String>,
}

/// Leaves of a config by `/`-joined path: numbers as numbers, everything else as text; an
/// enum (`{"Sgd": {...}}`) gives its variant's name at its own path, then its fields.
fn leaves(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}/{k}") };
    match v {
        Value::Object(map) => {
            if let (1, Some((variant, Value::Object(_)))) = (map.len(), map.iter().next()) {
                if variant.starts_with(|c: char| c.is_ascii_uppercase()) && !path.is_empty() {
                    out.push((path.to_string(), Value::String(variant.clone())));
                }
            }
            for (k, inner) in map {
                leaves(inner, &join(k), out);
            }
        }
        Value::Number(_) => out.push((path.to_string(), v.clone())),
        Value::String(_) => out.push((path.to_string(), v.clone())),
        Value::Bool(b) => out.push((path.to_string(), Value::String(b.to_string()))),
        Value::Null => {}
        Value::Array(_) => out.push((path.to_string(), Value::String(v.to_string()))),
    }
}

fn num(v: f64) -> Value {
    if v.is_finite() {
        sig6(v).parse::<f64>().map_or(Value::Null, Value::from)
    } else {
        Value::Null
    }
}

impl Report {
    /// Reads the experiment in `dir` (through its journal) and computes the report.
    pub fn from_dir(dir: impl AsRef<Path>, options: &ReportOptions) -> Result<Self, JournalError> {
        let log = ExperimentLog::from_dir(dir)?;
        Ok(Self::from_log(&log, options))
    }

    /// The report of an experiment already read.
    pub fn from_log(log: &ExperimentLog, options: &ReportOptions) -> Self {
        let metrics: Vec<String> = log.metric_names().to_vec();
        let m = metrics.len();
        let (name, started, trainable) = log
            .header()
            .map(|h| (h.name.clone(), h.started, h.trainable.clone()))
            .unwrap_or_default();
        let trials = log.trials();

        // Hyperparameters: every leaf any trial has, in first-seen order.
        let mut params: Vec<Param> = Vec::new();
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_trial: Vec<Vec<(String, Value)>> = Vec::with_capacity(trials.len());
        for t in trials {
            let mut l = Vec::new();
            leaves(t.config(), "", &mut l);
            for (k, v) in &l {
                let p = *index.entry(k.clone()).or_insert_with(|| {
                    params.push(Param {
                        name: k.clone(),
                        numeric: true,
                        log: true,
                        cats: Vec::new(),
                    });
                    params.len() - 1
                });
                match v {
                    Value::Number(n) => {
                        if n.as_f64().is_none_or(|f| f <= 0.0) {
                            params[p].log = false;
                        }
                    }
                    _ => params[p].numeric = false,
                }
            }
            per_trial.push(l);
        }
        // A numeric parameter is drawn on a log scale when positive over 2+ decades.
        let mut ranges = vec![(f64::INFINITY, f64::NEG_INFINITY); params.len()];
        for l in &per_trial {
            for (k, v) in l {
                let p = index[k];
                if let Some(f) = v.as_f64() {
                    ranges[p] = (ranges[p].0.min(f), ranges[p].1.max(f));
                } else if !params[p].cats.contains(&value_text(v)) {
                    params[p].cats.push(value_text(v));
                }
            }
        }
        for (p, r) in params.iter_mut().zip(&ranges) {
            p.log = p.numeric && p.log && r.0 > 0.0 && r.1 / r.0 >= 100.0;
            if !p.numeric {
                // Numbers among texts become categories too.
                p.cats.sort();
            }
        }
        for l in &per_trial {
            for (k, v) in l {
                let p = &mut params[index[k]];
                if !p.numeric && v.is_number() && !p.cats.contains(&value_text(v)) {
                    p.cats.push(value_text(v));
                }
            }
        }

        // Curves are thinned to keep the page small.
        let total_points: usize = trials.iter().map(|t| t.num_results()).sum::<usize>() * (m + 1);
        let stride = total_points.div_ceil(MAX_CURVE_POINTS).max(1);
        let max_iter =
            trials.iter().filter_map(|t| t.rows().last().map(|r| r[m] as u64)).max().unwrap_or(0);

        let mut columns: Vec<Column> = params
            .iter()
            .map(|p| Column {
                name: p.name.clone(),
                values: Vec::with_capacity(trials.len()),
                kind: if p.numeric {
                    Kind::Numeric { log: p.log }
                } else {
                    Kind::Categorical { n: p.cats.len() }
                },
            })
            .collect();
        let mut last_values: Vec<Vec<f64>> = vec![Vec::with_capacity(trials.len()); m];
        let mut out_trials = Vec::with_capacity(trials.len());
        for (t, l) in trials.iter().zip(&per_trial) {
            let mut pv = vec![f64::NAN; params.len()];
            for (k, v) in l {
                let p = index[k];
                pv[p] = match v.as_f64() {
                    Some(f) if params[p].numeric => f,
                    _ => params[p]
                        .cats
                        .iter()
                        .position(|c| *c == value_text(v))
                        .map_or(f64::NAN, |i| i as f64),
                };
            }
            for (c, v) in columns.iter_mut().zip(&pv) {
                c.values.push(*v);
            }
            let rows: Vec<&[f64]> = t.rows().collect();
            let last = rows.last();
            for (k, lv) in last_values.iter_mut().enumerate() {
                lv.push(last.map_or(f64::NAN, |r| r[k]));
            }
            let n = rows.len();
            let keep: Vec<usize> = (0..n).filter(|i| i % stride == 0 || i + 1 == n).collect();
            let curve_it: Vec<Value> =
                keep.iter().map(|&i| Value::from(rows[i][m] as u64)).collect();
            let curves: Vec<Value> = (0..m)
                .map(|k| Value::Array(keep.iter().map(|&i| num(rows[i][k])).collect()))
                .collect();
            let best: Vec<Value> = (0..m)
                .map(|k| {
                    let mode = guess_mode(&metrics[k]);
                    let vals = rows.iter().map(|r| r[k]).filter(|v| v.is_finite());
                    let b = match mode {
                        Mode::Min => vals.fold(f64::INFINITY, f64::min),
                        Mode::Max => vals.fold(f64::NEG_INFINITY, f64::max),
                    };
                    num(b)
                })
                .collect();
            let last_iter = last.map_or(0, |r| r[m] as u64);
            let pruned = t.status() == TrialStatus::Terminated && last_iter < max_iter;
            out_trials.push(json!({
                "i": t.index(),
                "id": trial_id(&name, started, t.index()),
                "status": t.status().as_str(),
                "error": t.error(),
                "failures": t.failures().len(),
                "p": pv.iter().map(|v| num(*v)).collect::<Vec<_>>(),
                "config": t.config(),
                "last": last.map(|r| (0..m).map(|k| num(r[k])).collect::<Vec<_>>()),
                "best": best,
                "iter": last_iter,
                "time": last.map_or(Value::Null, |r| num(r[m + 2])),
                "n": n,
                "pruned": pruned,
                "it": curve_it,
                "c": curves,
                "dir": t.dir().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().to_string()),
                "checkpoint": t.checkpoints().last().map(|c| c.path.to_string_lossy().to_string()),
            }));
        }

        // Importance of every metric for both directions (the page picks one).
        let mut imp = Map::new();
        for (k, metric) in metrics.iter().enumerate() {
            for (mode, key) in [(Mode::Min, "min"), (Mode::Max, "max")] {
                let list = importance(&columns, &last_values[k], mode);
                let v: Vec<Value> = list.into_iter().map(|(n, s)| json!([n, num(s)])).collect();
                imp.insert(format!("{metric}/{key}"), Value::Array(v));
            }
        }

        let metric = options
            .metric
            .clone()
            .filter(|m| metrics.contains(m))
            .or_else(|| metrics.first().cloned());
        let mode = options.mode.unwrap_or_else(|| metric.as_deref().map_or(Mode::Max, guess_mode));
        let counts = status_counts(log);
        let data = json!({
            "name": name,
            "trainable": trainable,
            "dir": log.dir().to_string_lossy(),
            "started": started,
            "finished": log.is_finished(),
            "runs": log.runs().len(),
            "metrics": metrics,
            "metric": metric,
            "mode": match mode { Mode::Min => "min", Mode::Max => "max" },
            "counts": counts,
            "params": params.iter().map(|p| json!({
                "name": p.name, "numeric": p.numeric, "log": p.log, "cats": p.cats,
            })).collect::<Vec<_>>(),
            "trials": out_trials,
            "importance": imp,
            "thinned": stride > 1,
        });
        Self { data }
    }

    /// The report's data as JSON (what the page draws).
    pub fn data(&self) -> &Value {
        &self.data
    }

    /// The page, with the data inside.
    pub fn html(&self) -> String {
        page(&self.data.to_string(), None)
    }

    /// Writes the page to `path`.
    pub fn write_html(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.html())
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The page around `data` (JSON text); `live` is the URL it polls for new data (the
/// dashboard), `None` for a report.
pub fn page(data: &str, live: Option<&str>) -> String {
    // Inside a <script> element, `</` would end it.
    let safe = |s: &str| s.replace("</", "<\\/").replace("<!--", "<\\!--");
    let live = live.map_or("null".to_string(), |u| Value::from(u).to_string());
    PAGE.replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", &safe(SCRIPT))
        .replace("\"/*LIVE*/\"", &safe(&live))
        .replace("\"/*DATA*/\"", &safe(data))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn script_text_cannot_close_the_script_element() {
        let html = page(r#"{"name":"</script><b>"}"#, None);
        assert!(!html.contains("</script><b>"));
        assert!(html.contains(r#"<\/script><b>"#));
    }

    #[test]
    fn modes_follow_metric_names() {
        assert_eq!(guess_mode("val_loss"), Mode::Min);
        assert_eq!(guess_mode("mean_accuracy"), Mode::Max);
    }
}
