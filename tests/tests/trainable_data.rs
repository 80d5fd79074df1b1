//! Real training needs: data shared by every trial (`data = Type`, `Tuner::with_data`),
//! binary checkpoints of large numeric state (`#[checkpoint(binary)]`), function
//! trainables that checkpoint files only when the runner keeps them (`report_with`), and a
//! small config and data set for the generated test (`test_config`, `test_data`).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tune_runtime::prelude::*;
use tune_runtime::{
    TrainableSpec,
    check::{SaveRestoreOptions, validate_save_restore_with},
    storage::{MANIFEST_FILE, STATE_FILE, TENSORS_FILE},
};

search_space! {
    pub struct Cfg {
        scale: f64 = uniform(1.0, 2.0),
        /// Steers the tests: which trial fails once, and where.
        fail_at: u64 = randint(0, 100),
        tag: u64 = randint(0, 100),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Fit {
    loss: f64,
    total: f64,
}

/// The data set every trial shares.
#[derive(Debug)]
pub struct Digits {
    pub pixels: Vec<f32>,
}

/// Addresses of the data each `setup` saw, by test tag.
static SEEN: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

#[trainable(config = Cfg, metrics = Fit, data = Digits, test_config = small_config, test_data = small_data)]
pub struct Model {
    #[checkpoint(binary)]
    weights: Vec<f32>,
    #[checkpoint(binary)]
    moments: [f64; 4],
    iter: u64,
    fail_at: u64,
    tag: u64,
    #[checkpoint(skip)]
    data: Arc<Digits>,
}

/// The generated test's config: `setup` refuses the big ones the space samples.
fn small_config() -> Cfg {
    Cfg { scale: 0.5, fail_at: 0, tag: 0 }
}

/// The generated test's data: a few pixels instead of a data set.
fn small_data() -> Digits {
    Digits { pixels: vec![1.0, 2.0, 3.0] }
}

/// Failed once already, by tag.
static FAILED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

impl Trainable for Model {
    fn setup(config: &Cfg, ctx: &TrialContext) -> TrainResult<Self> {
        let data = Self::data(ctx)?;
        if config.scale >= 1.0 && data.pixels.len() < 10 {
            return Err(TrainError::msg("a sampled (large) config with the small test data"));
        }
        SEEN.lock().unwrap().push((config.tag, Arc::as_ptr(&data) as usize));
        let weights = data.pixels.iter().map(|p| p * config.scale as f32).collect();
        Ok(Model {
            weights,
            moments: [0.0; 4],
            iter: 0,
            fail_at: config.fail_at,
            tag: config.tag,
            data,
        })
    }

    fn step(&mut self) -> TrainResult<Fit> {
        self.iter += 1;
        if self.iter == self.fail_at {
            let mut failed = FAILED.lock().unwrap();
            if !failed.contains(&self.tag) {
                failed.push(self.tag);
                return Err(TrainError::msg("injected failure"));
            }
        }
        for (w, p) in self.weights.iter_mut().zip(&self.data.pixels) {
            *w = *w * 0.5 + p;
        }
        self.moments[(self.iter % 4) as usize] += 1.0;
        let total: f64 = self.weights.iter().map(|w| f64::from(*w)).sum();
        Ok(Fit { loss: 1.0 / (1.0 + total), total: total + self.moments.iter().sum::<f64>() })
    }
}

fn digits(n: usize) -> Digits {
    Digits { pixels: (0..n).map(|i| (i % 17) as f32 / 16.0).collect() }
}

fn overrides(tag: u64, fail_at: u64) -> String {
    format!(r#"{{"tag": {tag}, "fail_at": {fail_at}}}"#)
}

#[test]
fn every_trial_gets_the_same_shared_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(digits(64));
    let a = Tuner::<Model>::new()
        .with_data(Arc::clone(&data))
        .config_overrides_json(overrides(1, 0))
        .num_samples(4)
        .stop(Stop::iterations(2))
        .local_dir(dir.path())
        .verbose(0)
        .total_cpus(2.0)
        .run()
        .unwrap();
    assert_eq!(a.trials().len(), 4);
    assert!(a.trials().iter().all(|t| t.status() == TrialStatus::Terminated));
    let seen: Vec<usize> =
        SEEN.lock().unwrap().iter().filter(|(tag, _)| *tag == 1).map(|(_, p)| *p).collect();
    assert_eq!(seen.len(), 4, "one setup per trial");
    assert!(seen.iter().all(|p| *p == Arc::as_ptr(&data) as usize), "never copied");
}

#[test]
fn a_trainable_that_declares_data_refuses_to_run_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tuner::<Model>::new().local_dir(dir.path()).verbose(0).run().unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("declares shared data of type") && message.contains("with_data"),
        "{message}"
    );
    // Outside a run, the typed getter says what is missing.
    let Err(err) = Model::setup(&small_config(), &TrialContext::detached("t", 0)) else {
        panic!("setup without data succeeded")
    };
    assert!(err.to_string().contains("holds no shared data"), "{err}");
}

#[test]
fn binary_fields_go_to_safetensors_and_the_manifest_covers_them() {
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Model>::new()
        .with_data(digits(1000))
        .config_overrides_json(overrides(2, 0))
        .stop(Stop::iterations(2))
        .checkpoint_freq(2)
        .local_dir(dir.path())
        .verbose(0)
        .run()
        .unwrap();
    let checkpoint = &a.trials()[0].checkpoints()[0].path;
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join(STATE_FILE)).unwrap()).unwrap();
    assert_eq!(state, serde_json::json!({"iter": 2, "fail_at": 0, "tag": 2}));
    let len = std::fs::metadata(checkpoint.join(TENSORS_FILE)).unwrap().len();
    let raw = 1000 * 4 + 4 * 8;
    assert!(len as f64 <= raw as f64 * 1.1, "{len} bytes for {raw} bytes of numbers");
    let manifest = std::fs::read_to_string(checkpoint.join(MANIFEST_FILE)).unwrap();
    assert!(manifest.contains(TENSORS_FILE), "{manifest}");

    // A corrupt binary file is refused with its name.
    let mut bytes = std::fs::read(checkpoint.join(TENSORS_FILE)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(checkpoint.join(TENSORS_FILE), bytes).unwrap();
    let err = Tuner::<Model>::new()
        .with_data(digits(1000))
        .restore(checkpoint)
        .local_dir(dir.path())
        .verbose(0)
        .run()
        .unwrap_err();
    assert!(err.to_string().contains(TENSORS_FILE), "{err}");
}

#[test]
fn a_retry_restores_a_binary_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let run = |tag: u64, fail_at: u64, max_failures: u32| {
        Tuner::<Model>::new()
            .with_data(digits(100))
            .config_overrides_json(overrides(tag, fail_at))
            .seed(3)
            .stop(Stop::iterations(6))
            .checkpoint_freq(3)
            .max_failures(max_failures)
            .local_dir(dir.path())
            .name(format!("retry{tag}"))
            .verbose(0)
            .run()
            .unwrap()
    };
    // Fails at its 5th step, after the checkpoint of the 3rd.
    let retried = run(3, 5, 1);
    let reference = run(4, 0, 0);
    let (t, r) = (&retried.trials()[0], &reference.trials()[0]);
    assert_eq!(t.status(), TrialStatus::Terminated, "{:?}", t.error());
    assert_eq!(t.failures().len(), 1);
    let totals = |t: &tune_runtime::analysis::TrialInfo<Cfg, Fit>| -> Vec<f64> {
        t.results().map(|row| row.get(Fit::TOTAL)).collect()
    };
    // Continued from the weights and moments of iteration 3, not from a fresh setup.
    assert_eq!(totals(t), totals(r));
    assert_eq!(totals(t).len(), 6);
}

#[test]
fn the_check_compares_binary_fields_and_uses_the_shared_data() {
    // The generated test (with `test_config` and `test_data`) runs as
    // `__tune_save_restore_model`; here the same check with other values.
    validate_save_restore_with::<Model>(
        SaveRestoreOptions::new().config(small_config()).data(Arc::new(digits(5))),
    )
    .unwrap();
    // Without the data, setup says what is missing.
    let err = validate_save_restore_with::<Model>(SaveRestoreOptions::new()).unwrap_err();
    assert!(err.to_string().contains("Tuner::with_data"), "{err}");
}

// --- the function API: files, written only when the runner keeps a checkpoint ---

/// Calls of the checkpoint closure, by tag.
static SAVES: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());
/// What a restored run read back, by tag.
static RESTORED: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
static FN_FAILED: AtomicBool = AtomicBool::new(false);
static FN_SETUPS: AtomicUsize = AtomicUsize::new(0);

#[trainable(data = Digits, test_config = small_config, test_data = small_data)]
fn train_files(config: &Cfg, session: &mut Session<Fit>) -> TrainResult<()> {
    let data = TrainFiles::data(session.context())?;
    FN_SETUPS.fetch_add(1, Ordering::SeqCst);
    let mut weights: Vec<f32> = match session.restored_dir() {
        Some(dir) => {
            let text = std::fs::read_to_string(dir.join("weights/w.txt"))?;
            RESTORED.lock().unwrap().push((config.tag, text.clone()));
            text.split(',').map(|v| v.parse().unwrap()).collect()
        }
        None => data.pixels.clone(),
    };
    loop {
        let i = session.iteration() + 1;
        if i == config.fail_at && !FN_FAILED.swap(true, Ordering::SeqCst) {
            return Err(TrainError::msg("injected failure"));
        }
        for w in &mut weights {
            *w += 1.0;
        }
        let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
        let tag = config.tag;
        session.report_with(Fit { loss: 1.0 / total, total }, |dir: &Path| {
            SAVES.lock().unwrap().push((tag, i));
            std::fs::create_dir_all(dir.join("weights"))?;
            let text: Vec<String> = weights.iter().map(f32::to_string).collect();
            std::fs::write(dir.join("weights/w.txt"), text.join(","))?;
            Ok(())
        })?;
    }
}

fn function_run(dir: &Path, tag: u64, fail_at: u64, freq: u64) -> Analysis<Cfg, Fit> {
    Tuner::<TrainFiles>::new()
        .with_data(digits(3))
        .config_overrides_json(overrides(tag, fail_at))
        .stop(Stop::iterations(6))
        .checkpoint_freq(freq)
        .max_failures(1)
        .local_dir(dir)
        .name(format!("fn{tag}"))
        .verbose(0)
        .run()
        .unwrap()
}

#[test]
fn the_checkpoint_closure_runs_only_when_the_runner_keeps_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let a = function_run(dir.path(), 10, 0, 0);
    assert_eq!(a.trials()[0].num_results(), 6);
    assert!(SAVES.lock().unwrap().iter().all(|(tag, _)| *tag != 10), "nothing kept, nothing saved");

    let a = function_run(dir.path(), 11, 0, 2);
    let saved: Vec<u64> =
        SAVES.lock().unwrap().iter().filter(|(tag, _)| *tag == 11).map(|(_, i)| *i).collect();
    assert_eq!(saved, [2, 4, 6]);
    let c = &a.trials()[0].checkpoints()[1];
    assert_eq!(c.iteration, 4);
    // The files are in the checkpoint and under the manifest.
    assert_eq!(std::fs::read_to_string(c.path.join("weights/w.txt")).unwrap(), "4,4.0625,4.125");
    let manifest = std::fs::read_to_string(c.path.join(MANIFEST_FILE)).unwrap();
    assert!(manifest.contains("weights/w.txt"), "{manifest}");
}

#[test]
fn a_retried_function_trainable_reads_its_files_back() {
    let dir = tempfile::tempdir().unwrap();
    // Fails at its 5th report, after the checkpoint of the 4th.
    let a = function_run(dir.path(), 12, 5, 2);
    let t = &a.trials()[0];
    assert_eq!(t.status(), TrialStatus::Terminated, "{:?}", t.error());
    assert_eq!(t.failures().len(), 1);
    let restored: Vec<String> = RESTORED
        .lock()
        .unwrap()
        .iter()
        .filter(|(tag, _)| *tag == 12)
        .map(|(_, s)| s.clone())
        .collect();
    assert_eq!(restored, ["4,4.0625,4.125"]);
    let totals: Vec<f64> = t.results().map(|row| row.get(Fit::TOTAL)).collect();
    let expected: Vec<f64> = (1..=6).map(|i| 3.0 * f64::from(i) + 0.1875).collect();
    assert_eq!(totals, expected, "continued from the weights of iteration 4");
}

// --- isolated trials: the workers get the data and write and read the binary state ---

fn data_experiment(dir: &Path, name: &str, isolate: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_data_experiment"));
    cmd.arg(dir).arg(name);
    if isolate {
        cmd.arg("--isolate");
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn isolated_trials_get_the_data_and_restore_binary_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let isolated = data_experiment(dir.path(), "isolated", true);
    let in_process = data_experiment(dir.path(), "in_process", false);
    let lines: Vec<&str> = isolated.lines().collect();
    assert_eq!(lines.len(), 2, "{isolated}");
    for line in &lines {
        let mut parts = line.split(' ');
        assert_eq!(parts.next(), Some("true"), "{line}");
        assert_eq!(parts.next(), Some("1"), "failed once: {line}");
        assert_eq!(parts.next().unwrap().split(',').count(), 6, "{line}");
    }
    // The numbers of an uninterrupted run: each retry continued from the weights of its
    // checkpoint at step 2.
    let pixels: Vec<f32> = (0..5000).map(|i| (i % 7) as f32 / 8.0).collect();
    let expected: Vec<String> = [1.0f32, 2.0]
        .iter()
        .map(|scale| {
            let mut w: Vec<f32> = pixels.iter().map(|p| p * scale).collect();
            let totals: Vec<String> = (0..6)
                .map(|_| {
                    for (w, p) in w.iter_mut().zip(&pixels) {
                        *w = *w * 0.5 + p;
                    }
                    w.iter().map(|w| f64::from(*w)).sum::<f64>().to_string()
                })
                .collect();
            format!("true 1 {}\n", totals.join(","))
        })
        .collect();
    assert_eq!(isolated, expected.concat());
    assert_eq!(in_process, isolated);
}
