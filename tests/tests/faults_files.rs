//! Files of an experiment that were tampered with, or went wrong, between runs: links
//! inside the experiment directory, checkpoints of another trial, manifests that verify
//! nothing, a journal row with a value missing, a deleted journal, and trial files that
//! disagree with the journal. Each is refused (nothing read or written through it) or
//! repaired from the journal; none is silently accepted.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{Cfg, Score, Toy, new_probe, overrides};
use tune_runtime::{
    Analysis, RunError, Stop, TrialStatus, Tuner,
    storage::{ExperimentLog, JOURNAL_FILE, MANIFEST_FILE, Record, read_journal},
};

fn tuner(dir: &Path, tag: u64, extra: &str) -> Tuner<Toy> {
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(3)
        .verbose(0)
        .total_cpus(2.0)
        .num_samples(1)
        .stop(Stop::iterations(6))
        .checkpoint_freq(2)
        .config_overrides_json(overrides(tag, extra))
}

/// The trial with `k == 1` fails at iteration 5: it ends in ERROR with checkpoints at 2
/// and 4, which `resume_errored` continues from.
const FAILS: &str = "\"fail_at\": 5, \"fail_k\": 1";

/// Runs the experiment with one errored trial; returns the errored trial's directory and
/// that of another trial.
fn errored_experiment(dir: &Path, tag: u64) -> (PathBuf, PathBuf) {
    let a = tuner(dir, tag, FAILS).run().unwrap();
    let errored = a.trials().iter().find(|t| t.config().k == 1).unwrap();
    assert_eq!(errored.status(), TrialStatus::Error);
    let other = a.trials().iter().find(|t| t.config().k == 2).unwrap();
    (errored.dir().unwrap().to_path_buf(), other.dir().unwrap().to_path_buf())
}

fn resume_errored(dir: &Path, tag: u64) -> Result<Analysis<Cfg, Score>, RunError> {
    tuner(dir, tag, FAILS).resume(true).resume_errored(true).run()
}

/// Every file under `dir` (links not followed) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).unwrap();
                out.insert(entry.path(), target.to_string_lossy().as_bytes().to_vec());
            } else {
                out.insert(entry.path(), std::fs::read(entry.path()).unwrap());
            }
        }
    }
    out
}

/// Asserts that two snapshots hold the same files with the same bytes; names the ones
/// that differ.
#[track_caller]
fn assert_same(
    after: &BTreeMap<PathBuf, Vec<u8>>,
    before: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    let differ: Vec<&PathBuf> =
        after.keys().chain(before.keys()).filter(|p| after.get(*p) != before.get(*p)).collect();
    assert!(differ.is_empty(), "{what}: changed {differ:?}");
}

/// The checkpoint the last rollback of the trial in `trial_dir` restored (relative path),
/// from the journal.
fn last_rollback(exp: &Path, trial_dir: &Path) -> Option<String> {
    let name = trial_dir.file_name().unwrap().to_string_lossy().into_owned();
    let records = read_journal(&exp.join(JOURNAL_FILE)).unwrap();
    let trial = records
        .iter()
        .find_map(|r| match r {
            Record::Trial { trial, dir: Some(d), .. } if *d == name => Some(*trial),
            _ => None,
        })
        .unwrap();
    records
        .iter()
        .rev()
        .find_map(|r| match r {
            Record::Rollback { trial: t, checkpoint, .. } if *t == trial => {
                Some(checkpoint.clone())
            }
            _ => None,
        })
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// A trial directory that is a link (here to a copy of itself outside the experiment):
/// the resume is refused before anything is written, and nothing outside changes.
/// (Before, the resume wrote the trial's results and checkpoints through the link.)
#[test]
fn a_trial_directory_that_is_a_link_is_refused() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let (errored, _) = errored_experiment(dir.path(), tag);
    let moved = outside.path().join("moved");
    std::fs::rename(&errored, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &errored).unwrap();
    let before = snapshot(outside.path());
    let err = resume_errored(dir.path(), tag).unwrap_err();
    assert!(matches!(&err, RunError::Link { path } if *path == errored), "{err}");
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_same(&snapshot(outside.path()), &before, "nothing was written outside");
}

/// A checkpoint directory that is a link, and a checkpoint file that is a link (each to
/// an exact copy of the trial's own, outside the experiment): the checkpoint is refused
/// and the trial goes back to the one before (`checkpoint_000002`); nothing outside changes.
#[test]
fn a_checkpoint_that_is_or_holds_a_link_is_refused() {
    for link in ["directory", "file"] {
        let (tag, _) = new_probe();
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let (errored, _) = errored_experiment(dir.path(), tag);
        let ck4 = errored.join("checkpoint_000004");
        let copy = outside.path().join("copy");
        copy_dir(&ck4, &copy);
        match link {
            "directory" => {
                std::fs::remove_dir_all(&ck4).unwrap();
                std::os::unix::fs::symlink(&copy, &ck4).unwrap();
            }
            _ => {
                std::fs::remove_file(ck4.join("state.json")).unwrap();
                std::os::unix::fs::symlink(copy.join("state.json"), ck4.join("state.json"))
                    .unwrap();
            }
        }
        let before = snapshot(outside.path());
        let a = resume_errored(dir.path(), tag).unwrap();
        let restored = last_rollback(&dir.path().join("exp"), &errored);
        assert!(
            restored.as_deref().unwrap().ends_with("/checkpoint_000002"),
            "{link}: {restored:?}"
        );
        let t = a.trials().iter().find(|t| t.config().k == 1).unwrap();
        let iters: Vec<u64> = t.results().map(|r| r.training_iteration()).collect();
        assert_eq!(iters, [1, 2, 3, 4], "{link}: from checkpoint_000002, failing at 5 again");
        assert_same(&snapshot(outside.path()), &before, &format!("{link}: outside"));
    }
}

/// A checkpoint copied into another trial's directory (a valid checkpoint with a valid
/// manifest) is refused: its metadata names the trial it belongs to.
#[test]
fn a_checkpoint_of_another_trial_is_refused() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let (errored, other) = errored_experiment(dir.path(), tag);
    let ck4 = errored.join("checkpoint_000004");
    std::fs::remove_dir_all(&ck4).unwrap();
    copy_dir(&other.join("checkpoint_000004"), &ck4);
    resume_errored(dir.path(), tag).unwrap();
    let restored = last_rollback(&dir.path().join("exp"), &errored);
    assert!(restored.as_deref().unwrap().ends_with("/checkpoint_000002"), "{restored:?}");
}

/// A manifest that lists nothing, or not every file the checkpoint holds, verifies
/// nothing: the checkpoint is refused and the trial goes back to `checkpoint_000002`.
#[test]
fn a_manifest_that_lists_nothing_or_not_every_file_is_refused() {
    for case in ["empty", "partial"] {
        let (tag, _) = new_probe();
        let dir = tempfile::tempdir().unwrap();
        let (errored, _) = errored_experiment(dir.path(), tag);
        let manifest = errored.join("checkpoint_000004").join(MANIFEST_FILE);
        let text = match case {
            "empty" => r#"{"version":1,"files":[]}"#.to_string(),
            _ => {
                let mut m: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
                let files = m["files"].as_array_mut().unwrap();
                files.retain(|f| f["path"] != "extra.txt");
                m.to_string()
            }
        };
        std::fs::write(&manifest, text).unwrap();
        resume_errored(dir.path(), tag).unwrap();
        let restored = last_rollback(&dir.path().join("exp"), &errored);
        assert!(
            restored.as_deref().unwrap().ends_with("/checkpoint_000002"),
            "{case}: {restored:?}"
        );
    }
}

/// A result row of the journal with a value missing is an error that names the line,
/// for the analysis and for a resume: not a row silently dropped.
#[test]
fn a_journal_row_with_a_missing_value_is_an_error() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    tuner(dir.path(), tag, "").run().unwrap();
    let exp = dir.path().join("exp");
    let path = exp.join(JOURNAL_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut line = 0;
    let edited: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if line == 0 && l.starts_with("{\"type\":\"result\"") {
                line = i + 1;
                // Drop the first value of the row.
                let start = l.find("\"v\":[").unwrap() + 5;
                let comma = start + l[start..].find(',').unwrap();
                format!("{}{}", &l[..start], &l[comma + 1..])
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&path, edited.join("\n") + "\n").unwrap();
    let err = Analysis::<Cfg, Score>::from_dir(&exp).unwrap_err().to_string();
    assert!(err.contains(&format!("line {line}")) && err.contains("values"), "{err}");
    let err = ExperimentLog::from_dir(&exp).unwrap_err().to_string();
    assert!(err.contains(&format!("line {line}")), "{err}");
    let err = tuner(dir.path(), tag, "").resume(true).run().unwrap_err();
    assert!(matches!(err, RunError::Resume(_)), "{err}");
    assert!(err.to_string().contains(&format!("line {line}")), "{err}");
}

/// A deleted journal with the trial directories left: `resume(true)` and a fresh run both
/// refuse to start over them, say why, and change nothing.
#[test]
fn a_deleted_journal_with_trial_directories_left_is_refused() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    tuner(dir.path(), tag, "").run().unwrap();
    let exp = dir.path().join("exp");
    std::fs::remove_file(exp.join(JOURNAL_FILE)).unwrap();
    // The lock file and the empty journal a refused run opens are no trial data.
    let trial_files = || {
        let mut files = snapshot(&exp);
        files.retain(|p, _| !p.ends_with(".tune.lock") && !p.ends_with(JOURNAL_FILE));
        files
    };
    let before = trial_files();
    for resume in [true, false] {
        let err = tuner(dir.path(), tag, "").resume(resume).run().unwrap_err();
        assert!(matches!(err, RunError::Leftovers { .. }), "resume {resume}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("no journal") && msg.contains("nothing was changed"), "{msg}");
        if resume {
            assert!(msg.contains("cannot be resumed"), "{msg}");
        }
        assert_same(&trial_files(), &before, &format!("resume {resume}"));
    }
}

/// `progress.csv` and `params.json` of a finished trial that disagree with the journal
/// (cut short, or overwritten) are rewritten from it by a resume.
#[test]
fn trial_files_of_finished_trials_are_repaired_from_the_journal() {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), tag, "").run().unwrap();
    let tdir = a.trials()[0].dir().unwrap().to_path_buf();
    let files = ["progress.csv", "params.json", "result.json"];
    let read = |f: &str| std::fs::read_to_string(tdir.join(f)).unwrap();
    let good: Vec<String> = files.iter().map(|f| read(f)).collect();
    for broken in ["progress.csv", "params.json"] {
        match broken {
            "progress.csv" => {
                let cut: Vec<&str> = good[0].lines().take(3).collect();
                std::fs::write(tdir.join(broken), cut.join("\n") + "\n").unwrap();
            }
            _ => std::fs::write(tdir.join(broken), "{}").unwrap(),
        }
        tuner(dir.path(), tag, "").resume(true).run().unwrap();
        let now: Vec<String> = files.iter().map(|f| read(f)).collect();
        assert_eq!(now, good, "{broken} repaired");
    }
}
