//! `progress.csv`: one row per result, Ray Tune's columns, the config flattened into
//! `config/<key>` columns.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use serde_json::Value;

use super::json::{Slots, open};
use super::ray::{self, Since};
use crate::callback::{
    Callback, CallbackError, ExperimentView, KeptView, ResultView, StartView, TrialView,
};
use crate::number::write_f64;
use crate::trial::Auto;

/// Columns after the metrics and the automatic fields, before the config.
const RAY_COLUMNS: [&str; 10] = [
    "trial_id",
    "done",
    "date",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "should_checkpoint",
];

/// The built-in logger of `progress.csv`: per trial, a header, then one row per result
/// with the metrics, the automatic fields, Ray Tune's fields (as in
/// [`JsonLogger`](super::JsonLogger)) and the config flattened into `config/<path>`
/// columns (`config/optimizer/Sgd/lr`), so `pandas.read_csv` loads it as Ray's.
///
/// ```
/// use tune_runtime::callback::{Callback, ExperimentView, ResultView, StartView, TrialView};
/// use tune_runtime::logger::CsvLogger;
///
/// let dir = tempfile::tempdir().unwrap();
/// let names = vec!["loss".to_string()];
/// let mut log = CsvLogger::new();
/// log.on_experiment_start(&ExperimentView::new("exp", dir.path(), "Model", &names, 0)).unwrap();
/// let config = serde_json::json!({"lr": 0.1});
/// let trial_dir = dir.path().join("Model_00000");
/// let trial = TrialView::new(0, "4f1c2_00000", Some(&trial_dir), &config);
/// log.on_trial_start(&trial, &StartView::first()).unwrap();
/// log.on_trial_result(&trial, &ResultView::new(&[0.5, 1.0, 0.2, 0.2, 1.7e9], false)).unwrap();
/// log.flush().unwrap();
/// let text = std::fs::read_to_string(trial_dir.join("progress.csv")).unwrap();
/// assert!(text.starts_with("loss,training_iteration,"));
/// assert!(text.lines().next().unwrap().ends_with(",config/lr"));
/// ```
#[derive(Debug, Default)]
pub struct CsvLogger {
    names: Vec<String>,
    trials: Slots<CsvTrial>,
    line: Vec<u8>,
}

#[derive(Debug)]
struct CsvTrial {
    path: PathBuf,
    out: BufWriter<File>,
    since: Since,
    /// The config paths of the `config/...` columns, fixed by the header.
    columns: Vec<Vec<String>>,
}

impl super::json::TrialFile for CsvTrial {
    fn file(&mut self) -> (&std::path::Path, &mut BufWriter<File>) {
        (&self.path, &mut self.out)
    }
}

/// Appends `text` as one CSV field, quoted when it holds a separator, a quote or a line
/// break.
fn field(out: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

fn leaf(out: &mut Vec<u8>, v: Option<&Value>) {
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Bool(b)) => out.extend_from_slice(if *b { b"True" } else { b"False" }),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if n.is_f64() => write_f64(out, f),
            _ => out.extend_from_slice(n.to_string().as_bytes()),
        },
        Some(Value::String(s)) => field(out, s),
        Some(other) => field(out, &other.to_string()),
    }
}

impl CsvLogger {
    /// A logger; it learns the metric names from [`Callback::on_experiment_start`].
    pub fn new() -> Self {
        Self::default()
    }

    fn open(&mut self, trial: &TrialView<'_>, append: bool) -> Result<bool, CallbackError> {
        let Some(dir) = trial.dir else { return Ok(false) };
        // The file's previous writer goes first (see `JsonLogger::open`).
        if let Some(mut old) = self.trials.take(trial.index) {
            let _ = old.out.flush();
        }
        let path = dir.join("progress.csv");
        let existing = append && std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
        let mut out = open(&path, append)?;
        let mut flat = Vec::new();
        ray::flatten(trial.config, "", &mut flat);
        let columns: Vec<Vec<String>> = flat
            .iter()
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, _)| k.split('/').map(String::from).collect())
            .collect();
        if !existing {
            let mut header = Vec::new();
            let names = self.names.iter().map(String::as_str);
            let autos = Auto::ALL.iter().map(|a| a.name());
            for (k, name) in names.chain(autos).chain(RAY_COLUMNS).enumerate() {
                if k > 0 {
                    header.push(b',');
                }
                field(&mut header, name);
            }
            for (k, _) in flat.iter().filter(|(k, _)| !k.is_empty()) {
                header.push(b',');
                field(&mut header, &format!("config/{k}"));
            }
            header.push(b'\n');
            out.write_all(&header).map_err(CallbackError::at(&path))?;
        }
        self.trials.set(trial.index, CsvTrial { path, out, since: Since::default(), columns });
        Ok(true)
    }

    fn write(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        if self.trials.get(trial.index).is_none() && !self.open(trial, true)? {
            return Ok(());
        }
        let Self { trials, line: p, .. } = self;
        let Some(t) = trials.get(trial.index) else { return Ok(()) };
        let host = ray::host();
        p.clear();
        for v in result.metrics() {
            write_f64(p, *v);
            p.push(b',');
        }
        let (it, ts) = (result.training_iteration(), result.timestamp());
        let _ = write!(p, "{it},");
        write_f64(p, result.time_this_iter_s());
        p.push(b',');
        write_f64(p, result.time_total_s());
        let _ = write!(p, ",{ts},");
        field(p, trial.id);
        let done = if result.done { "True" } else { "False" };
        let _ = write!(p, ",{done},{},{},", ray::date_of(ts), host.pid);
        field(p, &host.hostname);
        p.push(b',');
        field(p, &host.node_ip);
        p.push(b',');
        write_f64(p, t.since.time(result.time_total_s()));
        let _ = write!(p, ",{},", t.since.iterations(it));
        if let Some(name) = result.checkpoint {
            field(p, name);
        }
        let should = if result.checkpoint.is_some() { "True" } else { "False" };
        let _ = write!(p, ",{should}");
        for path in &t.columns {
            p.push(b',');
            leaf(p, ray::lookup(trial.config, path));
        }
        p.push(b'\n');
        t.out.write_all(p).map_err(CallbackError::at(&t.path))
    }
}

impl Callback for CsvLogger {
    fn on_experiment_start(&mut self, e: &ExperimentView<'_>) -> Result<(), CallbackError> {
        self.names = e.metric_names.to_vec();
        Ok(())
    }

    fn on_trial_start(
        &mut self,
        trial: &TrialView<'_>,
        start: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        if self.trials.get(trial.index).is_none() {
            let fresh = start.iteration == 0 && start.restored_from.is_none();
            self.open(trial, !fresh)?;
        }
        if let Some(t) = self.trials.get(trial.index) {
            t.since = Since { iteration: start.iteration, time_total_s: start.time_total_s };
        }
        Ok(())
    }

    fn on_trial_result(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        self.write(trial, result)
    }

    fn on_trial_reset(
        &mut self,
        trial: &TrialView<'_>,
        kept: &KeptView<'_>,
    ) -> Result<(), CallbackError> {
        if !self.open(trial, false)? {
            return Ok(());
        }
        for result in kept.results() {
            self.write(trial, &result)?;
        }
        self.trials.flush(trial.index)
    }

    fn on_trial_complete(&mut self, trial: &TrialView<'_>) -> Result<(), CallbackError> {
        self.trials.close(trial.index)
    }

    fn on_trial_error(&mut self, trial: &TrialView<'_>, _error: &str) -> Result<(), CallbackError> {
        self.on_trial_complete(trial)
    }

    fn flush(&mut self) -> Result<(), CallbackError> {
        self.trials.flush_all()
    }
}
