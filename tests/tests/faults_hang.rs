//! Hangs end to end: a real experiment process (`src/bin/fault_experiment.rs`) whose step
//! never returns (`HANG_AT`), or whose worker process stops itself (`HANG_HOW=stop`), must
//! still end: at `Tuner::step_timeout`, after Ctrl-C's or SIGTERM's grace period, when a
//! stopped worker has been stopped too long; and a worker stuck in a step must not outlive
//! a driver killed with SIGKILL. Every wait here is bounded: a run that does not end in
//! time is killed (with the worker processes it started) and the test fails.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fault_experiment");

/// Longest any run here may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(15);

/// A step timeout long enough that no healthy step (1 ms) or worker start comes near it.
const STEP_TIMEOUT_MS: &str = "1000";

struct Run {
    child: Child,
    dir: PathBuf,
    stderr: PathBuf,
}

/// Starts the experiment `dir/exp` (`--isolate`, `--resume` as asked) with `env`.
fn start(dir: &Path, isolate: bool, resume: bool, env: &[(&str, &str)]) -> Run {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let stderr = dir.join(format!("stderr-{}.txt", RUNS.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = Command::new(BIN);
    cmd.arg(dir).arg("exp");
    if isolate {
        cmd.arg("--isolate");
    }
    if resume {
        cmd.arg("--resume");
    }
    for var in [
        "TUNE_FAULT_INJECT",
        "FAULT_STEP_KILL",
        "HANG_AT",
        "HANG_HOW",
        "MAX_FAILURES",
        "STEP_TIMEOUT_MS",
        "INTERRUPT_GRACE_MS",
        "TUNE_WORKER_STOPPED_LIMIT",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A file, not a pipe: a worker process that outlived its driver would hold a pipe open.
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(&stderr).unwrap()))
        .spawn()
        .unwrap();
    Run { child, dir: dir.join("exp"), stderr }
}

impl Run {
    /// Waits for the run to end (at most [`RUN_LIMIT`]); returns its status and stderr.
    fn wait(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return (status, stderr);
            }
            if Instant::now() > deadline {
                self.kill_all();
                let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!("the run did not end within {RUN_LIMIT:?} (killed): {stderr}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The processes that hung in a step, once each has written its id (at most 10 s).
    fn wait_for_hung(&mut self, n: usize) -> Vec<u32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pids = hung_pids(&self.dir);
            if pids.len() >= n {
                return pids;
            }
            if Instant::now() > deadline || self.child.try_wait().unwrap().is_some() {
                self.kill_all();
                panic!("no step hung: {}", std::fs::read_to_string(&self.stderr).unwrap());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the journal holds `n` results (at most 10 s).
    fn wait_for_results(&mut self, n: usize) {
        let journal = self.dir.join(tune_runtime::storage::JOURNAL_FILE);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&journal).unwrap_or_default();
            if text.matches("\"type\":\"result\"").count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill_all();
        panic!("the experiment made no progress");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([name, &pid]).status().unwrap().success());
    }

    /// Kills this run's process and the worker processes that hung (both started here).
    fn kill_all(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in hung_pids(&self.dir) {
            if alive(pid) {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
        }
    }
}

/// Process ids written by steps that hung (`hung-once` in a trial directory).
fn hung_pids(exp: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(exp) else { return Vec::new() };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("hung-once")).ok())
        .filter_map(|pid| pid.trim().parse().ok())
        .collect()
}

/// Whether process `pid` exists and has not exited (a zombie has).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| !r.trim_start().starts_with(['Z', 'X'])))
        .unwrap_or(false)
}

fn run(dir: &Path, isolate: bool, resume: bool, env: &[(&str, &str)]) -> (ExitStatus, String) {
    start(dir, isolate, resume, env).wait()
}

fn summary(dir: &Path) -> String {
    let out = Command::new(BIN).arg(dir).arg("exp").arg("--summary").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The summary of the same experiment run without faults.
fn reference() -> String {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = run(dir.path(), false, false, &[]);
    assert!(status.success(), "{stderr}");
    let s = summary(dir.path());
    assert_eq!(s.lines().count(), 6, "{s}");
    s
}

/// The failure messages the trials' `error.txt` files hold.
fn errors(exp: &Path) -> String {
    std::fs::read_dir(exp)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("error.txt")).ok())
        .collect()
}

#[test]
fn a_step_that_never_returns_fails_at_the_step_timeout_and_is_retried() {
    let reference = reference();
    for isolate in [false, true] {
        // The two trials with k == 2 hang once at iteration 5, are given up on after the
        // timeout, and continue from checkpoint_3: the results of an uninterrupted run.
        // Isolated, the hung worker processes are gone when `run` returns (else status 4).
        let dir = tempfile::tempdir().unwrap();
        let env = [("HANG_AT", "5"), ("STEP_TIMEOUT_MS", STEP_TIMEOUT_MS), ("MAX_FAILURES", "1")];
        let (status, stderr) = run(dir.path(), isolate, false, &env);
        assert_eq!(status.code(), Some(0), "isolate {isolate}: {stderr}");
        assert_eq!(hung_pids(&dir.path().join("exp")).len(), 2, "two steps hung");
        let s = summary(dir.path());
        assert_eq!(s.matches("failures=1").count(), 2, "{s}");
        assert_eq!(s.replace("failures=1", "failures=0"), reference, "isolate {isolate}");
        let errors = errors(&dir.path().join("exp"));
        assert_eq!(errors.matches("step_timeout").count(), 2, "{errors}");
    }
    // Without retries they end in ERROR, the other trials finish.
    let dir = tempfile::tempdir().unwrap();
    let env = [("HANG_AT", "5"), ("STEP_TIMEOUT_MS", STEP_TIMEOUT_MS)];
    let (status, stderr) = run(dir.path(), false, false, &env);
    assert_eq!(status.code(), Some(2), "{stderr}");
    let s = summary(dir.path());
    assert_eq!(s.matches(" ERROR ").count(), 2, "{s}");
    assert_eq!(s.matches(" TERMINATED ").count(), 4, "{s}");
}

#[test]
fn one_ctrl_c_gives_up_on_a_hung_step_after_the_grace_period_and_a_resume_continues_it() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_millis(500);
    let env = [("HANG_AT", "5"), ("INTERRUPT_GRACE_MS", "500")];
    let mut r = start(dir.path(), false, false, &env);
    r.wait_for_hung(1);
    let sent = Instant::now();
    r.signal("-INT");
    let (status, stderr) = r.wait();
    assert_eq!(status.code(), Some(3), "RunError::Interrupted: {stderr}");
    assert!(stderr.contains("resume(true)"), "says how to resume: {stderr}");
    assert!(sent.elapsed() >= grace, "the hung step had its grace period");
    let (status, stderr) = run(dir.path(), false, true, &[]);
    assert!(status.success(), "the resume completes: {stderr}");
    assert_eq!(summary(dir.path()), reference, "resumed from the latest checkpoints");
}

#[test]
fn sigterm_stops_like_the_first_ctrl_c_and_the_run_resumes() {
    let reference = reference();
    // In process, steps that return: a graceful stop.
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), false, false, &[("STEP_MS", "15")]);
    r.wait_for_results(8);
    r.signal("-TERM");
    let (status, stderr) = r.wait();
    assert_eq!(status.code(), Some(3), "RunError::Interrupted: {stderr}");
    assert!(stderr.contains("resume(true)"), "{stderr}");
    let (status, stderr) = run(dir.path(), false, true, &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(dir.path()), reference, "resumed after SIGTERM");
    // Isolated, with a worker stuck in a step: given up on after the grace period, its
    // process killed (else status 4), and continued by the resume.
    let dir = tempfile::tempdir().unwrap();
    let env = [("HANG_AT", "5"), ("INTERRUPT_GRACE_MS", "300")];
    let mut r = start(dir.path(), true, false, &env);
    let hung = r.wait_for_hung(1);
    r.signal("-TERM");
    let (status, stderr) = r.wait();
    assert_eq!(status.code(), Some(3), "RunError::Interrupted: {stderr}");
    assert!(hung.iter().all(|p| !alive(*p)), "the stuck worker was killed");
    let (status, stderr) = run(dir.path(), true, true, &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(summary(dir.path()), reference, "resumed after SIGTERM (isolated)");
}

#[test]
fn a_stopped_worker_is_killed_after_the_stopped_limit_or_at_the_step_timeout() {
    let reference = reference();
    let cases: [(&[(&str, &str)], &str); 2] = [
        (&[("TUNE_WORKER_STOPPED_LIMIT", "0.5")], "SIGSTOP"),
        // The default limit (30 s) is longer than the whole test may take.
        (&[("STEP_TIMEOUT_MS", STEP_TIMEOUT_MS)], "step_timeout"),
    ];
    for (extra, why) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut env = vec![("HANG_AT", "5"), ("HANG_HOW", "stop"), ("MAX_FAILURES", "1")];
        env.extend_from_slice(extra);
        let (status, stderr) = run(dir.path(), true, false, &env);
        assert_eq!(status.code(), Some(0), "{why}: {stderr}");
        assert_eq!(hung_pids(&dir.path().join("exp")).len(), 2, "two workers stopped");
        let s = summary(dir.path());
        assert_eq!(s.replace("failures=1", "failures=0"), reference, "{why}");
        let errors = errors(&dir.path().join("exp"));
        assert_eq!(errors.matches(why).count(), 2, "{why}: {errors}");
    }
    // A limit that is not a number of seconds is refused before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) = run(dir.path(), true, false, &[("TUNE_WORKER_STOPPED_LIMIT", "soon")]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("`TUNE_WORKER_STOPPED_LIMIT` is `soon`"), "{stderr}");
    assert!(!dir.path().join("exp").exists(), "nothing written");
}

#[test]
fn a_worker_stuck_in_a_step_does_not_outlive_its_killed_driver() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), true, false, &[("HANG_AT", "5")]);
    let hung = r.wait_for_hung(1);
    assert!(hung.iter().all(|p| alive(*p)), "the worker is stuck, not dead");
    r.signal("-KILL");
    let _ = r.child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while hung.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<u32> = hung.iter().copied().filter(|p| alive(*p)).collect();
    r.kill_all();
    assert!(left.is_empty(), "worker processes {left:?} outlived their killed driver");
}

// In process: calls into the trainable other than `step` that never return.

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialId, TrialResult, TrialStatus,
    scheduler::{Decision, Pausing, Scheduler},
};

search_space! {
    pub struct StuckCfg {
        k: i64 = grid([1, 2]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Iter {
    iter: f64,
}

/// Its `cleanup` never returns; `reset_config` always reuses the instance.
#[trainable(config = StuckCfg, metrics = Iter, test = false)]
pub struct CleanupNeverReturns {
    iter: u64,
}

impl Trainable for CleanupNeverReturns {
    fn setup(_config: &StuckCfg, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Self { iter: 0 })
    }
    fn step(&mut self) -> TrainResult<Iter> {
        self.iter += 1;
        Ok(Iter { iter: self.iter as f64 })
    }
    fn reset_config(&mut self, _config: &StuckCfg, _ctx: &TrialContext) -> TrainResult<bool> {
        self.iter = 0;
        Ok(true)
    }
    fn cleanup(&mut self) {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Runs `run` on a thread of its own; fails the test when it does not return in 10 s.
fn bounded<R: Send + 'static>(run: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run());
    });
    rx.recv_timeout(Duration::from_secs(10)).expect("the run did not end within 10 s")
}

#[test]
fn a_cleanup_that_never_returns_ends_at_the_step_timeout() {
    // Ended by the iteration criterion (which without a step timeout would end the trial
    // in the task of its last step), by a metric criterion (a task of its own to end it),
    // and with `reuse_actors` (the instances' cleanup is left to the end of the run).
    let stops = [
        (Stop::iterations(3), false),
        (Stop::at_least(Iter::ITER, 3.0), false),
        (Stop::iterations(3), true),
    ];
    for (stop, reuse) in stops {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().to_path_buf();
        let a = bounded(move || {
            Tuner::<CleanupNeverReturns>::new()
                .local_dir(local)
                .name("exp")
                .verbose(0)
                .max_concurrent_trials(2)
                .reuse_actors(reuse)
                .stop(stop)
                .step_timeout(Duration::from_secs(1))
                .run()
        })
        .unwrap();
        assert_eq!(a.count(TrialStatus::Terminated), 2, "reuse {reuse}");
        assert!(a.trials().iter().all(|t| t.num_results() == 3), "reuse {reuse}");
    }
}

/// Its step at iteration 3 never returns, the first time in this process.
#[trainable(config = StuckCfg, metrics = Iter, test = false)]
pub struct HangsOnceAtThree {
    iter: u64,
}

static HUNG_AT_THREE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Trainable for HangsOnceAtThree {
    fn setup(_config: &StuckCfg, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Self { iter: 0 })
    }
    fn step(&mut self) -> TrainResult<Iter> {
        self.iter += 1;
        if self.iter == 3 && !HUNG_AT_THREE.swap(true, Ordering::SeqCst) {
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        Ok(Iter { iter: self.iter as f64 })
    }
}

/// Pauses each trial once, at iteration 2, and resumes paused trials first.
#[derive(Default)]
struct PauseOnce(Vec<TrialId>);

impl Scheduler<StuckCfg, Iter> for PauseOnce {
    fn name(&self) -> &str {
        "PauseOnce"
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Iter>) -> Decision {
        if result.training_iteration == 2 && !self.0.contains(&trial) {
            self.0.push(trial);
            return Decision::Pause;
        }
        Decision::Continue
    }
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        paused.first().or(pending.first()).copied()
    }
}

#[test]
fn a_step_resumed_from_a_pause_in_memory_has_the_step_timeout_too() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().to_path_buf();
    let a = bounded(move || {
        Tuner::<HangsOnceAtThree>::new()
            .local_dir(local)
            .name("exp")
            .verbose(0)
            .max_concurrent_trials(1)
            .scheduler(PauseOnce::default())
            .pausing(Pausing::Memory)
            .stop(Stop::iterations(4))
            .max_failures(1)
            .step_timeout(Duration::from_secs(1))
            .run()
    })
    .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 2);
    let failures: Vec<usize> = a.trials().iter().map(|t| t.failures().len()).collect();
    assert_eq!(failures.iter().sum::<usize>(), 1, "one step hung: {failures:?}");
    assert!(a.trials().iter().all(|t| t.num_results() == 4));
}
