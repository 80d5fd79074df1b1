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

/// A small experiment run by a real `Tuner`, for the tools that read journals.
pub mod fixture {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use tune_runtime::prelude::*;

    search_space! {
        /// Two hyperparameters, one of them an enum.
        pub struct FixCfg {
            lr: f64 = grid([0.001, 0.01, 0.1]),
            opt: FixOpt,
        }

        /// An optimizer with its own fields.
        pub enum FixOpt {
            Sgd { momentum: f64 = uniform(0.0, 0.9) },
            Adam,
        }
    }

    /// Milliseconds every step sleeps (0 by default).
    pub static SLEEP_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Steps after this iteration wait until [`RELEASE`] is set (0: never wait), in
    /// experiments named `live` only.
    pub static HOLD_AFTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    /// Lets held steps go on.
    pub static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// The metrics.
    #[derive(Debug, Clone, Metrics)]
    pub struct FixMetrics {
        /// Falls with the iteration; lower for larger learning rates.
        loss: f64,
        /// Rises with the iteration.
        acc: f64,
    }

    /// Reports `loss = 1 / (iter * lr * 100)`; the trial with `lr = 0.001` fails at its
    /// second step. [`SLEEP_MS`] slows every step (for live tests). It fails on
    /// purpose, so it has no generated save/restore test.
    #[trainable(config = FixCfg, metrics = FixMetrics, test = false)]
    pub struct Fix {
        iter: u64,
        #[checkpoint(skip)]
        lr: f64,
        #[checkpoint(skip)]
        live: bool,
    }

    impl Trainable for Fix {
        fn setup(config: &FixCfg, ctx: &TrialContext) -> TrainResult<Self> {
            let live = ctx
                .trial_dir
                .as_ref()
                .is_some_and(|d| d.parent().is_some_and(|p| p.ends_with("live")));
            Ok(Self { iter: 0, lr: config.lr, live })
        }

        fn step(&mut self) -> TrainResult<FixMetrics> {
            use std::sync::atomic::Ordering::Relaxed;
            let hold = HOLD_AFTER.load(Relaxed);
            while self.live && hold > 0 && self.iter >= hold && !RELEASE.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let ms = SLEEP_MS.load(Relaxed);
            if ms > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            self.iter += 1;
            if self.lr < 0.005 && self.iter == 2 {
                return Err(TrainError::msg("diverged"));
            }
            let loss = 1.0 / (self.iter as f64 * self.lr * 100.0);
            Ok(FixMetrics { loss, acc: 1.0 - loss / 20.0 })
        }
    }

    /// Runs the fixture experiment `name` in `dir`: 3 trials (one ends in ERROR), 4
    /// iterations each, checkpoints every 2.
    pub fn run(dir: &Path, name: &str, iterations: u64) -> PathBuf {
        run_samples(dir, name, iterations, 1)
    }

    /// The fixture experiment with the grid repeated `samples` times.
    pub fn run_samples(dir: &Path, name: &str, iterations: u64, samples: usize) -> PathBuf {
        tuner(dir, name, iterations, samples).run().expect("the fixture experiment runs");
        dir.join(name)
    }

    /// The tuner of [`run_samples`], not run yet.
    pub fn tuner(dir: &Path, name: &str, iterations: u64, samples: usize) -> Tuner<Fix> {
        Tuner::<Fix>::new()
            .num_samples(samples)
            .local_dir(dir)
            .name(name)
            .seed(7)
            .verbose(0)
            .total_cpus(3.0)
            .stop(Stop::iterations(iterations))
            .checkpoint_freq(2)
            // The journal is flushed every tick: readers of a live run see results soon.
            .status_interval(Duration::from_millis(200))
            .metric(FixMetrics::LOSS, Mode::Min)
    }
}

/// A plain HTTP/1.1 request to a loopback server: (status, body). Reads the body by its
/// `Content-Length` (a server may keep the connection open), else to the end.
pub fn http(method: &str, addr: &str, path: &str) -> (u16, String) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).unwrap();
    let status = status_line.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).unwrap();
    } else {
        r.read_to_end(&mut body).unwrap();
    }
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A child process killed when dropped (a failing test leaves nothing running).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tune dashboard ROOT --port 0` and returns the child and its address.
pub fn start_dashboard(root: &Path) -> (Killed, String) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tune"))
        .args(["dashboard", &root.to_string_lossy(), "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).unwrap().split('/').next().unwrap().to_string();
    (Killed(child), addr)
}
