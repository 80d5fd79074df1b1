//! The burn integration (`tune_runtime::integration::burn`, feature `burn`): a burn
//! `SupervisedTraining` run as a function trainable, stopped by ASHA, paused to disk and
//! resumed, exploited by PBT, and killed and resumed; each continues from burn's own
//! records (epoch numbers go on, and the numbers equal those of an uninterrupted run, or
//! of burn run by hand from the checkpoint's records); a misread metric is a clear error.
//!
//! `cargo test -p tune-runtime --features burn --test burn`
#![cfg(feature = "burn")]
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use tune_runtime::analysis::TrialInfo;
use tune_runtime::integration::burn::{QuietRenderer, RECORDS_DIR, burn, fit};
use tune_runtime::prelude::*;
use tune_runtime::scheduler::{
    Asha, Decision, Mutation, PBT_LOG_FILE, Pausing, Pbt, PbtLogEntry, Scheduler,
};
use tune_runtime::searcher::RandomSearch;
use tune_runtime::storage::MANIFEST_FILE;
use tune_runtime::{TrialId, TrialResult};

use burn::data::dataloader::{DataLoader, DataLoaderBuilder, batcher::Batcher};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::constant::ConstantLr;
use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use burn::tensor::{Device, Int, Tensor, TensorData, activation::relu};
use burn::train::checkpoint::FileCheckpointer;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

// ---------------------------------------------------------------------------------------
// A small network on synthetic data: two overlapping clusters in the plane.

const HIDDEN: usize = 8;
const EPOCHS: usize = 6;

#[derive(Module, Debug)]
pub struct Mlp {
    w1: Param<Tensor<2>>,
    b1: Param<Tensor<1>>,
    w2: Param<Tensor<2>>,
    b2: Param<Tensor<1>>,
}

/// Fixed pseudo-random numbers in [-0.5, 0.5): the same start for every trial and run.
fn fixed(n: usize, salt: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919 + salt * 104_729) % 997) as f32 / 997.0 - 0.5).collect()
}

impl Mlp {
    fn new(device: &Device) -> Self {
        let tensor2 = |rows, cols, salt| {
            Param::from_tensor(Tensor::from_data(
                TensorData::new(fixed(rows * cols, salt), [rows, cols]),
                device,
            ))
        };
        let tensor1 = |len, salt| {
            Param::from_tensor(Tensor::from_data(TensorData::new(fixed(len, salt), [len]), device))
        };
        Mlp {
            w1: tensor2(2, HIDDEN, 1),
            b1: tensor1(HIDDEN, 2),
            w2: tensor2(HIDDEN, 2, 3),
            b2: tensor1(2, 4),
        }
    }

    fn classify(&self, batch: Batch) -> ClassificationOutput {
        let hidden = relu(batch.x.matmul(self.w1.val()) + self.b1.val().unsqueeze::<2>());
        let logits = hidden.matmul(self.w2.val()) + self.b2.val().unsqueeze::<2>();
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.y.clone());
        ClassificationOutput::new(loss, logits, batch.y)
    }
}

impl TrainStep for Mlp {
    type Input = Batch;
    type Output = ClassificationOutput;
    fn step(&self, batch: Batch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Mlp {
    type Input = Batch;
    type Output = ClassificationOutput;
    fn step(&self, batch: Batch) -> ClassificationOutput {
        self.classify(batch)
    }
}

#[derive(Debug, Clone)]
pub struct Point {
    x: [f32; 2],
    label: i64,
}

#[derive(Debug, Clone)]
pub struct Batch {
    x: Tensor<2>,
    y: Tensor<1, Int>,
}

#[derive(Debug, Clone)]
struct Batcher2;

impl Batcher<Point, Batch> for Batcher2 {
    fn batch(&self, items: Vec<Point>, device: &Device) -> Batch {
        let n = items.len();
        let xs: Vec<f32> = items.iter().flat_map(|p| p.x).collect();
        let ys: Vec<i64> = items.iter().map(|p| p.label).collect();
        Batch {
            x: Tensor::from_data(TensorData::new(xs, [n, 2]), device),
            y: Tensor::from_data(TensorData::new(ys, [n]), device),
        }
    }
}

/// `n` points, half around (-0.5, -0.5) (label 0), half around (0.5, 0.5) (label 1).
fn points(n: usize, salt: usize) -> Vec<Point> {
    let noise = fixed(2 * n, salt);
    (0..n)
        .map(|i| {
            let label = (i % 2) as i64;
            let center = if label == 0 { -0.5 } else { 0.5 };
            Point { x: [center + 2.0 * noise[2 * i], center + 2.0 * noise[2 * i + 1]], label }
        })
        .collect()
}

type Loader = Arc<dyn DataLoader<Batch>>;

fn loaders() -> (Loader, Loader) {
    let train =
        DataLoaderBuilder::new(Batcher2).batch_size(16).build(InMemDataset::new(points(64, 5)));
    // One batch: the validation loss is the loss of the whole split.
    let valid =
        DataLoaderBuilder::new(Batcher2).batch_size(32).build(InMemDataset::new(points(32, 6)));
    (train, valid)
}

fn learner(lr: f64) -> Learner<Mlp> {
    let device = Device::flex().autodiff();
    Learner::new(Mlp::new(&device), AdamConfig::new().init(), ConstantLr::new(lr))
}

// ---------------------------------------------------------------------------------------
// The trainable: burn's `SupervisedTraining` handed to `fit`, nothing else.

search_space! {
    pub struct Cfg {
        lr: f64 = loguniform(1e-4, 0.3),
        /// Which test runs the trial (the logs below are shared by the tests of this file).
        tag: u64 = randint(0, 1000),
        /// Epoch at which the process kills itself (0: never).
        kill_at: u64 = randint(0, 100),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Scores {
    /// burn's validation accuracy, as a fraction.
    accuracy: f64,
    loss: f64,
    epoch: f64,
}

/// A start of the training function: (tag, trial id, lr, burn epoch of the restored records).
type Start = (u64, String, f64, Option<usize>);
static STARTS: Mutex<Vec<Start>> = Mutex::new(Vec::new());
/// Every epoch burn finished: (tag, trial id, epoch).
static TRAINED: Mutex<Vec<(u64, String, usize)>> = Mutex::new(Vec::new());

fn restored_epoch(dir: Option<&Path>) -> Option<usize> {
    let records = dir?.join(RECORDS_DIR);
    std::fs::read_dir(records)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("model-")?.strip_suffix(".bpk")?.parse().ok()
        })
        .max()
}

#[trainable(test = false)]
fn classify(config: &Cfg, session: &mut Session<Scores>) -> TrainResult<()> {
    let (tag, kill_at) = (config.tag, config.kill_at);
    let trial = session.context().trial_id.clone();
    let restored = restored_epoch(session.restored_dir());
    STARTS.lock().unwrap().push((tag, trial.clone(), config.lr, restored));
    let scratch = tempfile::tempdir()?;
    let (train, valid) = loaders();
    let training = SupervisedTraining::new(scratch.path(), train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .num_epochs(EPOCHS);
    fit(session, training, learner(config.lr), move |epoch| {
        TRAINED.lock().unwrap().push((tag, trial.clone(), epoch.epoch()));
        if epoch.epoch() as u64 == kill_at && std::env::var_os(CHILD_DIR).is_some() {
            let pid = std::process::id().to_string();
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        Ok(Scores {
            accuracy: epoch.valid_fraction("Accuracy")?,
            loss: epoch.valid("Loss")?,
            epoch: epoch.epoch() as f64,
        })
    })?;
    Ok(())
}

fn overrides(tag: u64, lr: Option<f64>, kill_at: u64) -> String {
    match lr {
        Some(lr) => format!("{{\"tag\": {tag}, \"kill_at\": {kill_at}, \"lr\": {lr}}}"),
        None => format!("{{\"tag\": {tag}, \"kill_at\": {kill_at}}}"),
    }
}

fn epochs_of(tag: u64, trial: &str) -> Vec<usize> {
    TRAINED
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, id, _)| *t == tag && id == trial)
        .map(|e| e.2)
        .collect()
}

fn starts_of(tag: u64, trial: &str) -> Vec<(f64, Option<usize>)> {
    STARTS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, id, _, _)| *t == tag && id == trial)
        .map(|s| (s.2, s.3))
        .collect()
}

/// (epoch, loss) of every result of a trial.
fn losses(trial: &TrialInfo<Cfg, Scores>) -> Vec<(f64, f64)> {
    trial.results().map(|r| (r.get(Scores::EPOCH), r.get(Scores::LOSS))).collect()
}

/// The losses of one uninterrupted trial with learning rate `lr`.
fn reference(lr: f64, tag: u64) -> Vec<(f64, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Classify>::new()
        .config_overrides_json(overrides(tag, Some(lr), 0))
        .local_dir(dir.path())
        .name("reference")
        .verbose(0)
        .run()
        .unwrap();
    let trial = &a.trials()[0];
    assert_eq!(trial.status(), TrialStatus::Terminated);
    losses(trial)
}

/// The epochs of a trial's results are burn's epochs, and the iterations.
fn assert_epochs_are_iterations(trial: &TrialInfo<Cfg, Scores>) {
    for r in trial.results() {
        assert_eq!(r.get(Scores::EPOCH), r.training_iteration() as f64, "trial {}", trial.id());
    }
}

// ---------------------------------------------------------------------------------------

#[test]
fn asha_stops_fit_at_the_epoch_boundary() {
    let tag = 1;
    let dir = tempfile::tempdir().unwrap();
    // One at a time, the good learning rate first: the three tiny ones are below it at
    // the first rung and ASHA stops them there.
    let asha = Asha::builder(Scores::LOSS, Mode::Min)
        .grace_period(1.0)
        .reduction_factor(2.0)
        .max_t(EPOCHS as f64)
        .build()
        .unwrap();
    let a = Tuner::<Classify>::new()
        .searcher(RandomSearch::new().points_to_evaluate(
            [0.1, 1e-4, 1e-4, 1e-4].map(|lr| Cfg { lr, tag, kill_at: 0 }).to_vec(),
        ))
        .num_samples(4)
        .max_concurrent_trials(1)
        .scheduler(asha)
        .local_dir(dir.path())
        .name("asha")
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.trials().len(), 4);
    assert_eq!(a.count(TrialStatus::Terminated), 4, "a stop is a normal end");
    let good = &a.trials()[0];
    assert_eq!(good.num_results(), EPOCHS);
    for trial in &a.trials()[1..] {
        assert!(trial.num_results() < EPOCHS, "trial {} was not stopped", trial.id());
        // burn trained exactly the epochs reported: the stop ended `fit` at the boundary.
        let trained = epochs_of(tag, &trial.id().to_string());
        let expected: Vec<usize> = (1..=trial.num_results()).collect();
        assert_eq!(trained, expected, "trial {}", trial.id());
        assert_epochs_are_iterations(trial);
    }
    // Accuracy arrives as a fraction.
    let accuracy = good.last_result().unwrap().get(Scores::ACCURACY);
    assert!((0.0..=1.0).contains(&accuracy) && accuracy > 0.5, "{accuracy}");
}

/// Pauses every trial once, after its second epoch, to disk.
#[derive(Default)]
struct PauseOnce {
    paused: HashSet<TrialId>,
}

impl Scheduler<Cfg, Scores> for PauseOnce {
    fn name(&self) -> &str {
        "PauseOnce"
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Scores>) -> Decision {
        if result.training_iteration == 2 && self.paused.insert(trial) {
            return Decision::Pause;
        }
        Decision::Continue
    }
    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        pending.first().or(paused.first()).copied()
    }
}

#[test]
fn a_paused_trial_resumes_from_burns_records() {
    let tag = 2;
    let lr = 0.05;
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Classify>::new()
        .config_overrides_json(overrides(tag, Some(lr), 0))
        .num_samples(2)
        .max_concurrent_trials(1)
        .scheduler(PauseOnce::default())
        .pausing(Pausing::Disk)
        .local_dir(dir.path())
        .name("pause")
        .verbose(0)
        .run()
        .unwrap();
    let expected = reference(lr, 102);
    assert_eq!(expected.len(), EPOCHS);
    for trial in a.trials() {
        assert_eq!(trial.status(), TrialStatus::Terminated);
        let id = &trial.id().to_string();
        // Started twice: fresh, then from the pause checkpoint's records of epoch 2.
        assert_eq!(starts_of(tag, id), [(lr, None), (lr, Some(2))], "trial {id}");
        // burn trained each epoch once: 1 and 2, paused, then 3 to the end.
        assert_eq!(epochs_of(tag, id), (1..=EPOCHS).collect::<Vec<_>>(), "trial {id}");
        assert_epochs_are_iterations(trial);
        // The same numbers as without the pause: the model and Adam's moments came back.
        assert_eq!(losses(trial), expected, "trial {id}");
        // burn's records are in the checkpoint and under its manifest.
        let checkpoint = trial.dir().unwrap().join("checkpoint_000002");
        let manifest = std::fs::read_to_string(checkpoint.join(MANIFEST_FILE)).unwrap();
        for record in ["model", "optim", "scheduler"] {
            let file = format!("{RECORDS_DIR}/{record}-2.bpk");
            assert!(checkpoint.join(&file).is_file(), "{file}");
            assert!(manifest.contains(&file), "{file} not in {manifest}");
        }
    }
}

/// Runs burn by hand from the records of `epoch` in `checkpoint`, one more epoch with `lr`,
/// and returns the validation loss of the model it ends with.
fn one_more_epoch(checkpoint: &Path, epoch: usize, lr: f64) -> f64 {
    // A copy: burn's file checkpointer writes the next epoch's records next to them.
    let scratch = tempfile::tempdir().unwrap();
    let records = scratch.path().join("records");
    std::fs::create_dir(&records).unwrap();
    for entry in std::fs::read_dir(checkpoint.join(RECORDS_DIR)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), records.join(entry.file_name())).unwrap();
    }
    let (train, valid) = loaders();
    let result = SupervisedTraining::new(scratch.path(), train, valid)
        .with_custom_checkpointers(
            FileCheckpointer::new(&records, "model"),
            FileCheckpointer::new(&records, "optim"),
            FileCheckpointer::new(&records, "scheduler"),
        )
        .checkpoint(epoch)
        .num_epochs(epoch + 1)
        .renderer(Box::new(QuietRenderer))
        .with_application_logger(None)
        .metrics((LossMetric::new(),))
        .launch(learner(lr));
    assert!(result.error.is_none());
    let device = result.model.devices()[0].clone();
    let batch = Batcher2.batch(points(32, 6), &device);
    f64::from(result.model.classify(batch).loss.try_into_vec_as::<f32>().unwrap()[0])
}

#[test]
fn a_pbt_exploit_continues_from_the_sources_records_with_the_new_learning_rate() {
    let tag = 3;
    let dir = tempfile::tempdir().unwrap();
    let pbt = Pbt::builder(Scores::LOSS, Mode::Min)
        .perturbation_interval(2.0)
        .quantile_fraction(0.5)
        .mutate("lr", Mutation::perturb())
        .build()
        .unwrap();
    // One at a time, the good learning rate first; the tuner stops every trial at 4 epochs
    // (burn would train 6). Each later trial is in the bottom half at its epoch 2, exploits
    // a better one's checkpoint of epoch 4, and trains its epoch 5 before the stop: an
    // exploit that trains on after it, whatever the timing.
    let a = Tuner::<Classify>::new()
        .searcher(RandomSearch::new().points_to_evaluate(
            [0.1, 1e-4, 1e-4, 1e-4].map(|lr| Cfg { lr, tag, kill_at: 0 }).to_vec(),
        ))
        .num_samples(4)
        .max_concurrent_trials(1)
        .stop(Stop::iterations(4))
        .scheduler(pbt)
        .local_dir(dir.path())
        .name("pbt")
        .seed(21)
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 4);
    let log: Vec<PbtLogEntry> = std::fs::read_to_string(dir.path().join("pbt").join(PBT_LOG_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut checked = 0;
    let mut seen = HashSet::new();
    for entry in &log {
        // Each target exploits once (it is stopped at the epoch after).
        assert!(seen.insert(entry.target), "{entry:?}");
        let target = &a.trials()[entry.target as usize];
        let id = &target.id().to_string();
        let new_lr = entry.new_config["lr"].as_f64().unwrap();
        let old_lr = entry.source_config["lr"].as_f64().unwrap();
        assert_ne!(new_lr, old_lr, "PBT perturbs the learning rate");
        let source_epoch = entry.source_iteration as usize;
        // The function started again with the new learning rate and the source's records.
        assert!(
            starts_of(tag, id).contains(&(new_lr, Some(source_epoch))),
            "{entry:?}: {:?}",
            starts_of(tag, id)
        );
        assert_epochs_are_iterations(target);
        let next = target.results().nth(entry.target_iteration as usize).unwrap();
        // burn went on at the epoch after the source's checkpoint.
        assert_eq!(next.get(Scores::EPOCH), (source_epoch + 1) as f64, "{entry:?}");
        // And its loss is that of burn run by hand from the copied records with the new
        // learning rate (not the old one).
        let copied = target.dir().unwrap().join(format!("checkpoint_{source_epoch:06}"));
        let by_hand = one_more_epoch(&copied, source_epoch, new_lr);
        let with_old = one_more_epoch(&copied, source_epoch, old_lr);
        let reported = next.get(Scores::LOSS);
        assert!(
            (reported - by_hand).abs() <= 1e-6 * by_hand.abs().max(1.0),
            "{reported} vs {by_hand}"
        );
        assert!((reported - with_old).abs() > 1e-6, "the old learning rate gives the same loss");
        checked += 1;
    }
    assert!(checked > 0, "no exploit: {log:?}");
    assert_eq!(checked, log.len(), "every exploit trained on after it: {log:?}");
}

// ---------------------------------------------------------------------------------------
// Killed and resumed: the experiment runs in a child process (this test binary, running
// only `killed_child`), which kills itself with SIGKILL at the start of epoch 3's report.

const CHILD_DIR: &str = "TUNE_BURN_TEST_CHILD_DIR";
const KILL_TAG: u64 = 4;
const KILL_LR: f64 = 0.05;

fn kill_tuner(dir: &Path) -> Tuner<Classify> {
    Tuner::<Classify>::new()
        .config_overrides_json(overrides(KILL_TAG, Some(KILL_LR), 3))
        .checkpoint_freq(2)
        .local_dir(dir)
        .name("killed")
        .verbose(0)
}

/// The child's side of `a_killed_run_resumes_from_burns_records` (does nothing unless the
/// parent set the directory).
#[test]
fn killed_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let _ = kill_tuner(Path::new(&dir)).run();
    panic!("the run should have been killed at epoch 3");
}

#[test]
fn a_killed_run_resumes_from_burns_records() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killed_child", "--test-threads", "1"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have been killed");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL, not a failure: {status:?}");
    }
    // Resume in this process (no kill here: the child's variable is not set).
    let a = kill_tuner(dir.path()).resume(true).run().unwrap();
    let trial = &a.trials()[0];
    assert_eq!(trial.status(), TrialStatus::Terminated);
    let id = &trial.id().to_string();
    // This process started once, from the records of epoch 2 (the last checkpoint before
    // the kill), and trained epochs 3 to the end.
    assert_eq!(starts_of(KILL_TAG, id), [(KILL_LR, Some(2))]);
    assert_eq!(epochs_of(KILL_TAG, id), (3..=EPOCHS).collect::<Vec<_>>());
    assert_epochs_are_iterations(trial);
    // The numbers of an uninterrupted run.
    assert_eq!(losses(trial), reference(KILL_LR, 104));
}

// ---------------------------------------------------------------------------------------
// Misread metrics: clear errors that end the trial.

/// Reads a metric wrongly: `kill_at == 1` asks for the loss as a fraction (it has no
/// percent unit), `kill_at == 2` misspells the accuracy.
#[trainable(test = false)]
fn misread(config: &Cfg, session: &mut Session<Scores>) -> TrainResult<()> {
    let scratch = tempfile::tempdir()?;
    let (train, valid) = loaders();
    let training = SupervisedTraining::new(scratch.path(), train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .num_epochs(EPOCHS);
    let wrong = config.kill_at;
    fit(session, training, learner(config.lr), move |epoch| {
        let accuracy =
            if wrong == 2 { epoch.valid("Acuracy")? } else { epoch.valid("Accuracy")? };
        let loss = if wrong == 1 { epoch.valid_fraction("Loss")? } else { epoch.valid("Loss")? };
        Ok(Scores { accuracy, loss, epoch: epoch.epoch() as f64 })
    })?;
    Ok(())
}

#[test]
fn a_misread_metric_ends_the_trial_with_an_error_naming_it() {
    for (wrong, expected) in [
        (1, "burn's metric `Loss` is not in percent (unit none)"),
        (
            2,
            "burn recorded no numeric valid metric `Acuracy` at epoch 1 (recorded: Accuracy, Loss)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let a = Tuner::<Misread>::new()
            .config_overrides_json(overrides(5, Some(0.05), wrong))
            .local_dir(dir.path())
            .name("misread")
            .verbose(0)
            .run()
            .unwrap();
        let trial = &a.trials()[0];
        assert_eq!(trial.status(), TrialStatus::Error);
        assert_eq!(trial.num_results(), 0, "nothing reported");
        let error = trial.error().unwrap();
        assert!(error.contains(expected), "{error}");
    }
}
