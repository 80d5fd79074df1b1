//! The main example: a real neural network on real data.
//!
//! A multi-layer perceptron (64 inputs, one or two hidden ReLU layers, 10 outputs, written
//! by hand on `ndarray`, trained with mini-batch AdamW) learns the UCI handwritten digits
//! (1,797 8x8 images of the digits 0-9, the copy shipped inside smartcore, so nothing is
//! downloaded). TPE proposes the learning rate, depth, width, batch size and weight decay;
//! ASHA stops the trials that fall behind at 3, 9 and 27 epochs; the search runs for 30
//! seconds (`--seconds S` changes it, `--seed N` the seed). Every third epoch is
//! checkpointed (weights and Adam moments) and each trial keeps its best; at the end the
//! best checkpoint is read back from disk and evaluated on the test split, which no trial
//! has seen.
//!
//! ```sh
//! cargo run --release -p tune-examples --example digits
//! ```

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, Axis, Slice, Zip};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tune_runtime::prelude::*;
use tune_runtime::{SharedData, scheduler::Asha, searcher::Tpe, storage::restore_checkpoint};

search_space! {
    /// The hyperparameters TPE tunes.
    pub struct MlpConfig {
        /// Adam's learning rate.
        lr: f64 = loguniform(1e-4, 1e-1),
        /// Hidden layers.
        layers: usize = choice([1, 2]),
        /// Units in each hidden layer.
        hidden: usize = choice([32, 64, 128, 256, 512]),
        /// Images per mini-batch.
        batch: usize = choice([16, 32, 64, 128]),
        /// Decoupled weight decay (AdamW), on the weights only.
        weight_decay: f64 = loguniform(1e-6, 1e-2),
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

// ---------------------------------------------------------------------------------------
// The data

/// Images (one row of 64 pixels in `[0, 1]` each) and their labels.
#[derive(Debug, Clone)]
pub struct Split {
    /// `n x 64` pixels.
    pub x: Array2<f32>,
    /// The digit of each row.
    pub y: Vec<usize>,
}

/// The digits, split once (with a fixed seed) into 60% training, 20% validation (what
/// the trials are scored on) and 20% test (used once, on the best checkpoint).
#[derive(Debug, Clone)]
pub struct Digits {
    /// What the network learns from.
    pub train: Split,
    /// What each epoch is scored on, and so what TPE and ASHA see.
    pub val: Split,
    /// Held out until the tuning is over.
    pub test: Split,
}

/// The seed of the train/validation/test split: the same split in every trial and run.
const SPLIT_SEED: u64 = 1797;

/// Loads smartcore's embedded copy of the digits and splits it.
///
/// Every trial calls this in `setup` (a few milliseconds); it is the one place to change
/// when the data set is handed to the trials instead.
pub fn load_digits() -> TrainResult<Digits> {
    let set = smartcore::dataset::digits::load_dataset();
    let (n, d) = (set.num_samples, set.num_features);
    if d != INPUTS {
        return Err(TrainError::msg(format!("digits: {d} pixels per image, {INPUTS} expected")));
    }
    // Pixels are counts 0..=16 of a 4x4 block; scale them to [0, 1].
    let x = Array2::from_shape_vec((n, d), set.data)
        .map_err(|e| TrainError::msg(format!("digits: {n} x {d} pixels expected: {e}")))?
        .mapv(|v| v / 16.0);
    let y: Vec<usize> = set.target.iter().map(|&t| t as usize).collect();
    if let Some(bad) = y.iter().find(|&&t| t >= CLASSES) {
        return Err(TrainError::msg(format!("digits: label {bad} is not a digit")));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let take = |rows: &[usize]| Split {
        x: x.select(Axis(0), rows),
        y: rows.iter().map(|&i| y[i]).collect(),
    };
    let (train, rest) = order.split_at(n * 3 / 5);
    let (val, test) = rest.split_at(rest.len() / 2);
    Ok(Digits { train: take(train), val: take(val), test: take(test) })
}

// ---------------------------------------------------------------------------------------
// The network

/// Pixels per image.
const INPUTS: usize = 64;
/// Digits.
const CLASSES: usize = 10;

/// Where one layer's weights (`inputs x outputs`, row-major) and biases (`outputs`) lie in
/// the network's flat parameter vector.
#[derive(Debug, Clone, Copy)]
struct Layer {
    inputs: usize,
    outputs: usize,
    offset: usize,
}

impl Layer {
    fn weights(&self) -> Range<usize> {
        self.offset..self.offset + self.inputs * self.outputs
    }

    fn biases(&self) -> Range<usize> {
        let end = self.weights().end;
        end..end + self.outputs
    }
}

/// The numbers `range` of a parameter vector (or of a moment, or a gradient).
fn part(v: &Array1<f32>, range: Range<usize>) -> ArrayView1<'_, f32> {
    v.slice_axis(Axis(0), Slice::from(range))
}

fn part_mut(v: &mut Array1<f32>, range: Range<usize>) -> ArrayViewMut1<'_, f32> {
    v.slice_axis_mut(Axis(0), Slice::from(range))
}

/// `64 -> hidden (ReLU) [-> hidden (ReLU)] -> 10 (softmax)`: the shapes of the layers.
///
/// Every weight and bias lies in one flat vector of `len()` numbers, layer after layer (and
/// so do Adam's two moments): the checkpoint stores these three vectors as tensors, and
/// the config rebuilds the layout.
#[derive(Debug, Clone)]
pub struct Layout {
    layers: Vec<Layer>,
    len: usize,
}

impl Layout {
    /// `hidden_layers` layers of `width` units.
    fn new(hidden_layers: usize, width: usize) -> Self {
        let mut sizes = vec![INPUTS];
        sizes.extend(std::iter::repeat_n(width, hidden_layers));
        sizes.push(CLASSES);
        let mut len = 0;
        let layers = sizes
            .windows(2)
            .map(|io| {
                let layer = Layer { inputs: io[0], outputs: io[1], offset: len };
                len = layer.biases().end;
                layer
            })
            .collect();
        Layout { layers, len }
    }

    /// The number of parameters.
    fn len(&self) -> usize {
        self.len
    }

    /// He-uniform weights, zero biases.
    fn init(&self, rng: &mut impl Rng) -> Array1<f32> {
        let mut params = Array1::zeros(self.len);
        for layer in &self.layers {
            let a = (6.0 / layer.inputs as f32).sqrt();
            part_mut(&mut params, layer.weights()).map_inplace(|w| *w = rng.random_range(-a..a));
        }
        params
    }

    /// A layer's weights in `params`, as an `inputs x outputs` matrix.
    fn weights<'a>(&self, layer: &Layer, params: &'a Array1<f32>) -> ArrayView2<'a, f32> {
        part(params, layer.weights())
            .into_shape_with_order((layer.inputs, layer.outputs))
            .expect("a layer's weights are a contiguous range of the parameters")
    }

    /// The hidden layers' activations and the class probabilities of a batch.
    fn forward(&self, params: &Array1<f32>, x: &Array2<f32>) -> (Vec<Array2<f32>>, Array2<f32>) {
        let (last, hidden_layers) = self.layers.split_last().expect("a network has layers");
        let mut hidden: Vec<Array2<f32>> = Vec::with_capacity(hidden_layers.len());
        for layer in hidden_layers {
            let input = hidden.last().unwrap_or(x);
            let mut h = input.dot(&self.weights(layer, params)) + part(params, layer.biases());
            h.mapv_inplace(|v| v.max(0.0));
            hidden.push(h);
        }
        let mut p = hidden.last().unwrap_or(x).dot(&self.weights(last, params))
            + part(params, last.biases());
        for mut row in p.rows_mut() {
            let max = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row /= sum;
        }
        (hidden, p)
    }

    /// Mean cross-entropy of probabilities `p` for labels `y`.
    fn loss(p: &Array2<f32>, y: &[usize]) -> f64 {
        let total: f64 =
            y.iter().enumerate().map(|(i, &c)| -f64::from(p[[i, c]].max(1e-12)).ln()).sum();
        total / y.len() as f64
    }

    /// The mean loss of a batch and its gradient with respect to every parameter (laid out
    /// like the parameters).
    fn gradient(&self, params: &Array1<f32>, x: &Array2<f32>, y: &[usize]) -> (f64, Array1<f32>) {
        let (hidden, p) = self.forward(params, x);
        let loss = Self::loss(&p, y);
        // d(loss)/d(logits) = (p - onehot(y)) / batch
        let mut d = p;
        for (i, &c) in y.iter().enumerate() {
            d[[i, c]] -= 1.0;
        }
        d /= y.len() as f32;
        let mut grad = Array1::zeros(self.len);
        for (i, layer) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 { x } else { &hidden[i - 1] };
            let gw = input.t().dot(&d);
            // `gw` is `inputs x outputs`; its logical (row-major) order is the layout's.
            part_mut(&mut grad, layer.weights()).iter_mut().zip(&gw).for_each(|(g, &v)| *g = v);
            part_mut(&mut grad, layer.biases()).assign(&d.sum_axis(Axis(0)));
            if i > 0 {
                // Through this layer's weights and the ReLU below.
                let mut below = d.dot(&self.weights(layer, params).t());
                Zip::from(&mut below).and(&hidden[i - 1]).for_each(|g, &a| {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                });
                d = below;
            }
        }
        (loss, grad)
    }

    /// Mean loss and accuracy on a split.
    fn evaluate(&self, params: &Array1<f32>, split: &Split) -> (f64, f64) {
        let (_, p) = self.forward(params, &split.x);
        let correct = p
            .rows()
            .into_iter()
            .zip(&split.y)
            .filter(|(row, y)| {
                let guess =
                    (0..CLASSES).fold(0, |best, i| if row[i] > row[best] { i } else { best });
                guess == **y
            })
            .count();
        (Self::loss(&p, &split.y), correct as f64 / split.y.len() as f64)
    }
}

// ---------------------------------------------------------------------------------------
// The trainable

/// One trial: the network, trained one epoch per step.
///
/// The generated checkpoint holds the parameters and both Adam moments as tensors in
/// `state.safetensors` (`#[checkpoint(binary)]` on `ndarray` arrays, tune-runtime's feature
/// `ndarray`), and Adam's step count, the epoch and the seed in `state.json`; the layout,
/// the config and the data are rebuilt by `setup`.
#[trainable(config = MlpConfig, metrics = Epoch, data = Digits, test_data = digits_for_the_test, resources(cpu = 1))]
#[derive(Debug)]
pub struct DigitsMlp {
    /// Every weight and bias, laid out by `layout`.
    #[checkpoint(binary)]
    params: Array1<f32>,
    /// AdamW's first moment estimate of each parameter.
    #[checkpoint(binary)]
    adam_m: Array1<f32>,
    /// AdamW's second moment estimate of each parameter.
    #[checkpoint(binary)]
    adam_v: Array1<f32>,
    /// AdamW steps taken (its bias correction depends on it).
    adam_steps: i32,
    epoch: u64,
    /// Seeds each epoch's shuffle (with the epoch number), so a restored trial shuffles
    /// exactly as the original would have.
    seed: u64,
    /// The network's shape, from the config.
    #[checkpoint(skip)]
    layout: Layout,
    #[checkpoint(skip)]
    config: MlpConfig,
    /// The data set, loaded once by `run` and shared by every trial (`Tuner::with_data`).
    #[checkpoint(skip)]
    data: Arc<Digits>,
}

/// The data of the generated save/restore test.
fn digits_for_the_test() -> Digits {
    load_digits().expect("smartcore's digits load")
}

impl Trainable for DigitsMlp {
    fn setup(config: &MlpConfig, ctx: &TrialContext) -> TrainResult<Self> {
        let mut rng = ctx.rng();
        let layout = Layout::new(config.layers, config.hidden);
        let params = layout.init(&mut rng);
        Ok(DigitsMlp {
            adam_m: Array1::zeros(params.len()),
            adam_v: Array1::zeros(params.len()),
            params,
            adam_steps: 0,
            epoch: 0,
            seed: rng.random(),
            layout,
            config: config.clone(),
            data: Self::data(ctx)?,
        })
    }

    fn step(&mut self) -> TrainResult<Epoch> {
        self.check_lengths()?;
        self.epoch += 1;
        let data = Arc::clone(&self.data);
        let train = &data.train;
        let mut order: Vec<usize> = (0..train.y.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(self.seed ^ self.epoch));
        let (lr, weight_decay) = (self.config.lr as f32, self.config.weight_decay as f32);
        let mut total = 0.0;
        for rows in order.chunks(self.config.batch.max(1)) {
            let x = train.x.select(Axis(0), rows);
            let y: Vec<usize> = rows.iter().map(|&i| train.y[i]).collect();
            let (loss, grad) = self.layout.gradient(&self.params, &x, &y);
            self.adam_step(&grad, lr, weight_decay);
            total += loss * rows.len() as f64;
        }
        let (val_loss, val_accuracy) = self.validate();
        Ok(Epoch { val_accuracy, val_loss, train_loss: total / train.y.len() as f64 })
    }
}

impl DigitsMlp {
    /// One AdamW step with gradient `grad`; the decay applies to the weights, not the biases.
    fn adam_step(&mut self, grad: &Array1<f32>, lr: f32, weight_decay: f32) {
        const BETA1: f32 = 0.9;
        const BETA2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        self.adam_steps += 1;
        let t = self.adam_steps;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for layer in &self.layout.layers {
            for (range, decay) in [(layer.weights(), weight_decay), (layer.biases(), 0.0)] {
                Zip::from(part_mut(&mut self.params, range.clone()))
                    .and(part_mut(&mut self.adam_m, range.clone()))
                    .and(part_mut(&mut self.adam_v, range.clone()))
                    .and(part(grad, range))
                    .for_each(|w, m, v, &g| {
                        *m = BETA1 * *m + (1.0 - BETA1) * g;
                        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
                        *w -= lr * ((*m / c1) / ((*v / c2).sqrt() + EPS) + decay * *w);
                    });
            }
        }
    }

    /// A checkpoint of another config holds vectors of another length: say so instead of
    /// training on them.
    fn check_lengths(&self) -> TrainResult<()> {
        let want = self.layout.len();
        for (name, len) in [
            ("params", self.params.len()),
            ("adam_m", self.adam_m.len()),
            ("adam_v", self.adam_v.len()),
        ] {
            if len != want {
                return Err(TrainError::msg(format!(
                    "`{name}` holds {len} numbers, but a network of {} x {} hidden units has \
                     {want} parameters: the checkpoint is of another config",
                    self.config.layers, self.config.hidden
                )));
            }
        }
        Ok(())
    }

    /// Mean loss and accuracy on the validation split.
    pub fn validate(&self) -> (f64, f64) {
        self.layout.evaluate(&self.params, &self.data.val)
    }

    /// Mean loss and accuracy on the test split.
    pub fn test(&self) -> (f64, f64) {
        self.layout.evaluate(&self.params, &self.data.test)
    }
}

// ---------------------------------------------------------------------------------------
// The experiment

/// How much to spend on the search.
#[derive(Debug, Clone)]
pub struct Budget {
    /// Trials.
    pub samples: usize,
    /// Epochs of a trial that ASHA never stops.
    pub max_epochs: u64,
    /// Epochs before ASHA's first decision.
    pub grace_epochs: u64,
    /// Seed of the experiment (configs and initial weights).
    pub seed: u64,
    /// Hyperparameters fixed in every trial, as JSON (`{"layers": 1}`), or none.
    pub fixed: Option<&'static str>,
    /// Wall time for the whole search, or none: once spent, no trial starts and the running
    /// ones stop after their current epoch.
    pub time: Option<Duration>,
}

impl Budget {
    /// The README's run: 30 seconds of search (at most 1,000 trials) of up to 81 epochs.
    pub const FULL: Budget = Budget {
        samples: 1000,
        max_epochs: 81,
        grace_epochs: 3,
        seed: 7,
        fixed: None,
        time: Some(Duration::from_secs(30)),
    };

    /// [`Budget::FULL`] changed by the command line's `--seed N`, `--seconds S` and
    /// `--samples N`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Budget, String> {
        let mut budget = Budget::FULL;
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("`{flag}` needs a value"))?;
            let number = |what: &str| {
                value
                    .parse::<u64>()
                    .map_err(|_| format!("`{flag} {value}`: expected {what}, a whole number"))
            };
            match flag.as_str() {
                "--seed" => budget.seed = number("a seed")?,
                "--seconds" => budget.time = Some(Duration::from_secs(number("seconds")?)),
                "--samples" => budget.samples = number("a number of trials")? as usize,
                _ => {
                    return Err(format!(
                        "unknown option `{flag}`: use `--seed N`, `--seconds S` or `--samples N`"
                    ));
                }
            }
        }
        Ok(budget)
    }
}

/// What the experiment found.
#[derive(Debug)]
pub struct Outcome {
    /// Every trial's results.
    pub analysis: Analysis<MlpConfig, Epoch>,
    /// The best trial's config.
    pub best_config: MlpConfig,
    /// The best validation accuracy any epoch of any trial reported.
    pub best_val_accuracy: f64,
    /// The best checkpoint of the trial with that accuracy (checkpoints are written every
    /// third epoch, so it may hold another epoch than the best one).
    pub checkpoint: PathBuf,
    /// The epoch `checkpoint` holds.
    pub checkpoint_epoch: u64,
    /// The validation accuracy the trial reported at `checkpoint_epoch`.
    pub checkpoint_val_accuracy: f64,
    /// Validation accuracy of the network loaded from `checkpoint`.
    pub reloaded_val_accuracy: f64,
    /// Test accuracy of the network loaded from `checkpoint`.
    pub test_accuracy: f64,
    /// Epochs trained in all trials together.
    pub epochs: usize,
}

/// Tunes the network with TPE and ASHA, then evaluates the best checkpoint.
pub fn run(local_dir: &Path, budget: &Budget, verbose: u8) -> Result<Outcome, Box<dyn Error>> {
    let asha = Asha::builder(Epoch::VAL_ACCURACY, Mode::Max)
        .max_t(budget.max_epochs as f64)
        .grace_period(budget.grace_epochs as f64)
        .reduction_factor(3.0)
        .build()?;
    let digits = Arc::new(load_digits().map_err(|e| e.to_string())?);
    let mut tuner = Tuner::<DigitsMlp>::new().with_data(Arc::clone(&digits));
    if let Some(json) = budget.fixed {
        tuner = tuner.config_overrides_json(json);
    }
    if let Some(time) = budget.time {
        tuner = tuner.time_budget(time);
    }
    let analysis = tuner
        .searcher(Tpe::new().n_startup(10))
        .scheduler(asha)
        .metric(Epoch::VAL_ACCURACY, Mode::Max)
        .num_samples(budget.samples)
        .stop(Stop::iterations(budget.max_epochs))
        // A checkpoint every 3 epochs (ASHA decides at multiples of 3), of which each
        // trial keeps its best.
        .checkpoint_freq(3)
        .keep_checkpoints_num(1)
        .checkpoint_score(Epoch::VAL_ACCURACY, Mode::Max)
        .status_interval(Duration::from_secs(2))
        .local_dir(local_dir)
        .name("digits")
        .seed(budget.seed)
        .verbose(verbose)
        .run()?;

    let key = Epoch::VAL_ACCURACY;
    let best = analysis.best_trial(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    let best_val_accuracy = best.score(key, Mode::Max, Scope::All).ok_or("no trial reported")?;
    let best_config = best.config().clone();
    // The trial's best checkpoint and the result it reported when writing it.
    let (saved, result) =
        best.best_checkpoint(key, Mode::Max).ok_or("the best trial kept no checkpoint")?;
    let (checkpoint, checkpoint_epoch) = (saved.path.clone(), saved.iteration);
    let checkpoint_val_accuracy = result.get(key);

    // A fresh network of the best config, loaded from the checkpoint on disk.
    let context = TrialContext::detached("best", 0).with_data(SharedData::new::<Digits>(digits));
    let mut model = DigitsMlp::setup(&best_config, &context).map_err(|e| e.to_string())?;
    restore_checkpoint(&mut model, &checkpoint)?;
    let (_, reloaded_val_accuracy) = model.validate();
    let (_, test_accuracy) = model.test();
    let epochs = analysis.trials().iter().map(|t| t.num_results()).sum();
    Ok(Outcome {
        analysis,
        best_config,
        best_val_accuracy,
        checkpoint,
        checkpoint_epoch,
        checkpoint_val_accuracy,
        reloaded_val_accuracy,
        test_accuracy,
        epochs,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let budget = Budget::from_args(std::env::args().skip(1))?;
    let out = run(&tune_examples::results_dir("digits"), &budget, 2)?;
    let c = &out.best_config;
    println!(
        "best config: lr = {:.2e}, {} x {} hidden, batch = {}, weight_decay = {:.1e}",
        c.lr, c.layers, c.hidden, c.batch, c.weight_decay
    );
    // A trial created just before the time budget ran out may not have trained at all.
    let trained = out.analysis.trials().iter().filter(|t| t.num_results() > 0).count();
    println!(
        "{trained} trials trained ({} created), {} epochs in all ({} if none had been stopped), {:.1} s",
        out.analysis.trials().len(),
        out.epochs,
        trained as u64 * budget.max_epochs,
        start.elapsed().as_secs_f64()
    );
    println!("best validation accuracy: {:.4}", out.best_val_accuracy);
    println!("best checkpoint (epoch {}): {}", out.checkpoint_epoch, out.checkpoint.display());
    println!(
        "reloaded from disk: validation accuracy {:.4} (reported {:.4}), test accuracy {:.4}",
        out.reloaded_val_accuracy, out.checkpoint_val_accuracy, out.test_accuracy
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_disjoint_and_covers_the_digits() {
        let data = load_digits().unwrap();
        assert_eq!((data.train.y.len(), data.val.y.len(), data.test.y.len()), (1078, 359, 360));
        assert_eq!(data.train.x.ncols(), 64);
        assert!(data.train.x.iter().all(|v| (0.0..=1.0).contains(v)));
        for digit in 0..CLASSES {
            assert!(data.test.y.iter().filter(|y| **y == digit).count() > 20, "{digit}");
        }
    }

    /// The gradient of the hand-written backward pass matches finite differences of the
    /// loss, in every layer of a two-hidden-layer network.
    #[test]
    fn backward_matches_finite_differences() {
        let data = load_digits().unwrap();
        let x = data.train.x.select(Axis(0), &[0, 1, 2, 3, 4, 5, 6, 7]);
        let y = &data.train.y[..8];
        let layout = Layout::new(2, 16);
        let params = layout.init(&mut ChaCha8Rng::seed_from_u64(1));
        let (_, grad) = layout.gradient(&params, &x, y);
        let loss_at = |p: &Array1<f32>| Layout::loss(&layout.forward(p, &x).1, y);
        for (layer, i, j) in [
            (0, 3, 0),
            (0, 20, 5),
            (0, 40, 15),
            (1, 2, 7),
            (1, 9, 1),
            (2, 0, 0),
            (2, 7, 3),
            (2, 15, 9),
        ] {
            let l = layout.layers[layer];
            let index = l.weights().start + i * l.outputs + j;
            let analytic = f64::from(grad[index]);
            let h = 1e-2;
            let (mut plus, mut minus) = (params.clone(), params.clone());
            plus[index] += h;
            minus[index] -= h;
            let numeric = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
            assert!(
                (analytic - numeric).abs() < 1e-3 + 0.05 * numeric.abs(),
                "layer {layer} w[{i},{j}]: backward {analytic}, finite differences {numeric}"
            );
        }
        // The biases of the output layer too.
        let last = layout.layers[2];
        let index = last.biases().start + 4;
        let (mut plus, mut minus) = (params.clone(), params.clone());
        plus[index] += 1e-2;
        minus[index] -= 1e-2;
        let numeric = (loss_at(&plus) - loss_at(&minus)) / 2e-2;
        let analytic = f64::from(grad[index]);
        assert!((analytic - numeric).abs() < 1e-3 + 0.05 * numeric.abs(), "{analytic} {numeric}");
    }

    /// The largest network's checkpoint is binary: its three vectors of parameters and
    /// moments as `F32` tensors in `state.safetensors`, within 1% of their raw size, and
    /// `state.json` holds only the small fields.
    #[test]
    fn the_largest_network_checkpoints_in_binary() {
        let dir = tempfile::tempdir().unwrap();
        let digits = Arc::new(load_digits().unwrap());
        let context = TrialContext::detached("big", 3).with_data(SharedData::new::<Digits>(digits));
        let config = MlpConfig { lr: 1e-3, layers: 2, hidden: 512, batch: 128, weight_decay: 1e-4 };
        let mut net = DigitsMlp::setup(&config, &context).unwrap();
        net.step().unwrap();
        tune_runtime::storage::save_checkpoint(&net, dir.path()).unwrap();
        let n = net.layout.len();
        assert_eq!(n, 64 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10);
        let raw = (3 * n * 4) as u64;
        let size = |name: &str| std::fs::metadata(dir.path().join(name)).unwrap().len();
        let tensors = size(tune_runtime::storage::TENSORS_FILE);
        assert!(tensors >= raw && tensors < raw + raw / 100, "{tensors} bytes for {raw} raw");
        assert!(size(tune_runtime::storage::STATE_FILE) < 200);
        let mut back = DigitsMlp::setup(&config, &context.clone()).unwrap();
        restore_checkpoint(&mut back, dir.path()).unwrap();
        assert_eq!(back.params, net.params);
        assert_eq!(back.adam_v, net.adam_v);
        assert_eq!(back.adam_steps, net.adam_steps);
        // A checkpoint of another config is refused by name, not trained on.
        let small = MlpConfig { layers: 1, hidden: 32, ..config };
        let mut other = DigitsMlp::setup(&small, &context).unwrap();
        restore_checkpoint(&mut other, dir.path()).unwrap();
        let err = other.step().unwrap_err().to_string();
        assert!(err.contains("`params` holds"), "{err}");
    }

    #[test]
    fn the_command_line_changes_the_budget_and_says_what_it_cannot_read() {
        let args = |a: &[&str]| Budget::from_args(a.iter().map(|s| s.to_string()));
        let b = args(&["--seed", "3", "--seconds", "45"]).unwrap();
        assert_eq!((b.seed, b.time, b.samples), (3, Some(Duration::from_secs(45)), 1000));
        assert_eq!(args(&[]).unwrap().time, Budget::FULL.time);
        let err = args(&["--seconds", "half"]).unwrap_err();
        assert!(err.contains("`--seconds half`: expected seconds"), "{err}");
        assert!(args(&["--seed"]).unwrap_err().contains("`--seed` needs a value"));
        assert!(args(&["--epochs", "9"]).unwrap_err().contains("unknown option `--epochs`"));
    }

    /// A reduced search (6 trials of up to 9 epochs, one hidden layer of 64 units, so that
    /// it runs in seconds unoptimized) still learns the digits, and the best checkpoint read
    /// back from disk is the network that was checkpointed.
    #[test]
    fn a_short_search_learns_the_digits_and_the_best_checkpoint_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Budget {
            samples: 6,
            max_epochs: 9,
            grace_epochs: 3,
            seed: 7,
            fixed: Some(r#"{"layers": 1, "hidden": 64}"#),
            time: None,
        };
        let out = run(dir.path(), &budget, 0).unwrap();
        assert_eq!(out.analysis.trials().len(), 6);
        assert_eq!(out.analysis.count(TrialStatus::Terminated), 6);
        // Chance is 0.1; a network with a wrong gradient stays far below this.
        assert!(out.best_val_accuracy > 0.85, "best validation accuracy {}", out.best_val_accuracy);
        assert_eq!(
            out.reloaded_val_accuracy,
            out.checkpoint_val_accuracy,
            "{} (epoch {})",
            out.checkpoint.display(),
            out.checkpoint_epoch
        );
        assert!(out.checkpoint_val_accuracy > 0.85, "{}", out.checkpoint_val_accuracy);
        assert!(out.test_accuracy > 0.85, "test accuracy {}", out.test_accuracy);
        assert!(out.checkpoint.join(tune_runtime::storage::STATE_FILE).is_file());
        assert!(out.checkpoint.join(tune_runtime::storage::TENSORS_FILE).is_file());
    }
}
