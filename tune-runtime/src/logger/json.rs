//! `result.json` (one JSON object per result, Ray Tune's format) and `params.json`.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::ray::{self, Since};
use crate::callback::{
    Callback, CallbackError, ExperimentView, KeptView, ResultView, StartView, TrialView,
};
use crate::number::write_f64;

/// Open files of the trials of an experiment, by creation index.
#[derive(Debug)]
pub(crate) struct Slots<T>(Vec<Option<T>>);

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Slots<T> {
    pub fn get(&mut self, index: u32) -> Option<&mut T> {
        self.0.get_mut(index as usize).and_then(Option::as_mut)
    }

    pub fn set(&mut self, index: u32, value: T) -> &mut T {
        let i = index as usize;
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i].insert(value)
    }

    pub fn take(&mut self, index: u32) -> Option<T> {
        self.0.get_mut(index as usize).and_then(Option::take)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.0.iter_mut().flatten()
    }
}

/// A trial's open file of a logger: where it is and its buffered writer.
pub(crate) trait TrialFile {
    fn file(&mut self) -> (&Path, &mut std::io::BufWriter<fs::File>);
}

impl<T: TrialFile> Slots<T> {
    /// Flushes trial `index`'s file, if it is open.
    pub fn flush(&mut self, index: u32) -> Result<(), CallbackError> {
        match self.get(index) {
            Some(t) => {
                let (path, out) = t.file();
                out.flush().map_err(CallbackError::at(path))
            }
            None => Ok(()),
        }
    }

    /// Flushes and closes trial `index`'s file, if it is open.
    pub fn close(&mut self, index: u32) -> Result<(), CallbackError> {
        match self.take(index) {
            Some(mut t) => {
                let (path, out) = t.file();
                out.flush().map_err(CallbackError::at(path))
            }
            None => Ok(()),
        }
    }

    /// Flushes every open file; the first error is returned, after trying them all.
    pub fn flush_all(&mut self) -> Result<(), CallbackError> {
        let mut first = Ok(());
        for t in self.iter_mut() {
            let (path, out) = t.file();
            if let Err(e) = out.flush() {
                if first.is_ok() {
                    first = Err(CallbackError::new(path, e));
                }
            }
        }
        first
    }
}

/// Refuses to write through a symbolic link (it could lead outside the experiment).
pub(crate) fn refuse_link(path: &Path) -> Result<(), CallbackError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(CallbackError::new(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a symbolic link inside the experiment directory; the runner writes only real \
                 files of the experiment: replace it with a file",
            ),
        )),
        _ => Ok(()),
    }
}

/// Opens `path` for writing: truncated, or appended to.
pub(crate) fn open(path: &Path, append: bool) -> Result<BufWriter<File>, CallbackError> {
    if let Some(dir) = path.parent() {
        refuse_link(dir)?;
        fs::create_dir_all(dir).map_err(CallbackError::at(dir))?;
    }
    refuse_link(path)?;
    let file = if append {
        OpenOptions::new().create(true).append(true).open(path)
    } else {
        File::create(path)
    };
    Ok(BufWriter::with_capacity(8192, file.map_err(CallbackError::at(path))?))
}

/// Writes `params.json`: the trial's config, pretty-printed.
pub(crate) fn write_params(dir: &Path, config: &serde_json::Value) -> Result<(), CallbackError> {
    let path = dir.join("params.json");
    refuse_link(dir)?;
    fs::create_dir_all(dir).map_err(CallbackError::at(dir))?;
    refuse_link(&path)?;
    let text = serde_json::to_vec_pretty(config)
        .map_err(std::io::Error::other)
        .map_err(CallbackError::at(&path))?;
    fs::write(&path, text).map_err(CallbackError::at(&path))
}

/// The built-in logger of `result.json` and `params.json`: per trial, one JSON object per
/// line and result, with the metrics, the automatic fields and the fields Ray Tune's
/// readers expect (`trial_id`, `done`, `date`, `pid`, `hostname`, `node_ip`,
/// `time_since_restore`, `iterations_since_restore`, `checkpoint_dir_name`,
/// `should_checkpoint`, `config`), so `pandas.read_json(path, lines=True)` and
/// `ray.tune.Result.from_path` load it.
///
/// ```
/// use tune_runtime::callback::{Callback, ExperimentView, ResultView, StartView, TrialView};
/// use tune_runtime::logger::JsonLogger;
///
/// let dir = tempfile::tempdir().unwrap();
/// let names = vec!["loss".to_string()];
/// let mut log = JsonLogger::new();
/// log.on_experiment_start(&ExperimentView::new("exp", dir.path(), "Model", &names, 0)).unwrap();
/// let config = serde_json::json!({"lr": 0.1});
/// let trial_dir = dir.path().join("Model_00000");
/// let trial = TrialView::new(0, "4f1c2_00000", Some(&trial_dir), &config);
/// log.on_trial_start(&trial, &StartView::first()).unwrap();
/// log.on_trial_result(&trial, &ResultView::new(&[0.5, 1.0, 0.2, 0.2, 1.7e9], true)).unwrap();
/// log.on_trial_complete(&trial).unwrap();
/// let text = std::fs::read_to_string(trial_dir.join("result.json")).unwrap();
/// let row: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
/// assert_eq!(row["loss"], 0.5);
/// assert_eq!(row["trial_id"], "4f1c2_00000");
/// assert_eq!(row["config"]["lr"], 0.1);
/// ```
#[derive(Debug, Default)]
pub struct JsonLogger {
    /// `"name":` of every metric, escaped once.
    keys: Vec<Vec<u8>>,
    trials: Slots<JsonTrial>,
    line: Vec<u8>,
}

#[derive(Debug)]
struct JsonTrial {
    path: PathBuf,
    out: BufWriter<File>,
    since: Since,
}

impl TrialFile for JsonTrial {
    fn file(&mut self) -> (&Path, &mut BufWriter<File>) {
        (&self.path, &mut self.out)
    }
}

impl JsonLogger {
    /// A logger; it learns the metric names from
    /// [`Callback::on_experiment_start`].
    pub fn new() -> Self {
        Self::default()
    }

    fn open(
        &mut self,
        trial: &TrialView<'_>,
        append: bool,
    ) -> Result<Option<&mut JsonTrial>, CallbackError> {
        let Some(dir) = trial.dir else { return Ok(None) };
        // The file's previous writer goes first: dropped later, it would flush its buffer
        // into the file after it was truncated.
        if let Some(mut old) = self.trials.take(trial.index) {
            let _ = old.out.flush();
        }
        let path = dir.join("result.json");
        let out = open(&path, append)?;
        Ok(Some(self.trials.set(trial.index, JsonTrial { path, out, since: Since::default() })))
    }

    fn write(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        if self.trials.get(trial.index).is_none() && self.open(trial, true)?.is_none() {
            return Ok(());
        }
        let Self { keys, trials, line } = self;
        let Some(t) = trials.get(trial.index) else { return Ok(()) };
        format_row(line, keys, trial, result, t.since);
        if crate::faultpoint::hit(crate::faultpoint::Point::Result) {
            // Die with the result in the trial's file but not in the journal yet.
            let _ = t.out.write_all(line);
            let _ = t.out.flush();
            crate::faultpoint::die();
        }
        if crate::faultpoint::reached(crate::faultpoint::Point::ResultFull) {
            let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
            return Err(CallbackError::new(&t.path, full));
        }
        t.out.write_all(line).map_err(CallbackError::at(&t.path))
    }
}

fn format_row(
    r: &mut Vec<u8>,
    keys: &[Vec<u8>],
    trial: &TrialView<'_>,
    result: &ResultView<'_>,
    since: Since,
) {
    let host = ray::host();
    let metrics = result.metrics();
    r.clear();
    r.push(b'{');
    for (key, v) in keys.iter().zip(metrics) {
        r.extend_from_slice(key);
        write_f64(r, *v);
        r.push(b',');
    }
    // Metrics beyond the names the logger was given (a callback used without
    // `on_experiment_start`) are still written, by position.
    for (k, v) in metrics.iter().enumerate().skip(keys.len()) {
        r.extend_from_slice(format!("\"metric_{k}\":").as_bytes());
        write_f64(r, *v);
        r.push(b',');
    }
    let it = result.training_iteration();
    let _ = write!(r, "\"training_iteration\":{it},\"time_this_iter_s\":");
    write_f64(r, result.time_this_iter_s());
    r.extend_from_slice(b",\"time_total_s\":");
    write_f64(r, result.time_total_s());
    let ts = result.timestamp();
    let _ = write!(r, ",\"timestamp\":{ts},\"trial_id\":");
    let _ = serde_json::to_writer(&mut *r, trial.id);
    let _ = write!(
        r,
        ",\"done\":{},\"date\":\"{}\",\"pid\":{},\"hostname\":{},\"node_ip\":{},\"time_since_restore\":",
        result.done,
        ray::date_of(ts),
        host.pid,
        host.hostname_json,
        host.node_ip_json
    );
    write_f64(r, since.time(result.time_total_s()));
    let _ = write!(
        r,
        ",\"iterations_since_restore\":{},\"checkpoint_dir_name\":",
        since.iterations(it)
    );
    match result.checkpoint {
        Some(name) => {
            let _ = serde_json::to_writer(&mut *r, name);
        }
        None => r.extend_from_slice(b"null"),
    }
    let _ = write!(r, ",\"should_checkpoint\":{},\"config\":", result.checkpoint.is_some());
    let _ = serde_json::to_writer(&mut *r, trial.config);
    r.extend_from_slice(b"}\n");
}

impl Callback for JsonLogger {
    fn on_experiment_start(&mut self, e: &ExperimentView<'_>) -> Result<(), CallbackError> {
        self.keys = e
            .metric_names
            .iter()
            .map(|n| {
                let mut k = serde_json::Value::from(n.as_str()).to_string().into_bytes();
                k.push(b':');
                k
            })
            .collect();
        Ok(())
    }

    fn on_trial_start(
        &mut self,
        trial: &TrialView<'_>,
        start: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        let Some(dir) = trial.dir else { return Ok(()) };
        write_params(dir, trial.config)?;
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
        if let Some(dir) = trial.dir {
            write_params(dir, trial.config)?;
        }
        if self.open(trial, false)?.is_none() {
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
