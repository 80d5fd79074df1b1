//! The experiment directory: one run at a time (a lock), nothing in it that leads
//! elsewhere (no links), nothing of another experiment, and trial files that agree with
//! the journal.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::journal::JOURNAL_FILE;

use crate::tuner::RunError;

/// Name of the lock file in the experiment directory.
pub(crate) const LOCK_FILE: &str = ".tune.lock";

/// An exclusive lock on an experiment directory, held while a run writes to it. Another
/// process (or another run in this one) that tries to run the same experiment is refused
/// instead of interleaving its trials with ours. The operating system releases it when
/// the process ends, however it ends.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub fn take(dir: &Path) -> Result<Self, RunError> {
        let path = dir.join(LOCK_FILE);
        refuse_link(dir, &path)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| RunError::LocalDir { path: path.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(RunError::Locked { experiment_dir: dir.to_path_buf() })
            }
            Err(std::fs::TryLockError::Error(source)) => Err(RunError::LocalDir { path, source }),
        }
    }
}

/// Refuses a path inside the experiment directory that is a symbolic link, or lies under
/// one: a link would make the run write results or checkpoints outside the experiment,
/// or read another trial's.
pub(crate) fn refuse_link(root: &Path, path: &Path) -> Result<(), RunError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(RunError::Link { path: at });
        }
    }
    Ok(())
}

/// On a fresh start: the experiment directory must hold nothing but what this run
/// creates. Trial directories without a journal are an earlier experiment whose journal
/// was lost; starting over them would mix two experiments.
pub(crate) fn refuse_leftovers(dir: &Path, resume: bool) -> Result<(), RunError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| RunError::LocalDir { path: dir.to_path_buf(), source })?;
    let mut found: Vec<PathBuf> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == LOCK_FILE || name == JOURNAL_FILE {
            continue;
        }
        found.push(entry.path());
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    Err(RunError::Leftovers {
        experiment_dir: dir.to_path_buf(),
        example: found.swap_remove(0),
        resume,
    })
}

/// Whether a finished trial's `result.json`, `progress.csv` or `params.json` disagree
/// with the journal (a crash between the journal and the files): they are rewritten then.
pub(crate) fn trial_files_stale(
    dir: &Path,
    metrics: usize,
    config: &serde_json::Value,
    rows: &[f64],
) -> bool {
    let width = metrics + crate::trial::Auto::ALL.len();
    let n = rows.len() / width.max(1);
    let result = dir.join("result.json");
    if n == 0 && !result.exists() {
        // It never started: nothing was written but its error.
        return false;
    }
    let params_ok = std::fs::read(dir.join("params.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v == *config);
    !(params_ok
        && crate::logger::count_lines(&result) == n
        && crate::logger::count_lines(&dir.join("progress.csv")) == n + 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::take(dir.path()).unwrap();
        let err = DirLock::take(dir.path()).unwrap_err();
        assert!(matches!(err, RunError::Locked { .. }), "{err}");
        drop(first);
        DirLock::take(dir.path()).unwrap();
    }

    #[test]
    fn links_inside_the_experiment_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("t0")).unwrap();
        let err = refuse_link(dir.path(), &dir.path().join("t0/checkpoint_1")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        refuse_link(dir.path(), &dir.path().join("t1/checkpoint_1")).unwrap();
    }
}
