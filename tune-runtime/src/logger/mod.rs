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

/// `host:pid` of this process (the status table's `loc`).
pub(crate) fn host_and_pid() -> String {
    let h = ray::host();
    format!("{}:{}", h.hostname, h.pid)
}
pub use self::tensorboard::{TAG_PREFIX, TensorBoardLogger};

use std::fs::{self};
use std::io;
use std::path::Path;

use crate::trial::TrialId;

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

/// An I/O error on one of a trial's files (the error of every callback).
pub(crate) type LogError = crate::callback::CallbackError;

fn at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError { path: path.to_path_buf(), source }
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
