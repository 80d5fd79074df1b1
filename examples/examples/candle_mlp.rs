//! A candle network as a class trainable, its weights checkpointed as safetensors files.
//!
//! A multi-layer perceptron built with [candle](https://github.com/huggingface/candle)
//! (`candle-nn`'s `Linear` layers in a `VarMap`, trained with `candle_nn::AdamW` on the CPU)
//! learns smartcore's handwritten digits, loaded once and shared by every trial
//! (`data = DigitsTensors`, `Tuner::with_data`). The trainable writes its `VarMap` with
//! `VarMap::save` in `save_files` and reads it back with `VarMap::load` in `restore_files`,
//! so the checkpoint's weights are a safetensors file that candle (or Python) reads as it is.
//!
//! What a checkpoint does not hold: AdamW's moment estimates and step count, which
//! `candle_nn::AdamW` keeps private. A restored trial continues from the saved weights with a
//! fresh optimizer; see docs/training.md ("A candle network").
//!
//! ```sh
//! cargo run --release -p tune-examples --features candle --example candle_mlp
//! ```

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{AdamW, Linear, Module, Optimizer, ParamsAdamW, VarBuilder, VarMap, linear};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tune_runtime::prelude::*;
use tune_runtime::{SharedData, scheduler::Asha, searcher::Tpe, storage::restore_checkpoint};

search_space! {
    /// The hyperparameters TPE tunes.
    pub struct CandleConfig {
        /// AdamW's learning rate.
        lr: f64 = loguniform(1e-4, 1e-1),
        /// Units of the hidden layer.
        hidden: usize = choice([32, 64, 128, 256]),
        /// Images per mini-batch.
        batch: usize = choice([32, 64, 128]),
        /// AdamW's decoupled weight decay.
        weight_decay: f64 = loguniform(1e-5, 1e-2),
    }
}

/// What every epoch reports.
#[derive(Debug, Clone, Metrics)]
pub struct Epoch {
    /// Fraction of the validation images classified correctly.
    val_accuracy: f64,
    /// Mean cross-entropy on the validation images.
    val_loss: f64,
    /// Mean cross-entropy on the training images during the epoch.
    train_loss: f64,
}

/// The file of a checkpoint that holds the network's `VarMap`.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Pixels per image.
const INPUTS: usize = 64;
/// Digits.
const CLASSES: usize = 10;
/// The seed of the train/validation split: the same split in every trial and run.
const SPLIT_SEED: u64 = 1797;

// ---------------------------------------------------------------------------------------
// The data

/// The digits as candle tensors, split once: `x` rows of 64 pixels in `[0, 1]` (`F32`),
/// `y` their digits (`U32`).
#[derive(Debug)]
pub struct DigitsTensors {
    /// What the network learns from.
    pub train_x: Tensor,
    /// The digit of each training image.
    pub train_y: Tensor,
    /// What each epoch is scored on.
    pub val_x: Tensor,
    /// The digit of each validation image.
    pub val_y: Tensor,
}

impl DigitsTensors {
    /// Training images.
    pub fn train_len(&self) -> usize {
        self.train_y.dims1().unwrap_or(0)
    }
}

/// Loads smartcore's embedded digits (nothing is downloaded) into tensors: 80% for
/// training, 20% for validation.
pub fn load_digits() -> Result<DigitsTensors, Box<dyn Error>> {
    let set = smartcore::dataset::digits::load_dataset();
    let (n, d) = (set.num_samples, set.num_features);
    if d != INPUTS || set.data.len() != n * d || set.target.len() != n {
        return Err(format!("digits: {n} images of {d} pixels, {INPUTS} pixels expected").into());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let (train, val) = order.split_at(n * 4 / 5);
    let take = |rows: &[usize]| -> Result<(Tensor, Tensor), Box<dyn Error>> {
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&i| set.data[i * d..(i + 1) * d].iter().map(|v| v / 16.0))
            .collect();
        let y: Vec<u32> = rows.iter().map(|&i| set.target[i] as u32).collect();
        if let Some(bad) = y.iter().find(|&&t| t as usize >= CLASSES) {
            return Err(format!("digits: label {bad} is not a digit").into());
        }
        Ok((
            Tensor::from_vec(x, (rows.len(), d), &Device::Cpu)?,
            Tensor::from_vec(y, rows.len(), &Device::Cpu)?,
        ))
    };
    let (train_x, train_y) = take(train)?;
    let (val_x, val_y) = take(val)?;
    Ok(DigitsTensors { train_x, train_y, val_x, val_y })
}

// ---------------------------------------------------------------------------------------
// The network

/// `64 -> hidden (ReLU) -> 10`; its weights live in the trainable's `VarMap` under
/// `hidden.weight`, `hidden.bias`, `out.weight` and `out.bias`.
#[derive(Debug)]
struct Mlp {
    hidden: Linear,
    out: Linear,
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.out.forward(&self.hidden.forward(x)?.relu()?)
    }
}

/// A candle error as the trainable's error.
fn candle(e: candle_core::Error) -> TrainError {
    TrainError::msg(format!("candle: {e}"))
}

// ---------------------------------------------------------------------------------------
// The trainable

/// One trial: the network, its `VarMap` and its optimizer, trained one epoch per step.
///
/// The generated checkpoint (`state.json`) holds the epoch and the seed; `save_files` adds
/// the `VarMap` as `model.safetensors`. The optimizer is not checkpointed (see the module
/// documentation), so a restored instance does not continue exactly like the original, and
/// the save/restore test that `#[trainable]` generates (which requires that) is off:
/// `the_checkpoint_holds_the_weights_and_a_restored_trial_continues_from_them` checks what
/// a restore does keep.
#[trainable(config = CandleConfig, metrics = Epoch, data = DigitsTensors, test = false, resources(cpu = 1))]
pub struct CandleMlp {
    epoch: u64,
    /// Seeds the initial weights and, with the epoch number, each epoch's shuffle.
    seed: u64,
    #[checkpoint(skip)]
    varmap: VarMap,
    #[checkpoint(skip)]
    model: Mlp,
    #[checkpoint(skip)]
    optimizer: AdamW,
    #[checkpoint(skip)]
    config: CandleConfig,
    /// Shared by every trial (`Tuner::with_data`).
    #[checkpoint(skip)]
    data: Arc<DigitsTensors>,
}

impl fmt::Debug for CandleMlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CandleMlp")
            .field("epoch", &self.epoch)
            .field("model", &self.model)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CandleMlp {
    fn adamw(varmap: &VarMap, config: &CandleConfig) -> TrainResult<AdamW> {
        let params = ParamsAdamW {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        };
        AdamW::new(varmap.all_vars(), params).map_err(candle)
    }

    /// Mean loss and accuracy of the network on `x`, `y`.
    fn evaluate(&self, x: &Tensor, y: &Tensor) -> TrainResult<(f64, f64)> {
        let logits = self.model.forward(x).map_err(candle)?;
        let loss = candle_nn::loss::cross_entropy(&logits, y)
            .and_then(|l| l.to_scalar::<f32>())
            .map_err(candle)?;
        let accuracy = logits
            .argmax(D::Minus1)
            .and_then(|guess| guess.eq(y))
            .and_then(|hit| hit.to_dtype(DType::F32))
            .and_then(|hit| hit.mean_all())
            .and_then(|mean| mean.to_scalar::<f32>())
            .map_err(candle)?;
        Ok((f64::from(loss), f64::from(accuracy)))
    }

    /// Mean loss and accuracy on the validation split.
    pub fn validate(&self) -> TrainResult<(f64, f64)> {
        self.evaluate(&self.data.val_x, &self.data.val_y)
    }

    /// Epochs trained.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The network's weights, by name, as flat vectors.
    pub fn weights(&self) -> TrainResult<Vec<(String, Vec<f32>)>> {
        let mut vars: Vec<_> =
            self.varmap.data().lock().map_err(|_| poisoned())?.clone().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars.into_iter()
            .map(|(name, var)| {
                Ok((name, var.flatten_all().and_then(|t| t.to_vec1()).map_err(candle)?))
            })
            .collect()
    }
}

fn poisoned() -> TrainError {
    TrainError::msg("the VarMap's lock is poisoned: a thread panicked while holding it")
}

impl Trainable for CandleMlp {
    fn setup(config: &CandleConfig, ctx: &TrialContext) -> TrainResult<Self> {
        let data = Self::data(ctx)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = Mlp {
            hidden: linear(INPUTS, config.hidden, vb.pp("hidden")).map_err(candle)?,
            out: linear(config.hidden, CLASSES, vb.pp("out")).map_err(candle)?,
        };
        // candle draws its initial weights from an unseeded generator (its CPU device
        // cannot be seeded): overwrite them from the trial's seed, so that a seeded
        // experiment is reproducible. He-uniform weights, zero biases.
        let mut rng = ctx.rng();
        let mut init = varmap.clone();
        for (name, inputs, outputs) in
            [("hidden", INPUTS, config.hidden), ("out", config.hidden, CLASSES)]
        {
            let a = (6.0 / inputs as f32).sqrt();
            let w: Vec<f32> = (0..inputs * outputs).map(|_| rng.random_range(-a..a)).collect();
            let w = Tensor::from_vec(w, (outputs, inputs), &Device::Cpu).map_err(candle)?;
            let b = Tensor::zeros(outputs, DType::F32, &Device::Cpu).map_err(candle)?;
            init.set_one(format!("{name}.weight"), w).map_err(candle)?;
            init.set_one(format!("{name}.bias"), b).map_err(candle)?;
        }
        let optimizer = Self::adamw(&varmap, config)?;
        Ok(CandleMlp {
            epoch: 0,
            seed: rng.random(),
            varmap,
            model,
            optimizer,
            config: config.clone(),
            data,
        })
    }

    fn step(&mut self) -> TrainResult<Epoch> {
        self.epoch += 1;
        let n = self.data.train_len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed ^ self.epoch));
        let mut total = 0.0;
        for rows in order.chunks(self.config.batch.max(1)) {
            let index = Tensor::new(rows, &Device::Cpu).map_err(candle)?;
            let x = self.data.train_x.index_select(&index, 0).map_err(candle)?;
            let y = self.data.train_y.index_select(&index, 0).map_err(candle)?;
            let loss = self
                .model
                .forward(&x)
                .and_then(|logits| candle_nn::loss::cross_entropy(&logits, &y))
                .map_err(candle)?;
            self.optimizer.backward_step(&loss).map_err(candle)?;
            total += f64::from(loss.to_scalar::<f32>().map_err(candle)?) * rows.len() as f64;
        }
        let (val_loss, val_accuracy) = self.validate()?;
        Ok(Epoch { val_accuracy, val_loss, train_loss: total / n as f64 })
    }

    /// The `VarMap` as safetensors (tensors `hidden.weight`, `hidden.bias`, `out.weight`,
    /// `out.bias`).
    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        self.varmap.save(dir.join(WEIGHTS_FILE)).map_err(candle)
    }

    /// Loads the weights into this instance's variables (of the config's shapes: a file of
    /// another shape is an error naming the tensor), and starts a fresh optimizer on them:
    /// AdamW's moments and step count were not saved.
    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        self.varmap.load(dir.join(WEIGHTS_FILE)).map_err(candle)?;
        self.optimizer = Self::adamw(&self.varmap, &self.config)?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The experiment

/// What the experiment found.
#[derive(Debug)]
pub struct Outcome {
    /// Every trial's results.
    pub analysis: Analysis<CandleConfig, Epoch>,
    /// The best validation accuracy any epoch of any trial reported.
    pub best_val_accuracy: f64,
    /// The best trial's best checkpoint.
    pub checkpoint: PathBuf,
    /// Validation accuracy of a network loaded from `checkpoint`.
    pub reloaded_val_accuracy: f64,
}

/// Tunes the network with TPE and ASHA (`samples` trials of up to `max_epochs` epochs,
/// `fixed` hyperparameters as JSON), then reloads the best checkpoint.
pub fn run(
    local_dir: &Path,
    samples: usize,
    max_epochs: u64,
    fixed: Option<&str>,
    verbose: u8,
) -> Result<Outcome, Box<dyn Error>> {
    let data = Arc::new(load_digits()?);
    let asha = Asha::builder(Epoch::VAL_ACCURACY, Mode::Max)
        .max_t(max_epochs as f64)
        .grace_period(2.0)
        .reduction_factor(2.0)
        .build()?;
    let mut tuner = Tuner::<CandleMlp>::new().with_data(Arc::clone(&data));
    if let Some(json) = fixed {
        tuner = tuner.config_overrides_json(json);
    }
    let analysis = tuner
        .searcher(Tpe::new().n_startup(6))
        .scheduler(asha)
        .metric(Epoch::VAL_ACCURACY, Mode::Max)
        .num_samples(samples)
        .stop(Stop::iterations(max_epochs))
        .checkpoint_freq(2)
        .keep_checkpoints_num(1)
        .checkpoint_score(Epoch::VAL_ACCURACY, Mode::Max)
        .local_dir(local_dir)
        .name("candle_mlp")
        .seed(11)
        .verbose(verbose)
        .run()?;
    let key = Epoch::VAL_ACCURACY;
    let best = analysis.best_trial(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    let best_val_accuracy = best.score(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    let config = best.config().clone();
    let checkpoint = analysis
        .best_checkpoint(key, Mode::Max, Scope::All)
        .ok_or("the best trial kept no checkpoint")?
        .to_path_buf();
    let context =
        TrialContext::detached("best", 0).with_data(SharedData::new::<DigitsTensors>(data));
    let mut model = CandleMlp::setup(&config, &context).map_err(|e| e.to_string())?;
    restore_checkpoint(&mut model, &checkpoint)?;
    let (_, reloaded_val_accuracy) = model.validate().map_err(|e| e.to_string())?;
    Ok(Outcome { analysis, best_val_accuracy, checkpoint, reloaded_val_accuracy })
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let out = run(&tune_examples::results_dir("candle_mlp"), 24, 16, None, 1)?;
    println!(
        "{} trials in {:.1} s; best validation accuracy {:.4}",
        out.analysis.trials().len(),
        start.elapsed().as_secs_f64(),
        out.best_val_accuracy
    );
    println!(
        "best checkpoint: {} (reloaded: validation accuracy {:.4})",
        out.checkpoint.join(WEIGHTS_FILE).display(),
        out.reloaded_val_accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short search (4 trials of up to 6 epochs, 64 hidden units) learns the digits, and
    /// the best checkpoint's `model.safetensors` is a `VarMap` that candle reads back.
    #[test]
    fn a_short_search_learns_the_digits() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(dir.path(), 4, 6, Some(r#"{"hidden": 64}"#), 0).unwrap();
        assert_eq!(out.analysis.trials().len(), 4);
        // Chance is 0.1.
        assert!(out.best_val_accuracy > 0.85, "best validation accuracy {}", out.best_val_accuracy);
        assert!(out.reloaded_val_accuracy > 0.85, "reloaded {}", out.reloaded_val_accuracy);
        let tensors =
            candle_core::safetensors::load(out.checkpoint.join(WEIGHTS_FILE), &Device::Cpu)
                .unwrap();
        let mut names: Vec<_> = tensors.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["hidden.bias", "hidden.weight", "out.bias", "out.weight"]);
        assert_eq!(tensors["hidden.weight"].dims(), &[64, 64]);
        assert_eq!(tensors["out.weight"].dims(), &[10, 64]);
    }

    /// A trial restored from a checkpoint has the saved weights (bit for bit, and so the same
    /// validation loss) and continues from them: its next epoch's training loss is that of a
    /// trained network, far below a fresh network's first epoch. A file of another shape
    /// is refused.
    #[test]
    fn the_checkpoint_holds_the_weights_and_a_restored_trial_continues_from_them() {
        let data = Arc::new(load_digits().unwrap());
        let shared = SharedData::new::<DigitsTensors>(Arc::clone(&data));
        let config = CandleConfig { lr: 3e-3, hidden: 64, batch: 32, weight_decay: 1e-4 };
        let mut original =
            CandleMlp::setup(&config, &TrialContext::detached("a", 1).with_data(shared.clone()))
                .unwrap();
        let first = original.step().unwrap();
        for _ in 0..3 {
            original.step().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        tune_runtime::storage::save_checkpoint(&original, dir.path()).unwrap();
        assert!(dir.path().join(WEIGHTS_FILE).is_file());

        // Another seed: other initial weights until the restore.
        let mut restored =
            CandleMlp::setup(&config, &TrialContext::detached("b", 2).with_data(shared.clone()))
                .unwrap();
        assert_ne!(restored.weights().unwrap(), original.weights().unwrap());
        restore_checkpoint(&mut restored, dir.path()).unwrap();
        assert_eq!(restored.epoch(), 4);
        assert_eq!(restored.weights().unwrap(), original.weights().unwrap());
        assert_eq!(restored.validate().unwrap(), original.validate().unwrap());
        let (_, accuracy) = restored.validate().unwrap();
        assert!(accuracy > 0.85, "validation accuracy after 4 epochs: {accuracy}");

        let next = restored.step().unwrap();
        assert!(
            next.train_loss < first.train_loss / 3.0,
            "epoch 5 after the restore: training loss {}, a fresh network's first epoch {}",
            next.train_loss,
            first.train_loss
        );
        assert!(next.val_accuracy > 0.85, "{}", next.val_accuracy);

        let wide = CandleConfig { hidden: 128, ..config };
        let mut other =
            CandleMlp::setup(&wide, &TrialContext::detached("c", 3).with_data(shared)).unwrap();
        let err = restore_checkpoint(&mut other, dir.path()).unwrap_err().to_string();
        assert!(err.contains("error setting") && err.contains(WEIGHTS_FILE), "{err}");
    }

    /// What a PBT exploit does to this trainable: the runner builds the target with
    /// `setup(new_config)` and restores the source's checkpoint into it. The target gets the
    /// source's weights and epoch, and an AdamW with the new config's learning rate and
    /// weight decay but none of the source's moments: one more epoch of the source, at the
    /// same learning rate with its moments kept, ends at other weights than the target's,
    /// although both start from the same weights, data order and rate.
    #[test]
    fn an_exploit_copies_the_weights_and_restarts_adamw_with_the_new_lr() {
        let data = Arc::new(load_digits().unwrap());
        let shared = SharedData::new::<DigitsTensors>(data);
        let config = CandleConfig { lr: 3e-3, hidden: 32, batch: 64, weight_decay: 1e-4 };
        let mut source =
            CandleMlp::setup(&config, &TrialContext::detached("s", 4).with_data(shared.clone()))
                .unwrap();
        for _ in 0..3 {
            source.step().unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        tune_runtime::storage::save_checkpoint(&source, dir.path()).unwrap();

        let explored = CandleConfig { lr: config.lr * 1.2, weight_decay: 2e-4, ..config };
        let mut target =
            CandleMlp::setup(&explored, &TrialContext::detached("t", 5).with_data(shared)).unwrap();
        restore_checkpoint(&mut target, dir.path()).unwrap();
        assert_eq!(target.epoch(), 3);
        assert_eq!(target.weights().unwrap(), source.weights().unwrap());
        assert_eq!(target.optimizer.learning_rate(), explored.lr);
        assert_eq!(target.optimizer.params().weight_decay, explored.weight_decay);

        source.optimizer.set_params(ParamsAdamW {
            lr: explored.lr,
            weight_decay: explored.weight_decay,
            ..ParamsAdamW::default()
        });
        let continued = source.step().unwrap();
        let exploited = target.step().unwrap();
        assert_ne!(target.weights().unwrap(), source.weights().unwrap());
        // Both go on from the trained network.
        assert!(continued.val_accuracy > 0.8, "{}", continued.val_accuracy);
        assert!(exploited.val_accuracy > 0.8, "{}", exploited.val_accuracy);
    }
}
