//! The status block's rendering from a [`StatusReport`] the driver fills: resources, the
//! scheduler's own lines (HyperBand's brackets), trial counts against the total, the
//! current best trial, and the trials table grouped by status with a `loc` column, the
//! chosen hyperparameters (enum variants with their fields) and every chosen metric,
//! numbers right-aligned with 6 significant digits.

// The driver builds a `StatusReport` and calls `render` once it is wired to them.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use comfy_table::{CellAlignment, Table, presets::ASCII_MARKDOWN};
use serde_json::Value;

use super::{STATUSES, memory_usage};
use crate::trial::{Mode, TrialStatus};

/// One trial in the table.
#[derive(Debug, Clone)]
pub(crate) struct TrialRow {
    /// `Model_00003`.
    pub name: String,
    pub status: TrialStatus,
    /// Where it runs: `host:pid` (empty when it is not running).
    pub loc: String,
    /// Its config as JSON.
    pub config: Value,
    /// Its last result row (metrics, then the automatic fields), if any.
    pub last: Option<Vec<f64>>,
}

/// The best trial so far by the experiment's metric.
#[derive(Debug, Clone)]
pub(crate) struct BestTrial {
    pub name: String,
    pub value: f64,
    pub config: Value,
}

/// Everything the status block shows; the driver fills it.
#[derive(Debug)]
pub(crate) struct StatusReport<'a> {
    pub scheduler: &'a str,
    /// Extra lines of the scheduler (HyperBand's brackets), printed after its name.
    pub scheduler_lines: Vec<String>,
    pub cpu: (f64, f64),
    pub gpu: (f64, f64),
    pub dir: &'a Path,
    /// Counts in the order of [`STATUSES`].
    pub counts: [usize; 5],
    /// How many trials the searcher will create in all, when it knows.
    pub total: Option<usize>,
    /// Every metric name, in the order of result rows.
    pub metric_names: &'a [String],
    /// The experiment's metric and mode (for the best trial line).
    pub metric: Option<(&'a str, Mode)>,
    /// The metrics to show (`Tuner::metric_columns`); all when `None`.
    pub metric_columns: Option<&'a [String]>,
    /// The hyperparameters to show (`Tuner::parameter_columns`), by flattened name
    /// (`lr`, `model.layers`, `optimizer`); all when `None`.
    pub parameter_columns: Option<&'a [String]>,
    /// The trials to show (the driver picks at most `max_rows`, running ones first).
    pub rows: Vec<TrialRow>,
    pub max_rows: usize,
    pub best: Option<BestTrial>,
    pub elapsed: Duration,
}

/// `v` with 6 significant digits, as Python's `{:.6g}`: `0.000123457`, `1.23457e+06`.
pub(crate) fn sig6(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    if v == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to 6 digits.
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = mantissa.trim_end_matches('0').trim_end_matches('.');
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", exp.abs());
    }
    let decimals = (5 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// A config value as a cell: numbers with 6 significant digits, an enum variant as
/// `Sgd(lr=0.01, momentum=0.9)`, strings as they are.
fn cell(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => sig6(n.as_f64().unwrap_or(f64::NAN)),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        Value::Array(a) => format!("[{}]", a.iter().map(cell).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => match variant(v) {
            Some((name, fields)) if fields.is_empty() => name.to_string(),
            Some((name, fields)) => {
                let inner: Vec<String> =
                    fields.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect();
                format!("{name}({})", inner.join(", "))
            }
            None => {
                let inner: Vec<String> =
                    map.iter().map(|(k, v)| format!("{k}={}", cell(v))).collect();
                format!("{{{}}}", inner.join(", "))
            }
        },
    }
}

/// An enum space's value: `{"Sgd": {fields}}` (one key, capitalized, holding an object).
fn variant(v: &Value) -> Option<(&str, &serde_json::Map<String, Value>)> {
    let map = v.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (name, inner) = map.iter().next()?;
    let fields = inner.as_object()?;
    name.starts_with(|c: char| c.is_ascii_uppercase()).then_some((name.as_str(), fields))
}

/// The hyperparameter columns of a config: nested structs flattened with `.`, enum values
/// kept whole (one column per enum).
fn params(config: &Value, prefix: &str, out: &mut Vec<(String, String)>) {
    match config.as_object() {
        Some(map) if variant(config).is_none() || prefix.is_empty() => {
            for (k, v) in map {
                let name = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if v.is_object() && variant(v).is_none() {
                    params(v, &name, out);
                } else {
                    out.push((name, cell(v)));
                }
            }
        }
        _ => out.push((prefix.to_string(), cell(config))),
    }
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.parse::<f64>().is_ok()
}

impl StatusReport<'_> {
    fn total_now(&self) -> usize {
        self.counts.iter().sum()
    }

    fn counts_text(&self) -> String {
        let parts: Vec<String> = STATUSES
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        parts.join(", ")
    }

    /// `Number of trials: 3/8 (1 RUNNING, 2 TERMINATED)`.
    pub fn trials_line(&self) -> String {
        let total = match self.total {
            Some(t) => format!("{}/{t}", self.total_now()),
            None => self.total_now().to_string(),
        };
        format!("Number of trials: {total} ({})", self.counts_text())
    }

    /// `Current best trial: Model_00001 with loss=0.12 and parameters={...}`.
    pub fn best_line(&self) -> Option<String> {
        let (metric, _) = self.metric?;
        let best = self.best.as_ref()?;
        Some(format!(
            "Current best trial: {} with {metric}={} and parameters={}",
            best.name,
            sig6(best.value),
            best.config
        ))
    }

    /// The metric columns: `(name, index in a row)`.
    fn metric_cols(&self) -> Vec<(String, usize)> {
        let all = self.metric_names.iter().enumerate().map(|(i, n)| (n.clone(), i));
        match self.metric_columns {
            None => all.collect(),
            Some(chosen) => chosen
                .iter()
                .filter_map(|c| {
                    let i = self.metric_names.iter().position(|n| n == c)?;
                    Some((c.clone(), i))
                })
                .collect(),
        }
    }
}

/// The status block.
pub(crate) fn render(report: &StatusReport<'_>) -> String {
    let mut out = String::from("== Status ==\n");
    let _ = writeln!(out, "Current time: {:.1}s into the experiment", report.elapsed.as_secs_f64());
    let _ = writeln!(out, "Memory usage on this node: {}", memory_usage());
    let _ = writeln!(out, "Using {} scheduling algorithm.", report.scheduler);
    for line in &report.scheduler_lines {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "Resources requested: {}/{} CPUs, {}/{} GPUs",
        report.cpu.0, report.cpu.1, report.gpu.0, report.gpu.1
    );
    if let Some(best) = report.best_line() {
        let _ = writeln!(out, "{best}");
    }
    let _ = writeln!(out, "Result logdir: {}", report.dir.display());
    let _ = writeln!(out, "{}", report.trials_line());
    if report.rows.is_empty() {
        return out;
    }

    // Rows grouped by status (running first), then by name.
    let mut rows: Vec<&TrialRow> = report.rows.iter().collect();
    let slot = |s: TrialStatus| STATUSES.iter().position(|x| *x == s).unwrap_or(0);
    rows.sort_by(|a, b| slot(a.status).cmp(&slot(b.status)).then_with(|| a.name.cmp(&b.name)));
    rows.truncate(report.max_rows.max(1));

    // Hyperparameter columns: the chosen ones, else every one any shown trial has.
    let flat: Vec<Vec<(String, String)>> = rows
        .iter()
        .map(|r| {
            let mut p = Vec::new();
            params(&r.config, "", &mut p);
            p
        })
        .collect();
    let param_names: Vec<String> = match report.parameter_columns {
        Some(chosen) => chosen.to_vec(),
        None => {
            let mut names: Vec<String> = Vec::new();
            for p in &flat {
                for (k, _) in p {
                    if !names.contains(k) {
                        names.push(k.clone());
                    }
                }
            }
            names
        }
    };
    let metric_cols = report.metric_cols();
    let any_loc = rows.iter().any(|r| !r.loc.is_empty());

    let mut header = vec!["Trial name".to_string(), "status".to_string()];
    if any_loc {
        header.push("loc".into());
    }
    header.extend(param_names.iter().cloned());
    header.push("iter".into());
    header.push("total time (s)".into());
    header.extend(metric_cols.iter().map(|(n, _)| n.clone()));
    let mut numeric = vec![true; header.len()];
    numeric[0] = false;
    numeric[1] = false;
    if any_loc {
        numeric[2] = false;
    }

    let mut cells_of_rows = Vec::new();
    for (r, p) in rows.iter().zip(&flat) {
        let mut cells = vec![r.name.clone(), r.status.to_string()];
        if any_loc {
            cells.push(r.loc.clone());
        }
        for name in &param_names {
            cells.push(
                p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default(),
            );
        }
        let n = r.last.as_ref().map_or(0, Vec::len);
        let auto = |k: usize| r.last.as_ref().filter(|_| n >= 4).map(|l| l[n - 4 + k]);
        cells.push(auto(0).map(|v| (v as u64).to_string()).unwrap_or_default());
        cells.push(auto(2).map(sig6).unwrap_or_default());
        for (_, i) in &metric_cols {
            cells.push(
                r.last.as_ref().and_then(|l| l.get(*i)).map(|v| sig6(*v)).unwrap_or_default(),
            );
        }
        cells_of_rows.push(cells);
    }
    // A column is right-aligned when all its cells are numbers (or empty).
    for cells in &cells_of_rows {
        for (k, c) in cells.iter().enumerate() {
            if !c.is_empty() && !is_number(c) {
                numeric[k] = false;
            }
        }
    }

    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header(header);
    for cells in cells_of_rows {
        table.add_row(cells);
    }
    for (k, right) in numeric.iter().enumerate() {
        if let (true, Some(col)) = (*right, table.column_mut(k)) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');

    let shown = rows.len();
    if report.total_now() > shown {
        let mut hidden = report.counts;
        for r in &rows {
            let k = slot(r.status);
            hidden[k] = hidden[k].saturating_sub(1);
        }
        let parts: Vec<String> = STATUSES
            .iter()
            .zip(hidden)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let _ = writeln!(
            out,
            "... {} more trials not shown ({})",
            report.total_now() - shown,
            parts.join(", ")
        );
    }
    out
}

/// The one-line status for a log that is not a terminal.
pub(crate) fn render_line(report: &StatusReport<'_>) -> String {
    let best = report
        .best_line()
        .map(|b| format!(" | {}", b.trim_start_matches("Current ")))
        .unwrap_or_default();
    format!(
        "== Status == {:.1}s | {} | {}/{} CPUs, {}/{} GPUs | {}{best}",
        report.elapsed.as_secs_f64(),
        report.trials_line(),
        report.cpu.0,
        report.cpu.1,
        report.gpu.0,
        report.gpu.1,
        report.dir.display()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(name: &str, status: TrialStatus, config: Value, last: Option<Vec<f64>>) -> TrialRow {
        let loc = if status == TrialStatus::Running { "node1:4242".into() } else { String::new() };
        TrialRow { name: name.into(), status, loc, config, last }
    }

    fn report<'a>(names: &'a [String], rows: Vec<TrialRow>) -> StatusReport<'a> {
        StatusReport {
            scheduler: "HyperBand",
            scheduler_lines: vec![
                "Using HyperBand: num_stopped=0 total_brackets=1".into(),
                "Round #0:".into(),
                "  Bracket(Max Size (n)=3, Milestone (r)=9, completed=33.3%): {RUNNING: 1, TERMINATED: 2}".into(),
            ],
            cpu: (1.0, 4.0),
            gpu: (0.0, 0.0),
            dir: Path::new("/r/exp"),
            counts: [1, 1, 0, 2, 0],
            total: Some(8),
            metric_names: names,
            metric: Some(("loss", Mode::Min)),
            metric_columns: None,
            parameter_columns: None,
            rows,
            max_rows: 20,
            best: Some(BestTrial { name: "Model_00001".into(), value: 0.0123456789, config: json!({"lr": 0.01}) }),
            elapsed: Duration::from_secs(3),
        }
    }

    #[test]
    fn six_significant_digits_like_python() {
        assert_eq!(sig6(0.000123456789), "0.000123457");
        assert_eq!(sig6(1234567.0), "1.23457e+06");
        assert_eq!(sig6(999999.6), "1e+06");
        assert_eq!(sig6(0.1), "0.1");
        assert_eq!(sig6(3.0), "3");
        assert_eq!(sig6(-2.5e-7), "-2.5e-07");
        assert_eq!(sig6(123.456789), "123.457");
        assert_eq!(sig6(0.0), "0");
    }

    #[test]
    fn the_block_groups_rows_shows_loc_every_metric_and_enum_variants() {
        let names = vec!["loss".to_string(), "acc".to_string()];
        let rows = vec![
            row(
                "Model_00002",
                TrialStatus::Terminated,
                json!({"lr": 0.5, "opt": "Plain"}),
                Some(vec![0.5, 0.25, 9.0, 0.1, 12.3456789, 1.0]),
            ),
            row(
                "Model_00003",
                TrialStatus::Pending,
                json!({"lr": 0.001, "opt": {"Adam": {"beta1": 0.9}}}),
                None,
            ),
            row(
                "Model_00000",
                TrialStatus::Running,
                json!({"lr": 0.1, "opt": {"Sgd": {"momentum": 0.95, "nesterov": true}}}),
                Some(vec![1.25, 0.5, 3.0, 0.1, 0.3, 1.0]),
            ),
            row(
                "Model_00001",
                TrialStatus::Terminated,
                json!({"lr": 0.01, "opt": "Plain"}),
                Some(vec![0.0123456789, 0.75, 9.0, 0.1, 1.0, 1.0]),
            ),
        ];
        let text = render(&report(&names, rows));
        for line in [
            "Using HyperBand scheduling algorithm.",
            "  Bracket(Max Size (n)=3, Milestone (r)=9, completed=33.3%): {RUNNING: 1, TERMINATED: 2}",
            "Number of trials: 4/8 (1 RUNNING, 1 PENDING, 2 TERMINATED)",
            "Current best trial: Model_00001 with loss=0.0123457 and parameters={\"lr\":0.01}",
            "| Trial name  | status     | loc        |    lr | opt                               | iter | total time (s) |      loss |  acc |",
            "| Model_00000 | RUNNING    | node1:4242 |   0.1 | Sgd(momentum=0.95, nesterov=true) |    3 |            0.3 |      1.25 |  0.5 |",
            "| Model_00003 | PENDING    |            | 0.001 | Adam(beta1=0.9)                   |      |                |           |      |",
            "| Model_00001 | TERMINATED |            |  0.01 | Plain                             |    9 |              1 | 0.0123457 | 0.75 |",
            "| Model_00002 | TERMINATED |            |   0.5 | Plain                             |    9 |        12.3457 |       0.5 | 0.25 |",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        let order: Vec<usize> = ["Model_00000", "Model_00003", "Model_00001", "Model_00002"]
            .iter()
            .map(|n| text.find(&format!("| {n}")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    #[test]
    fn chosen_columns_and_hidden_trials() {
        let names = vec!["loss".to_string(), "acc".to_string()];
        let rows = (0..4)
            .map(|i| {
                row(
                    &format!("Model_{i:05}"),
                    TrialStatus::Terminated,
                    json!({"lr": 0.1, "model": {"layers": i}}),
                    Some(vec![0.5, 0.5, 1.0, 0.1, 0.1, 1.0]),
                )
            })
            .collect();
        let metric_cols = vec!["acc".to_string()];
        let param_cols = vec!["model.layers".to_string()];
        let mut r = report(&names, rows);
        r.counts = [0, 0, 0, 6, 0];
        r.total = None;
        r.max_rows = 3;
        r.metric_columns = Some(&metric_cols);
        r.parameter_columns = Some(&param_cols);
        let text = render(&r);
        assert!(
            text.contains(
                "| Trial name  | status     | model.layers | iter | total time (s) | acc |"
            ),
            "{text}"
        );
        assert!(!text.contains("| loc"), "no trial runs: no loc column\n{text}");
        assert!(text.contains("Number of trials: 6 (6 TERMINATED)"), "{text}");
        assert!(text.contains("... 3 more trials not shown (3 TERMINATED)"), "{text}");
        assert!(render_line(&r).contains("Number of trials: 6 (6 TERMINATED)"));
    }
}
