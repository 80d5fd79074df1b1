//! Crash safety end to end: a real experiment process (`src/bin/fault_experiment.rs`) is
//! killed with SIGKILL at many points (in a step, in a checkpoint write, in a journal
//! append, after a result reached the files but not the journal), or interrupted with
//! Ctrl-C, then run again with `--resume`; the final analysis and files must equal those
//! of an uninterrupted run: no result lost, none duplicated.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fault_experiment");

fn run(dir: &Path, resume: bool, env: &[(&str, &str)]) -> ExitStatus {
    run_with(dir, resume, false, env)
}

fn run_with(dir: &Path, resume: bool, isolate: bool, env: &[(&str, &str)]) -> ExitStatus {
    let mut cmd = Command::new(BIN);
    cmd.arg(dir).arg("exp");
    if isolate {
        cmd.arg("--isolate");
    }
    if resume {
        cmd.arg("--resume");
    }
    cmd.env_remove("TUNE_FAULT_INJECT").env_remove("FAULT_STEP_KILL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap()
}

fn summary(dir: &Path) -> String {
    let out = Command::new(BIN).arg(dir).arg("exp").arg("--summary").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn reference() -> String {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), false, &[]).success());
    let s = summary(dir.path());
    assert_eq!(s.lines().count(), 6, "{s}");
    s
}

/// Kills the run at each point, resumes until it completes, compares with the reference.
/// Returns (kill points tried, processes actually killed).
fn kill_and_resume(reference: &str, points: &[&[(&str, &str)]]) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut killed = 0;
    for (k, env) in points.iter().enumerate() {
        let status = run(dir.path(), k > 0, env);
        if !status.success() {
            assert_eq!(status.code(), None, "killed by a signal, not failed: {env:?}");
            killed += 1;
        }
    }
    let status = run(dir.path(), true, &[]);
    assert!(status.success(), "the resumed run completes ({points:?}): {status}");
    assert_eq!(summary(dir.path()), reference, "after kills at {points:?}");
    // Resuming a finished experiment changes nothing.
    assert!(run(dir.path(), true, &[]).success());
    assert_eq!(summary(dir.path()), reference);
    (points.len(), killed)
}

#[test]
fn sigkill_at_any_point_then_resume_equals_an_uninterrupted_run() {
    let reference = reference();
    let mut tried = 0;
    let mut killed = 0;
    let single: Vec<Vec<(&str, String)>> = [
        ("FAULT_STEP_KILL", vec!["1", "7", "23", "41"]),
        ("TUNE_FAULT_INJECT", vec!["checkpoint:1", "checkpoint:5", "checkpoint:11"]),
        ("TUNE_FAULT_INJECT", vec!["journal:1", "journal:4", "journal:30", "journal:77"]),
        ("TUNE_FAULT_INJECT", vec!["result:2", "result:19", "result:50"]),
    ]
    .into_iter()
    .flat_map(|(k, vs)| vs.into_iter().map(move |v| vec![(k, v.to_string())]))
    .collect();
    for point in &single {
        let env: Vec<(&str, &str)> = point.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (t, k) = kill_and_resume(&reference, &[&env]);
        tried += t;
        killed += k;
    }
    // Several kills of the same experiment in a row, each at a different kind of point.
    let chain: [&[(&str, &str)]; 4] = [
        &[("TUNE_FAULT_INJECT", "journal:9")],
        &[("FAULT_STEP_KILL", "5")],
        &[("TUNE_FAULT_INJECT", "checkpoint:2")],
        &[("TUNE_FAULT_INJECT", "result:3")],
    ];
    let (t, k) = kill_and_resume(&reference, &chain);
    tried += t;
    killed += k;
    eprintln!("kill points tried: {tried}, processes killed: {killed}, results lost: 0");
    assert!(killed >= tried - 1, "{killed} of {tried} kill points were reached");
}

fn wait_for_results(dir: &Path, n: usize) {
    let journal = dir.join("exp").join(tune_runtime::storage::JOURNAL_FILE);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(&journal).unwrap_or_default();
        if text.matches("\"type\":\"result\"").count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the experiment made no progress");
}

fn sigint(pid: u32) {
    let ok = Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    assert!(ok.success());
}

#[test]
fn ctrl_c_stops_gracefully_and_twice_exits_at_once_both_resumable() {
    let reference = reference();
    for twice in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(BIN)
            .arg(dir.path())
            .arg("exp")
            // Twice: steps long enough that the graceful stop the first Ctrl-C starts is
            // still waiting for them when the second arrives, even on a loaded machine (with
            // 15 ms steps the child sometimes finished first and exited with 3).
            .env("STEP_MS", if twice { "300" } else { "15" })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_results(dir.path(), 8);
        sigint(child.id());
        if twice {
            std::thread::sleep(Duration::from_millis(2));
            sigint(child.id());
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if twice {
            assert_eq!(out.status.code(), Some(130), "{stderr}");
        } else {
            assert_eq!(out.status.code(), Some(3), "{stderr}");
            assert!(stderr.contains("resume(true)"), "says how to resume: {stderr}");
        }
        assert!(run(dir.path(), true, &[]).success());
        assert_eq!(summary(dir.path()), reference, "after Ctrl-C (twice: {twice})");
    }
}

#[test]
fn retried_failures_are_recorded_and_results_match() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), false, &[("PANIC_AT", "5"), ("MAX_FAILURES", "1")]).success());
    let s = summary(dir.path());
    // The k == 2 trials failed once each and were retried from checkpoint_3.
    let strip = |s: &str| s.replace("failures=1", "failures=0");
    assert_eq!(strip(&s), reference);
    assert_eq!(s.matches("failures=1").count(), 2, "{s}");
    // Without retries they end in ERROR, keeping the results before the panic.
    let dir = tempfile::tempdir().unwrap();
    let status = run(dir.path(), false, &[("PANIC_AT", "5")]);
    assert_eq!(status.code(), Some(2));
    let s = summary(dir.path());
    assert_eq!(s.matches(" ERROR ").count(), 2, "{s}");
    // A resume with `restart_errored` semantics is covered in-process; resume_errored here:
    // resuming keeps them ERROR by default.
    assert_eq!(run(dir.path(), true, &[]).code(), Some(2));
}

#[test]
fn isolated_trials_give_the_same_results_and_contain_process_deaths() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    assert!(run_with(dir.path(), false, true, &[]).success());
    assert_eq!(summary(dir.path()), reference, "isolated = in process");
    for how in ["abort", "exit", "kill", "segv"] {
        // Without retries only the dying trials end in ERROR.
        let dir = tempfile::tempdir().unwrap();
        let status = run_with(dir.path(), false, true, &[("DIE_AT", "5"), ("DIE_HOW", how)]);
        assert_eq!(status.code(), Some(2), "{how}: the driver survived, trials errored");
        let s = summary(dir.path());
        assert_eq!(s.matches(" ERROR ").count(), 2, "{how}: {s}");
        assert_eq!(s.matches(" TERMINATED ").count(), 4, "{how}: {s}");
        let error = std::fs::read_dir(dir.path().join("exp"))
            .unwrap()
            .map(|e| e.unwrap().path().join("error.txt"))
            .find(|p| p.exists())
            .unwrap();
        let text = std::fs::read_to_string(error).unwrap();
        let expect = match how {
            "abort" => "SIGABRT",
            "exit" => "exit status: 7",
            "kill" => "SIGKILL",
            _ => "SIGSEGV",
        };
        assert!(text.contains("worker process") && text.contains(expect), "{how}: {text}");
        // With a retry they continue from their checkpoint and match the reference.
        let dir = tempfile::tempdir().unwrap();
        let env = [("DIE_AT", "5"), ("DIE_HOW", how), ("MAX_FAILURES", "1")];
        assert!(run_with(dir.path(), false, true, &env).success(), "{how}");
        let s = summary(dir.path());
        assert_eq!(s.replace("failures=1", "failures=0"), reference, "{how}");
    }
}

/// A trial file on a full disk while the journal still works (`result_full`: from the n-th
/// result written to the trial files on, every write fails with ENOSPC): the run stops like
/// Ctrl-C with the advice to resume, no trial is marked ERROR or TERMINATED early, and the
/// resume gives the uninterrupted run's results and files.
#[test]
fn a_full_trial_file_stops_the_run_which_then_resumes() {
    let reference = reference();
    for n in [1, 7, 25] {
        let dir = tempfile::tempdir().unwrap();
        let n = n.to_string();
        let out = Command::new(BIN)
            .arg(dir.path())
            .arg("exp")
            .env_remove("FAULT_STEP_KILL")
            .env("TUNE_FAULT_INJECT", format!("result_full:{n}"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stopped with an error at write {n}: {err}");
        assert!(err.contains("result.json") && err.contains(".resume(true)"), "{err}");
        let journal =
            std::fs::read_to_string(dir.path().join("exp/experiment_journal.jsonl")).unwrap();
        assert!(!journal.contains("\"ERROR\""), "no trial errored at write {n}");
        assert!(run(dir.path(), true, &[]).success(), "the resume completes (write {n})");
        assert_eq!(summary(dir.path()), reference, "resumed after a full trial file at write {n}");
    }
}

const HYPERBAND: (&str, &str) = ("SCHEDULER", "hyperband");

fn env_with<'a>(
    base: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(extra).copied().collect()
}

/// HyperBand pausing trials to disk, SIGKILLed right after a trial paused: once its pause
/// checkpoint is written but not yet journaled (`pause_checkpoint`), and once the
/// checkpoint and the PAUSED status are journaled (`paused`), at the first pauses of the
/// run (each of them in turn). After the resume no trial has a result missing, none is left PAUSED while the
/// run reports success (the binary exits 0 only when every trial is TERMINATED), and the
/// results equal those of an uninterrupted run.
#[test]
fn sigkill_right_after_a_pause_to_disk_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), false, &[HYPERBAND]).success());
    let reference = summary(dir.path());
    let journal =
        std::fs::read_to_string(dir.path().join("exp").join(tune_runtime::storage::JOURNAL_FILE))
            .unwrap();
    let pauses = journal.matches("\"status\":\"PAUSED\"").count();
    assert!(pauses >= 3, "the reference run pauses trials to disk ({pauses})");
    // The same experiment gives the same results run after run.
    let again = tempfile::tempdir().unwrap();
    assert!(run(again.path(), false, &[HYPERBAND]).success());
    assert_eq!(summary(again.path()), reference, "HyperBand is deterministic here");
    let mut killed = 0;
    for point in ["pause_checkpoint", "paused"] {
        for n in 1..=pauses {
            let dir = tempfile::tempdir().unwrap();
            let inject = format!("{point}:{n}");
            let status =
                run(dir.path(), false, &env_with(&[HYPERBAND], &[("TUNE_FAULT_INJECT", &inject)]));
            assert_eq!(status.code(), None, "killed at {inject}: {status}");
            killed += 1;
            let status = run(dir.path(), true, &[HYPERBAND]);
            assert!(status.success(), "the resume after {inject} finishes every trial: {status}");
            assert_eq!(summary(dir.path()), reference, "after a kill at {inject}");
        }
    }
    eprintln!("pause kill points: {killed}, results lost: 0");
}

fn spawn(dir: &Path, resume: bool, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(BIN);
    cmd.arg(dir).arg("exp");
    if resume {
        cmd.arg("--resume");
    }
    cmd.env_remove("TUNE_FAULT_INJECT").env_remove("FAULT_STEP_KILL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// A second process that resumes an experiment while a first one runs it is refused
/// with a clear error, and the first run finishes unharmed: its results equal those of
/// an uninterrupted run.
#[test]
fn a_second_process_cannot_resume_a_running_experiment() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let first = spawn(dir.path(), false, &[("STEP_MS", "15")]);
    wait_for_results(dir.path(), 3);
    for resume in [true, false] {
        let second = spawn(dir.path(), resume, &[]).wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(1), "resume {resume}: {err}");
        assert!(err.contains("in use by another run"), "resume {resume}: {err}");
    }
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary(dir.path()), reference, "the first run is unharmed");
}

/// Two processes that start the same fresh experiment at the same moment: exactly one
/// runs it, the other stops with a clear error, and the experiment holds one run.
#[test]
fn two_fresh_processes_of_one_experiment_run_it_once() {
    let reference = reference();
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let a = spawn(dir.path(), false, &[("STEP_MS", "5")]);
        let b = spawn(dir.path(), false, &[("STEP_MS", "5")]);
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let ok = outs.iter().filter(|o| o.status.success()).count();
        let errs: Vec<String> =
            outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect();
        assert_eq!(ok, 1, "round {round}: {errs:?}");
        let failed = outs.iter().position(|o| !o.status.success()).unwrap();
        assert_eq!(outs[failed].status.code(), Some(1), "round {round}: {errs:?}");
        assert!(
            errs[failed].contains("in use by another run")
                || errs[failed].contains("already holds an experiment"),
            "round {round}: {errs:?}"
        );
        assert_eq!(summary(dir.path()), reference, "round {round}");
    }
}

/// After Ctrl-C the summary says the experiment was interrupted, and names as best only a
/// trial that finished (none here: it is interrupted before any trial ends).
#[test]
fn after_ctrl_c_the_summary_says_interrupted_and_names_no_unfinished_trial_best() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn(dir.path(), false, &[("STEP_MS", "15"), ("VERBOSE", "1")]);
    wait_for_results(dir.path(), 4);
    sigint(child.id());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("Experiment interrupted"), "{stdout}");
    assert!(!stdout.contains("Experiment finished"), "{stdout}");
    let log = tune_runtime::storage::ExperimentLog::from_dir(dir.path().join("exp")).unwrap();
    for line in stdout.lines().filter(|l| l.contains("Best")) {
        let named = log
            .trials()
            .iter()
            .find(|t| line.contains(&format!("Net_{}", t.id())))
            .unwrap_or_else(|| panic!("no trial in {line}"));
        assert_eq!(named.status(), tune_runtime::TrialStatus::Terminated, "{line}");
    }
}

/// A resumed run says what it recovered: how many trials finished and are kept, how many
/// continue, from a checkpoint or not, and how many results are reported again.
#[test]
fn a_resumed_run_says_what_it_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let status = run(dir.path(), false, &[("FAULT_STEP_KILL", "41")]);
    assert_eq!(status.code(), None, "killed");
    let log = tune_runtime::storage::ExperimentLog::from_dir(dir.path().join("exp")).unwrap();
    let finished = log.trials().iter().filter(|t| t.status().is_finished()).count();
    let unfinished = log.trials().len() - finished;
    assert!(finished > 0 && unfinished > 0, "{finished} finished, {unfinished} not");
    let out = spawn(dir.path(), true, &[("VERBOSE", "1")]).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr.lines().find(|l| l.contains("resuming `exp`")).unwrap_or_else(|| {
        panic!("the resume says nothing about what it recovered: {stderr}");
    });
    assert!(line.contains(&format!("{finished} finished trial(s) kept")), "{line}");
    assert!(line.contains(&format!("{unfinished} unfinished continue")), "{line}");
    assert!(line.contains("from a checkpoint") && line.contains("rolled back"), "{line}");
}
