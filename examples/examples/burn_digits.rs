//! burn on the handwritten digits, tuned with TPE and ASHA (feature `burn`).
//!
//! The same data as the `digits` example (smartcore's embedded copy of the UCI digits),
//! but the network, its training loop, its metrics and its checkpoints are burn's: a
//! `SupervisedTraining` run handed to `tune_runtime::integration::burn::fit`, which
//! reports every epoch's validation accuracy and loss, lets ASHA stop a trial at an epoch
//! boundary, and checkpoints burn's own records. At the end the best checkpoint's model
//! record is loaded into a fresh network and evaluated on the test split.
//!
//! ```sh
//! cargo run --release -p tune-examples --features burn --example burn_digits
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use tune_runtime::integration::burn::{RECORDS_DIR, burn, fit};
use tune_runtime::prelude::*;
use tune_runtime::{scheduler::Asha, searcher::Tpe};

use burn::data::dataloader::{DataLoader, DataLoaderBuilder, batcher::Batcher};
use burn::data::dataset::InMemDataset;
use burn::lr_scheduler::constant::ConstantLr;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamConfig;
use burn::store::ModuleRecord;
use burn::tensor::{Device, Int, Tensor, TensorData, activation::relu};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

search_space! {
    /// The hyperparameters TPE tunes.
    pub struct NetConfig {
        /// Adam's learning rate.
        lr: f64 = loguniform(1e-4, 1e-1),
        /// Units of the hidden layer.
        hidden: usize = choice([16, 32, 64, 128]),
        /// Images per mini-batch.
        batch: usize = choice([16, 32, 64]),
    }
}

/// What every epoch reports.
#[derive(Debug, Clone, Metrics)]
pub struct Scores {
    /// Fraction of the validation images classified correctly (burn's percent / 100).
    val_accuracy: f64,
    /// burn's mean cross-entropy on the validation images.
    val_loss: f64,
}

// ---------------------------------------------------------------------------------------
// The data: 64 pixels in [0, 1] and a digit per image.

/// One image.
#[derive(Debug, Clone)]
pub struct Image {
    pixels: Vec<f32>,
    label: i64,
}

/// The digits, split once with a fixed seed: 60% training, 20% validation, 20% test.
#[derive(Debug)]
pub struct Digits {
    /// What the network learns from.
    pub train: Vec<Image>,
    /// What every epoch is scored on (what TPE and ASHA see).
    pub valid: Vec<Image>,
    /// Used once, on the best checkpoint.
    pub test: Vec<Image>,
}

const PIXELS: usize = 64;
const CLASSES: usize = 10;

/// Loads smartcore's embedded digits and splits them.
pub fn load_digits() -> Result<Digits, String> {
    let set = smartcore::dataset::digits::load_dataset();
    if set.num_features != PIXELS {
        return Err(format!("digits: {} pixels per image, {PIXELS} expected", set.num_features));
    }
    let images: Vec<Image> = set
        .data
        .chunks(PIXELS)
        .zip(&set.target)
        .map(|(pixels, &label)| Image {
            pixels: pixels.iter().map(|p| p / 16.0).collect(),
            label: label as i64,
        })
        .collect();
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(1797));
    let take = |rows: &[usize]| rows.iter().map(|&i| images[i].clone()).collect::<Vec<_>>();
    let (train, rest) = order.split_at(images.len() * 3 / 5);
    let (valid, test) = rest.split_at(rest.len() / 2);
    Ok(Digits { train: take(train), valid: take(valid), test: take(test) })
}

/// A batch of images on a device.
#[derive(Debug, Clone)]
pub struct Batch {
    pixels: Tensor<2>,
    labels: Tensor<1, Int>,
}

#[derive(Debug, Clone)]
struct ImageBatcher;

impl Batcher<Image, Batch> for ImageBatcher {
    fn batch(&self, items: Vec<Image>, device: &Device) -> Batch {
        let n = items.len();
        let pixels: Vec<f32> = items.iter().flat_map(|i| i.pixels.iter().copied()).collect();
        let labels: Vec<i64> = items.iter().map(|i| i.label).collect();
        Batch {
            pixels: Tensor::from_data(TensorData::new(pixels, [n, PIXELS]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The network: 64 inputs, one hidden ReLU layer, 10 outputs.

/// The classifier.
#[derive(Module, Debug)]
pub struct Net {
    hidden: Linear,
    output: Linear,
}

impl Net {
    fn new(config: &NetConfig, device: &Device) -> Self {
        Net {
            hidden: LinearConfig::new(PIXELS, config.hidden).init(device),
            output: LinearConfig::new(config.hidden, CLASSES).init(device),
        }
    }

    fn classify(&self, batch: Batch) -> ClassificationOutput {
        let logits = self.output.forward(relu(self.hidden.forward(batch.pixels)));
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.labels.clone());
        ClassificationOutput::new(loss, logits, batch.labels)
    }

    /// Fraction of `images` classified correctly.
    fn accuracy(&self, images: &[Image]) -> Result<f64, String> {
        let device = self.devices().first().cloned().ok_or("the network has no device")?;
        let batch = ImageBatcher.batch(images.to_vec(), &device);
        let labels = batch.labels.clone();
        let predicted = self.classify(batch).output.argmax(1).squeeze_dim::<1>(1);
        let correct = predicted.equal(labels).int().sum();
        let correct = correct.try_into_vec_as::<i64>().map_err(|e| format!("{e:?}"))?;
        Ok(correct.first().copied().unwrap_or(0) as f64 / images.len() as f64)
    }
}

impl TrainStep for Net {
    type Input = Batch;
    type Output = ClassificationOutput;
    fn step(&self, batch: Batch) -> TrainOutput<ClassificationOutput> {
        let output = self.classify(batch);
        TrainOutput::new(self, output.loss.backward(), output)
    }
}

impl InferenceStep for Net {
    type Input = Batch;
    type Output = ClassificationOutput;
    fn step(&self, batch: Batch) -> ClassificationOutput {
        self.classify(batch)
    }
}

// ---------------------------------------------------------------------------------------
// The trainable: burn's training, handed to `fit`.

/// The most epochs burn is asked for.
const MAX_EPOCHS: usize = 27;

#[trainable(data = Digits, test = false)]
fn burn_digits(config: &NetConfig, session: &mut Session<Scores>) -> TrainResult<()> {
    let data = BurnDigits::data(session.context())?;
    let device = Device::flex().autodiff();
    let train: Arc<dyn DataLoader<Batch>> = DataLoaderBuilder::new(ImageBatcher)
        .batch_size(config.batch)
        .shuffle(session.context().seed)
        .build(InMemDataset::new(data.train.clone()));
    // One batch: the validation split is scored whole.
    let valid: Arc<dyn DataLoader<Batch>> = DataLoaderBuilder::new(ImageBatcher)
        .batch_size(data.valid.len())
        .build(InMemDataset::new(data.valid.clone()));
    let scratch = tempfile::tempdir()?;
    let training = SupervisedTraining::new(scratch.path(), train, valid)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        // The tuner's stop criterion (`Budget::epochs`) ends it earlier.
        .num_epochs(MAX_EPOCHS);
    let learner = Learner::new(
        Net::new(config, &device),
        AdamConfig::new().init(),
        ConstantLr::new(config.lr),
    );
    fit(session, training, learner, |epoch| {
        Ok(Scores {
            val_accuracy: epoch.valid_fraction("Accuracy")?,
            val_loss: epoch.valid("Loss")?,
        })
    })?;
    Ok(())
}

/// How much to run.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Trials.
    pub samples: usize,
    /// Epochs of a trial that ASHA never stops (at most 27).
    pub epochs: u64,
    /// Seed of the experiment.
    pub seed: u64,
    /// Hyperparameters fixed in every trial, as JSON, or none.
    pub fixed: Option<&'static str>,
}

impl Budget {
    /// The full run: 24 trials of up to 27 epochs.
    pub const FULL: Budget = Budget { samples: 24, epochs: 27, seed: 11, fixed: None };
}

/// What the experiment found.
#[derive(Debug)]
pub struct Outcome {
    /// Every trial's results.
    pub analysis: Analysis<NetConfig, Scores>,
    /// The best validation accuracy any epoch reported.
    pub best_val_accuracy: f64,
    /// The best trial's best checkpoint.
    pub checkpoint: PathBuf,
    /// The validation accuracy reported at the checkpoint's epoch.
    pub checkpoint_val_accuracy: f64,
    /// Validation accuracy of the network loaded from the checkpoint's burn record.
    pub reloaded_val_accuracy: f64,
    /// Its test accuracy.
    pub test_accuracy: f64,
}

/// Tunes with TPE and ASHA, then loads the best checkpoint's burn record and evaluates it.
pub fn run(local_dir: &Path, budget: &Budget, verbose: u8) -> Result<Outcome, Box<dyn Error>> {
    let digits = Arc::new(load_digits()?);
    let asha = Asha::builder(Scores::VAL_ACCURACY, Mode::Max)
        .max_t(budget.epochs as f64)
        .grace_period(3.0)
        .reduction_factor(3.0)
        .build()?;
    let mut tuner = Tuner::<BurnDigits>::new().with_data(Arc::clone(&digits));
    if let Some(json) = budget.fixed {
        tuner = tuner.config_overrides_json(json);
    }
    let analysis = tuner
        .searcher(Tpe::new().n_startup(6))
        .scheduler(asha)
        .num_samples(budget.samples)
        .stop(Stop::iterations(budget.epochs))
        // burn's records at every third epoch (ASHA's decisions), the best one kept.
        .checkpoint_freq(3)
        .keep_checkpoints_num(1)
        .checkpoint_score(Scores::VAL_ACCURACY, Mode::Max)
        .local_dir(local_dir)
        .name("burn_digits")
        .seed(budget.seed)
        .verbose(verbose)
        .run()?;

    let key = Scores::VAL_ACCURACY;
    let best = analysis.best_trial(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    let best_val_accuracy = best.score(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    // The trial's best checkpoint and the result it reported when writing it.
    let (saved, result) =
        best.best_checkpoint(key, Mode::Max).ok_or("the best trial kept no checkpoint")?;
    let (checkpoint, epoch) = (saved.path.clone(), saved.iteration);
    let checkpoint_val_accuracy = result.get(key);

    // A fresh network of the best config, loaded from burn's record in the checkpoint.
    let record = checkpoint.join(RECORDS_DIR).join(format!("model-{epoch}.bpk"));
    let net = Net::new(best.config(), &Device::flex()).load_record(
        ModuleRecord::load(&record).map_err(|e| format!("{}: {e:?}", record.display()))?,
    );
    let reloaded_val_accuracy = net.accuracy(&digits.valid)?;
    let test_accuracy = net.accuracy(&digits.test)?;
    Ok(Outcome {
        analysis,
        best_val_accuracy,
        checkpoint,
        checkpoint_val_accuracy,
        reloaded_val_accuracy,
        test_accuracy,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let out = run(&tune_examples::results_dir("burn_digits"), &Budget::FULL, 2)?;
    let epochs: usize = out.analysis.trials().iter().map(|t| t.num_results()).sum();
    println!("{} trials, {epochs} epochs in all", out.analysis.trials().len());
    println!("best validation accuracy: {:.4}", out.best_val_accuracy);
    println!(
        "reloaded from burn's record in {}: validation accuracy {:.4} (reported {:.4}), test \
         accuracy {:.4}",
        out.checkpoint.display(),
        out.reloaded_val_accuracy,
        out.checkpoint_val_accuracy,
        out.test_accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short search (4 trials of up to 6 epochs, unoptimized) learns the digits, and the
    /// network loaded from the best checkpoint's burn record scores what was reported.
    #[test]
    fn a_short_search_learns_the_digits_and_the_best_record_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget { samples: 4, epochs: 6, seed: 5, fixed: Some(r#"{"hidden": 32}"#) };
        let out = run(dir.path(), &budget, 0).unwrap();
        assert_eq!(out.analysis.trials().len(), 4);
        assert_eq!(out.analysis.count(TrialStatus::Terminated), 4);
        // Chance is 0.1.
        assert!(out.best_val_accuracy > 0.85, "best validation accuracy {}", out.best_val_accuracy);
        // The record is the network that was scored at that epoch: same accuracy, to less
        // than one image of 359.
        assert!(
            (out.reloaded_val_accuracy - out.checkpoint_val_accuracy).abs() < 1e-4,
            "reloaded {} vs reported {}",
            out.reloaded_val_accuracy,
            out.checkpoint_val_accuracy
        );
        assert!(out.test_accuracy > 0.8, "test accuracy {}", out.test_accuracy);
    }
}
