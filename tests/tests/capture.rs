//! Trials' output captured to files (`Tuner::capture_output`), seen from outside a real
//! experiment process (`src/bin/capture_experiment.rs`): the test harness captures
//! `println!` at the std level, not file descriptors 1 and 2, so in-process capture can
//! only be checked on another process's real stdout and stderr.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_capture_experiment");

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg(dir).arg("exp").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Trial directories by the id `setup` sees (`TrialContext::trial_id`, the 5-digit index
/// in the directory's name `Printer_00001_k=2`).
fn trials(exp: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(exp).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_dir() {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        out.insert(name.split('_').nth(1).unwrap().to_string(), path);
    }
    assert_eq!(out.len(), 3, "three trials");
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The lines trial `id` prints on stream `s` (`out` or `err`), `setups` times `setup`.
fn expected(id: &str, s: &str, setups: usize) -> Vec<String> {
    let mut lines = vec![format!("setup-{s} {id}"); setups];
    lines.extend((1..=3).map(|i| format!("step-{s} {id} {i}")));
    lines.sort();
    lines
}

fn sorted(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Not a line the trials print (a status line, the summary, the program's own).
fn is_trial_line(line: &str) -> bool {
    line.starts_with("setup-") || line.starts_with("step-")
}

/// No trial line reached the terminal, and the program's own output after `run()` did
/// (descriptors 1 and 2 were given back), after the status lines.
fn assert_terminal_clean(out: &Output) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(!stdout.lines().any(is_trial_line), "a trial's line in the terminal:\n{stdout}");
    assert!(!stderr.lines().any(is_trial_line), "a trial's line in the terminal:\n{stderr}");
    assert!(stdout.contains("== Status =="), "the status went to the terminal:\n{stdout}");
    assert!(stdout.lines().any(|l| l == "after-run-out"), "stdout restored:\n{stdout}");
    assert!(stderr.lines().any(|l| l == "after-run-err"), "stderr restored:\n{stderr}");
}

#[test]
fn in_process_with_one_worker_each_trial_file_holds_exactly_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--capture", "on"], &[]);
    assert_terminal_clean(&out);
    let exp = dir.path().join("exp");
    for (id, tdir) in trials(&exp) {
        assert_eq!(sorted(&read(&tdir.join("stdout"))), expected(&id, "out", 1), "{id}");
        assert_eq!(sorted(&read(&tdir.join("stderr"))), expected(&id, "err", 1), "{id}");
    }
    // Nothing was left unattributed.
    assert!(!read(&exp.join("stdout")).lines().any(is_trial_line));
    assert!(!read(&exp.join("stderr")).lines().any(is_trial_line));
}

#[test]
fn in_process_with_several_workers_every_line_lands_once_and_never_in_another_trials_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--capture", "on", "--workers", "3"], &[("STEP_MS", "5")]);
    assert_terminal_clean(&out);
    let exp = dir.path().join("exp");
    let trials = trials(&exp);
    for s in ["out", "err"] {
        let name = format!("std{s}");
        let mut all: Vec<String> = sorted(&read(&exp.join(&name)));
        for (id, tdir) in &trials {
            let lines = sorted(&read(&tdir.join(&name)));
            for line in &lines {
                assert!(line.contains(id.as_str()), "{line:?} in the file of {id}");
            }
            all.extend(lines);
        }
        all.retain(|l| is_trial_line(l));
        all.sort();
        let mut want: Vec<String> = trials.keys().flat_map(|id| expected(id, s, 1)).collect();
        want.sort();
        assert_eq!(all, want, "std{s}: every line once, trial files and the experiment's");
    }
}

#[test]
fn isolated_trials_write_their_files_and_keep_them_across_a_retry() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["--isolate", "--workers", "2"],
        &[("PANIC_AT", "2"), ("MAX_FAILURES", "1")],
    );
    assert_terminal_clean(&out);
    let exp = dir.path().join("exp");
    let mut retried = 0;
    for (id, tdir) in trials(&exp) {
        let stdout = read(&tdir.join("stdout"));
        if tdir.join("panicked-once").exists() {
            retried += 1;
            // The first process's lines (setup, steps 1 and 2) are kept; the retry's
            // process starts again from the start (no checkpoint) and appends.
            let mut want = expected(&id, "out", 2);
            want.extend([format!("step-out {id} 1"), format!("step-out {id} 2")]);
            want.sort();
            assert_eq!(sorted(&stdout), want, "{id}");
            let stderr = read(&tdir.join("stderr"));
            assert!(stderr.contains(&format!("injected panic in {id}")), "{stderr}");
        } else {
            assert_eq!(sorted(&stdout), expected(&id, "out", 1), "{id}");
            assert_eq!(sorted(&read(&tdir.join("stderr"))), expected(&id, "err", 1), "{id}");
        }
    }
    assert_eq!(retried, 1);
    // The driver's own descriptors were not captured.
    assert!(!exp.join("stdout").exists());
}

#[test]
fn opted_out_output_reaches_the_terminal_and_no_file_is_written() {
    for isolate in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--capture", "off"];
        if isolate {
            args.push("--isolate");
        }
        let out = run(dir.path(), &args, &[]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        let exp = dir.path().join("exp");
        for (id, tdir) in trials(&exp) {
            for line in expected(&id, "out", 1) {
                assert!(stdout.lines().any(|l| l == line), "{line} in the terminal:\n{stdout}");
            }
            for line in expected(&id, "err", 1) {
                assert!(stderr.lines().any(|l| l == line), "{line} in the terminal:\n{stderr}");
            }
            assert!(!tdir.join("stdout").exists() && !tdir.join("stderr").exists());
        }
        assert!(!exp.join("stdout").exists() && !exp.join("stderr").exists());
    }
}

#[test]
fn by_default_in_process_output_is_left_alone_when_stdout_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], &[]);
    let stdout = text(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("setup-out")), "{stdout}");
    for tdir in trials(&dir.path().join("exp")).values() {
        assert!(!tdir.join("stdout").exists());
    }
}

#[test]
fn descriptors_come_back_after_a_trial_panics_and_its_panic_message_is_in_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--capture", "on"], &[("PANIC_AT", "2")]);
    assert_terminal_clean(&out);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("injected panic"), "the panic message is the trial's:\n{stderr}");
    let exp = dir.path().join("exp");
    let mut panicked = 0;
    for (id, tdir) in trials(&exp) {
        let err = read(&tdir.join("stderr"));
        if tdir.join("panicked-once").exists() {
            panicked += 1;
            assert!(err.contains(&format!("injected panic in {id}")), "{err}");
            // Its lines up to the panic, and nothing after.
            assert_eq!(
                sorted(&read(&tdir.join("stdout"))),
                sorted(&format!("setup-out {id}\nstep-out {id} 1\nstep-out {id} 2\n"))
            );
        } else {
            assert_eq!(sorted(&read(&tdir.join("stdout"))), expected(&id, "out", 1), "{id}");
        }
    }
    assert_eq!(panicked, 1);
}

/// Starts the experiment with slow steps, waits until the first trial has written a step
/// line to its file, then sends SIGINT `signals` times.
fn interrupted(dir: &Path, step_ms: &str, signals: usize) -> Output {
    use std::process::Stdio;
    let child = Command::new(BIN)
        .arg(dir)
        .arg("exp")
        .args(["--capture", "on"])
        .env("STEP_MS", step_ms)
        .env("ITERS", "100")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exp = dir.join("exp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let written = std::fs::read_dir(&exp).ok().is_some_and(|entries| {
            entries.flatten().any(|e| read(&e.path().join("stdout")).contains("step-out"))
        });
        if written {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no step line within 60 s");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for _ in 0..signals {
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn after_ctrl_c_the_run_returns_with_descriptors_restored_and_a_resume_appends_to_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = interrupted(dir.path(), "50", 1);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "run() returned Interrupted:\n{stderr}");
    assert!(stderr.contains("Interrupted: stopping"), "the notice reached the terminal:\n{stderr}");
    assert!(stdout.lines().any(|l| l == "after-run-out"), "{stdout}");
    assert!(stderr.lines().any(|l| l == "after-run-err"), "{stderr}");
    assert!(!stdout.lines().chain(stderr.lines()).any(is_trial_line), "{stdout}\n{stderr}");
    let files: String =
        trials_started(&dir.path().join("exp")).iter().map(|d| read(&d.join("stdout"))).collect();
    assert!(files.contains("setup-out 00000") && files.contains("step-out 00000 1"), "{files}");

    // Resumed: the interrupted trial continues from the checkpoint taken at the
    // interrupt, in a new instance, and its file keeps the first run's lines, followed by
    // the new ones.
    let out = run(dir.path(), &["--capture", "on", "--resume"], &[("ITERS", "100")]);
    assert_terminal_clean(&out);
    let tdir = trials(&dir.path().join("exp")).remove("00000").unwrap();
    let stdout = read(&tdir.join("stdout"));
    let lines: Vec<&str> = stdout.lines().collect();
    let setups: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == "setup-out 00000").collect();
    assert_eq!(setups.len(), 2, "one setup per run:\n{stdout}");
    assert_eq!(setups[0], 0, "{stdout}");
    let step = |l: &str| l.strip_prefix("step-out 00000 ").unwrap().parse::<u64>().unwrap();
    let first: Vec<u64> = lines[1..setups[1]].iter().map(|l| step(l)).collect();
    let second: Vec<u64> = lines[setups[1] + 1..].iter().map(|l| step(l)).collect();
    assert_eq!(first, (1..=first.len() as u64).collect::<Vec<_>>(), "{stdout}");
    assert_eq!(second, (first.len() as u64 + 1..=100).collect::<Vec<_>>(), "{stdout}");
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_the_terminal_given_back() {
    let dir = tempfile::tempdir().unwrap();
    // The first signal waits for a 3 s step to return; the second comes before it does.
    let out = interrupted(dir.path(), "3000", 2);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("Interrupted again"), "the notice reached the terminal:\n{stderr}");
    assert!(!text(&out.stdout).lines().chain(stderr.lines()).any(is_trial_line));
    let files: String =
        trials_started(&dir.path().join("exp")).iter().map(|d| read(&d.join("stdout"))).collect();
    assert!(files.contains("setup-out 00000") && files.contains("step-out 00000 1"), "{files}");
}

/// The trial directories an interrupted experiment has.
fn trials_started(exp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(exp).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()
}
