//! Shared by the integration tests: external tools (Python packages, Chromium) and a
//! small experiment written through the built-in loggers.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use tune_runtime::callback::{
    Callbacks, CheckpointView, EndKind, ExperimentView, KeptView, ResultView, StartView, TrialView,
};
use tune_runtime::logger::{checkpoint_dir_name, trial_id};

/// Whether CI runs this (`CI` set): there a missing tool fails the test instead of skipping
/// it, since `.ci/run` installs every tool.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A missing tool: fails under CI, else prints why the test did nothing.
pub fn missing(what: &str) {
    if in_ci() {
        panic!("{what} is missing; `.ci/run` installs it (see the top of `.ci/run`)");
    }
    eprintln!("SKIPPED: {what} is missing (CI=true makes this a failure; `.ci/run` installs it)");
}

/// The Python interpreter of `TUNE_PYTHON` (default `python3`) if it imports `modules`.
pub fn python_with(var: &str, modules: &str) -> Option<PathBuf> {
    let python = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(python)
    } else {
        missing(&format!("Python with `{modules}` (`{}`, set by {var})", python.display()));
        None
    }
}

/// Chromium (`TUNE_CHROMIUM`, default `chromium`).
pub fn chromium() -> Option<PathBuf> {
    let path =
        std::env::var_os("TUNE_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "chromium".into());
    let ok = Command::new(&path).arg("--version").output().is_ok_and(|o| o.status.success());
    if ok {
        Some(path)
    } else {
        missing(&format!("Chromium (`{}`, set by TUNE_CHROMIUM)", path.display()));
        None
    }
}

pub const STARTED: u64 = 1_700_000_000;

fn row(loss: f64, acc: f64, it: u64) -> Vec<f64> {
    vec![loss, acc, it as f64, 0.25, 0.25 * it as f64, (STARTED + it) as f64]
}

/// Writes the trial files of an experiment `exp` in `dir` through the built-in loggers,
/// as the runner drives them: trial 0 runs 4 iterations with checkpoints at 2 and 4;
/// trial 1 fails after iteration 3, goes back to its checkpoint of iteration 2 and
/// finishes at 4; trial 2 ends in ERROR after one result. Returns the experiment dir.
pub fn write_experiment(dir: &Path) -> PathBuf {
    let exp = dir.join("exp");
    let names = vec!["loss".to_string(), "acc".to_string()];
    let mut c = Callbacks::builtin_loggers(true);
    c.on_experiment_start(&ExperimentView::new("exp", &exp, "Model", &names, STARTED)).unwrap();
    let configs = [
        json!({"lr": 0.1, "layers": 2, "opt": {"Sgd": {"momentum": 0.9}}}),
        json!({"lr": 0.01, "layers": 3, "opt": {"Adam": {"beta1": 0.8}}}),
        json!({"lr": 0.5, "layers": 1, "opt": "Plain"}),
    ];
    for (i, config) in configs.iter().enumerate() {
        let i = i as u32;
        let id = trial_id("exp", STARTED, i);
        let tdir = exp.join(format!("Model_{i:05}"));
        let t = TrialView::new(i, &id, Some(&tdir), config);
        c.on_trial_start(&t, &StartView::first()).unwrap();
        let last = if i == 2 { 1 } else { 4 };
        let mut history = Vec::new();
        for it in 1..=last {
            if i == 1 && it == 4 {
                // Failed after iteration 3: back to the checkpoint of iteration 2.
                let name = checkpoint_dir_name(2);
                let cps = [(2, name.as_str())];
                let kept = &history[..2 * 6];
                c.on_trial_reset(&t, &KeptView::new(kept, 6, false).with_checkpoints(&cps))
                    .unwrap();
                let cp = tdir.join(&name);
                c.on_trial_start(&t, &StartView::restored(&cp, 2, 0.5)).unwrap();
                for again in 3..=4 {
                    let r = row(1.0 / (again as f64 + 1.0), 0.2 * again as f64, again);
                    c.on_trial_result(&t, &ResultView::new(&r, again == 4)).unwrap();
                }
                break;
            }
            let r = row(1.0 / it as f64 + f64::from(i), 0.1 * it as f64, it);
            history.extend_from_slice(&r);
            let name = checkpoint_dir_name(it);
            let result = ResultView::new(&r, i == 0 && it == last);
            if it % 2 == 0 {
                let cp = tdir.join(&name);
                std::fs::create_dir_all(&cp).unwrap();
                std::fs::write(cp.join("state.json"), "{}").unwrap();
                c.on_checkpoint(&t, &CheckpointView::new(it, &cp)).unwrap();
                c.on_trial_result(&t, &result.with_checkpoint(&name)).unwrap();
            } else {
                c.on_trial_result(&t, &result).unwrap();
            }
        }
        if i == 2 {
            c.on_trial_error(&t, "boom").unwrap();
        } else {
            c.on_trial_complete(&t).unwrap();
        }
    }
    c.flush().unwrap();
    c.on_experiment_end(EndKind::Finished).unwrap();
    exp
}
