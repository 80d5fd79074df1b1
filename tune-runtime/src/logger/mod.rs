//! Per-trial files in Ray Tune's layout: `params.json`, `result.json`, `progress.csv`,
//! TensorBoard event files and `error.txt`.
//!
//! The built-in loggers are [callbacks](crate::callback): [`JsonLogger`] (`result.json`,
//! `params.json`), [`CsvLogger`] (`progress.csv`) and [`TensorBoardLogger`]
//! (`events.out.tfevents.*`). Their rows carry the fields Ray Tune's readers expect, with
//! trial ids from [`trial_id`] and checkpoint directories named by
//! [`checkpoint_dir_name`].

mod csv;
mod json;
mod ray;
mod tensorboard;

pub use self::csv::CsvLogger;
pub use self::json::JsonLogger;
pub use self::ray::{checkpoint_dir_name, trial_id};
pub use self::tensorboard::{TAG_PREFIX, TensorBoardLogger};

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::trial::{Auto, TrialId};

/// Longest rendering of a config in a trial directory name.
const MAX_PARAMS_LEN: usize = 60;

/// `Name_00003_lr=0.01,layers=4`: the trainable's name, the trial id and a short rendering
/// of the config's scalar values, with every character outside `[A-Za-z0-9._=,-]`
/// replaced by `_`, so no config value can add a path separator or a `..` component.
pub(crate) fn trial_dir_name(trainable: &str, id: TrialId, config: &serde_json::Value) -> String {
    let mut params = String::new();
    if let serde_json::Value::Object(map) = config {
        for (k, v) in map {
            let rendered = match v {
                serde_json::Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{}", (f * 1e4).round() / 1e4),
                    _ => n.to_string(),
                },
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::String(s) => s.chars().take(16).collect(),
                _ => continue,
            };
            if !params.is_empty() {
                params.push(',');
            }
            params.push_str(k);
            params.push('=');
            params.push_str(&rendered);
            if params.len() >= MAX_PARAMS_LEN {
                break;
            }
        }
    }
    let mut name = format!("{trainable}_{id}");
    if !params.is_empty() {
        name.push('_');
        name.extend(params.chars().take(MAX_PARAMS_LEN));
    }
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._=,-".contains(c) { c } else { '_' })
        .collect()
}

/// The open files of one running trial.
pub(crate) struct TrialLogger {
    names: &'static [&'static str],
    dir: PathBuf,
    result: BufWriter<File>,
    progress: BufWriter<File>,
    /// The `result.json` and `progress.csv` lines being formatted (reused).
    line: Vec<u8>,
    csv: Vec<u8>,
}

/// An I/O error on one of a trial's files (the error of every callback).
pub(crate) type LogError = crate::callback::CallbackError;

fn at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError { path: path.to_path_buf(), source }
}

impl TrialLogger {
    /// Rewrites `result.json` and `progress.csv` from the journal's rows (a retry or a
    /// resume rolled the trial back) and keeps them open for the next results. The journal
    /// is the record: a crash during the rewrite is repaired by the next resume.
    pub fn rewrite(
        dir: &Path,
        names: &'static [&'static str],
        config: &serde_json::Value,
        rows: &[f64],
        id: TrialId,
        last_done: bool,
    ) -> Result<Self, LogError> {
        let mut logger = Self::create(dir, names, config)?;
        let n = names.len() + Auto::ALL.len();
        let count = rows.len() / n;
        for (k, row) in rows.chunks_exact(n).enumerate() {
            logger.result(row, id, last_done && k + 1 == count)?;
        }
        logger.flush()?;
        Ok(logger)
    }

    /// Creates the trial directory, writes `params.json` and opens the result files.
    pub fn create(
        dir: &Path,
        names: &'static [&'static str],
        config: &serde_json::Value,
    ) -> Result<Self, LogError> {
        refuse_link(dir)?;
        fs::create_dir_all(dir).map_err(at(dir))?;
        for file in ["params.json", "result.json", "progress.csv"] {
            refuse_link(&dir.join(file))?;
        }
        let params = dir.join("params.json");
        let text =
            serde_json::to_vec_pretty(config).map_err(io::Error::other).map_err(at(&params))?;
        fs::write(&params, text).map_err(at(&params))?;
        let result_path = dir.join("result.json");
        let result = File::create(&result_path).map_err(at(&result_path))?;
        let progress_path = dir.join("progress.csv");
        let progress = File::create(&progress_path).map_err(at(&progress_path))?;
        let mut progress = BufWriter::with_capacity(4096, progress);
        let header = names
            .iter()
            .copied()
            .chain(Auto::ALL.iter().map(|a| a.name()))
            .chain(["trial_id", "done"])
            .collect::<Vec<_>>()
            .join(",");
        writeln!(progress, "{header}").map_err(at(&progress_path))?;
        Ok(Self {
            names,
            dir: dir.to_path_buf(),
            result: BufWriter::with_capacity(4096, result),
            progress,
            line: Vec::with_capacity(256),
            csv: Vec::with_capacity(128),
        })
    }

    /// Appends one result (`values` as in a result row) to `result.json` and `progress.csv`.
    pub fn result(&mut self, values: &[f64], id: TrialId, done: bool) -> Result<(), LogError> {
        if crate::faultpoint::hit(crate::faultpoint::Point::Result) {
            let _ = self.write_result(values, id, done);
            let _ = self.flush();
            crate::faultpoint::die();
        }
        let written = if crate::faultpoint::reached(crate::faultpoint::Point::ResultFull) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            self.write_result(values, id, done)
        };
        written.map_err(|source| LogError { path: self.dir.join("result.json"), source })
    }

    fn write_result(&mut self, values: &[f64], id: TrialId, done: bool) -> io::Result<()> {
        use crate::number::write_f64;
        let n = self.names.len();
        let (r, p) = (&mut self.line, &mut self.csv);
        r.clear();
        p.clear();
        r.push(b'{');
        for (i, name) in self.names.iter().enumerate() {
            r.push(b'"');
            r.extend_from_slice(name.as_bytes());
            r.extend_from_slice(b"\":");
            write_f64(r, values[i]);
            r.push(b',');
            write_f64(p, values[i]);
            p.push(b',');
        }
        let (iter, ts) = (values[n] as u64, values[n + 3] as u64);
        write!(r, "\"training_iteration\":{iter},\"time_this_iter_s\":")?;
        write_f64(r, values[n + 1]);
        r.extend_from_slice(b",\"time_total_s\":");
        write_f64(r, values[n + 2]);
        writeln!(r, ",\"timestamp\":{ts},\"trial_id\":\"{id}\",\"done\":{done}}}")?;
        write!(p, "{iter},")?;
        write_f64(p, values[n + 1]);
        p.push(b',');
        write_f64(p, values[n + 2]);
        writeln!(p, ",{ts},{id},{done}")?;
        self.result.write_all(r)?;
        self.progress.write_all(p)
    }

    /// Flushes both files.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.result
            .flush()
            .map_err(|source| LogError { path: self.dir.join("result.json"), source })?;
        self.progress
            .flush()
            .map_err(|source| LogError { path: self.dir.join("progress.csv"), source })
    }
}

/// Refuses to write through a symbolic link (it could lead outside the experiment).
fn refuse_link(path: &Path) -> Result<(), LogError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(LogError {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "a symbolic link inside the experiment directory; the runner writes only real \
                 files of the experiment: replace it with a file",
            ),
        }),
        _ => Ok(()),
    }
}

/// Writes the trial's `error.txt` (and `params.json` when given: trials that never
/// started).
pub(crate) fn write_error(
    dir: &Path,
    message: &str,
    params: Option<&serde_json::Value>,
) -> Result<(), LogError> {
    fs::create_dir_all(dir).map_err(at(dir))?;
    if let Some(config) = params {
        let path = dir.join("params.json");
        let text =
            serde_json::to_vec_pretty(config).map_err(io::Error::other).map_err(at(&path))?;
        fs::write(&path, text).map_err(at(&path))?;
    }
    let path = dir.join("error.txt");
    fs::write(&path, format!("{message}\n")).map_err(at(&path))
}

/// Writes the trial's `error.txt`: every retried failure, then the final error when the
/// trial ended in ERROR; `params.json` too when given (a trial that never started).
pub(crate) fn write_errors(
    dir: &Path,
    failures: &[String],
    last: Option<&str>,
    params: Option<&serde_json::Value>,
) -> Result<(), LogError> {
    if failures.is_empty() {
        return last.map_or(Ok(()), |m| write_error(dir, m, params));
    }
    let mut text = String::new();
    for (k, f) in failures.iter().enumerate() {
        text.push_str(&format!("failure {} (retried from the latest checkpoint): {f}\n", k + 1));
    }
    if let Some(m) = last {
        text.push_str(&format!("failure {} (final): {m}\n", failures.len() + 1));
    }
    write_error(dir, text.trim_end(), params)
}

/// Number of lines of a file (0 when it does not exist).
pub(crate) fn count_lines(path: &Path) -> usize {
    fs::read(path).map(|b| b.iter().filter(|c| **c == b'\n').count()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dir_names_are_short_and_safe() {
        let config = serde_json::json!({"lr": 0.000123456, "path": "../../etc/passwd", "n": 3});
        let name = trial_dir_name("Train", TrialId(7), &config);
        assert!(name.starts_with("Train_00007_"), "{name}");
        assert!(!name.contains('/') && !name.contains('\\'), "{name}");
        assert!(name.len() <= 80, "{name}");
        assert_ne!(name, "..");
        assert!(name.contains("lr=0.0001"), "{name}");
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod callback_tests;
