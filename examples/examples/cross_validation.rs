//! A classical model tuned by k-fold cross-validation, one fold per step: smartcore's
//! decision tree on the handwritten digits, 5 folds. Each step fits the tree on four
//! folds, scores it on the fifth and reports the running mean of the fold scores so far,
//! so `MedianStopping` drops a config whose first folds are already worse than the median
//! of the others, without paying for its remaining folds.
//!
//! ```sh
//! cargo run --release -p tune-examples --example cross_validation
//! ```

use std::error::Error;
use std::path::Path;

use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::model_selection::{BaseKFold, KFold};
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};
use tune_runtime::prelude::*;
use tune_runtime::scheduler::MedianStopping;

/// Folds of the cross-validation: the steps of a trial.
pub const FOLDS: usize = 5;

search_space! {
    /// The tree's hyperparameters.
    pub struct TreeConfig {
        /// The deepest a leaf may be; shallow trees cannot tell 10 digits apart.
        max_depth: u16 = randint(1, 17),
        /// Images a leaf must hold at least.
        min_samples_leaf: usize = choice([1, 2, 4, 8, 16, 32]),
        /// How a split is chosen: `gini`, `entropy` or `error` (misclassification).
        criterion: String = choice(["gini", "entropy", "error"]),
    }
}

/// What each fold reports.
#[derive(Debug, Clone, Metrics)]
pub struct FoldScore {
    /// Mean accuracy of the folds scored so far: the score to compare trials by.
    mean_accuracy: f64,
    /// Accuracy on this step's held-out fold.
    fold_accuracy: f64,
}

/// The digits as smartcore wants them: pixels (rows of 64) and labels, with the folds.
#[derive(Debug)]
pub struct Folds {
    pixels: Vec<f32>,
    labels: Vec<u32>,
    features: usize,
    /// `(train rows, test rows)` of each fold.
    splits: Vec<(Vec<usize>, Vec<usize>)>,
}

impl Folds {
    /// Loads smartcore's digits and splits them into [`FOLDS`] folds, shuffled with a fixed
    /// seed so that every trial is scored on the same folds.
    pub fn load() -> TrainResult<Self> {
        let set = smartcore::dataset::digits::load_dataset();
        let (n, features) = (set.num_samples, set.num_features);
        let x = DenseMatrix::new(n, features, set.data.clone(), false)
            .map_err(|e| TrainError::msg(format!("digits: {e}")))?;
        let splits = KFold::default()
            .with_n_splits(FOLDS)
            .with_shuffle(true)
            .with_seed(Some(5))
            .split(&x)
            .collect();
        let labels = set.target.iter().map(|&t| t as u32).collect();
        Ok(Folds { pixels: set.data, labels, features, splits })
    }

    /// The rows `rows` as a matrix and their labels.
    fn take(&self, rows: &[usize]) -> TrainResult<(DenseMatrix<f32>, Vec<u32>)> {
        let d = self.features;
        let pixels = rows.iter().flat_map(|&r| self.pixels[r * d..(r + 1) * d].iter().copied());
        let x = DenseMatrix::new(rows.len(), d, pixels.collect(), false)
            .map_err(|e| TrainError::msg(format!("digits: {e}")))?;
        Ok((x, rows.iter().map(|&r| self.labels[r]).collect()))
    }
}

/// One trial: a config scored fold by fold.
#[trainable(config = TreeConfig, metrics = FoldScore, resources(cpu = 1))]
#[derive(Debug)]
pub struct CrossValidated {
    /// Folds scored so far.
    folds_done: usize,
    /// Sum of their accuracies.
    accuracy_sum: f64,
    #[checkpoint(skip)]
    params: DecisionTreeClassifierParameters,
    #[checkpoint(skip)]
    data: Folds,
}

impl Trainable for CrossValidated {
    fn setup(config: &TreeConfig, _ctx: &TrialContext) -> TrainResult<Self> {
        let criterion = match config.criterion.as_str() {
            "gini" => SplitCriterion::Gini,
            "entropy" => SplitCriterion::Entropy,
            "error" => SplitCriterion::ClassificationError,
            other => {
                return Err(TrainError::msg(format!(
                    "criterion `{other}`: expected `gini`, `entropy` or `error`"
                )));
            }
        };
        let params = DecisionTreeClassifierParameters::default()
            .with_criterion(criterion)
            .with_max_depth(config.max_depth)
            .with_min_samples_leaf(config.min_samples_leaf);
        Ok(CrossValidated { folds_done: 0, accuracy_sum: 0.0, params, data: Folds::load()? })
    }

    /// Fits on every fold but one and scores on that one.
    fn step(&mut self) -> TrainResult<FoldScore> {
        // Past the last fold the trial is complete: `Finished` ends it normally.
        let (train, test) = self.data.splits.get(self.folds_done).ok_or(tune_runtime::Finished)?;
        let (x, y) = self.data.take(train)?;
        let tree = DecisionTreeClassifier::fit(&x, &y, self.params.clone())
            .map_err(|e| TrainError::msg(format!("fit: {e}")))?;
        let (x, y) = self.data.take(test)?;
        let predicted = tree.predict(&x).map_err(|e| TrainError::msg(format!("predict: {e}")))?;
        let fold_accuracy = smartcore::metrics::accuracy(&y, &predicted);
        self.folds_done += 1;
        self.accuracy_sum += fold_accuracy;
        Ok(FoldScore { mean_accuracy: self.accuracy_sum / self.folds_done as f64, fold_accuracy })
    }
}

/// `samples` configs (TPE after 10 random ones), each cross-validated over up to 5 folds;
/// median stopping from the first fold on. `concurrent` caps the trials run at once (none:
/// as many as the CPUs admit); with 1 the run is the same every time, since which folds the
/// median is taken over then does not depend on how the threads were scheduled.
pub fn run(
    local_dir: &Path,
    samples: usize,
    concurrent: Option<usize>,
    verbose: u8,
) -> Result<Analysis<TreeConfig, FoldScore>, Box<dyn Error>> {
    let median = MedianStopping::builder(FoldScore::MEAN_ACCURACY, Mode::Max)
        .time_attr(Auto::TrainingIteration)
        .grace_period(1.0)
        .min_samples(3)
        .build()?;
    let mut tuner = Tuner::<CrossValidated>::new();
    if let Some(n) = concurrent {
        tuner = tuner.max_concurrent_trials(n);
    }
    let analysis = tuner
        .searcher(tune_runtime::searcher::Tpe::new().n_startup(10))
        .scheduler(median)
        .metric(FoldScore::MEAN_ACCURACY, Mode::Max)
        .num_samples(samples)
        .stop(Stop::iterations(FOLDS as u64))
        .local_dir(local_dir)
        .name("cross_validation")
        .seed(11)
        .verbose(verbose)
        .run()?;
    Ok(analysis)
}

fn main() -> Result<(), Box<dyn Error>> {
    let analysis = run(&tune_examples::results_dir("cross_validation"), 30, None, 2)?;
    let best = analysis
        .best_trial(FoldScore::MEAN_ACCURACY, Mode::Max, Scope::Last)
        .ok_or("no trial reported")?;
    let config = best.config();
    let score = best.last_result().map(|r| r.get(FoldScore::MEAN_ACCURACY)).unwrap_or(f64::NAN);
    println!(
        "best config: max_depth = {}, min_samples_leaf = {}, criterion = {}: {FOLDS}-fold accuracy {score:.4}",
        config.max_depth, config.min_samples_leaf, config.criterion
    );
    let folds: usize = analysis.trials().iter().map(|t| t.num_results()).sum();
    let pruned = analysis.trials().iter().filter(|t| t.num_results() < FOLDS).count();
    println!(
        "{pruned} of {} configs stopped before their last fold; {folds} folds fitted of {}",
        analysis.trials().len(),
        analysis.trials().len() * FOLDS
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_stopping_prunes_bad_configs_after_their_first_folds() {
        let dir = tempfile::tempdir().unwrap();
        // One trial at a time: with several, how many configs the median has seen when a
        // trial reports its first folds depends on thread timing (on CI's loaded machine
        // only 2 of 20 were once stopped), so the count asserted below would be luck.
        let analysis = run(dir.path(), 20, Some(1), 0).unwrap();
        assert_eq!(analysis.trials().len(), 20);
        assert_eq!(analysis.count(TrialStatus::Terminated), 20);
        let key = FoldScore::MEAN_ACCURACY;
        let finished: Vec<_> =
            analysis.trials().iter().filter(|t| t.num_results() == FOLDS).collect();
        let pruned: Vec<_> = analysis.trials().iter().filter(|t| t.num_results() < FOLDS).collect();
        assert!(pruned.len() >= 3, "only {} configs were stopped early", pruned.len());
        assert!(!finished.is_empty());
        // Nothing is stopped before the grace period (1 fold).
        assert!(pruned.iter().all(|t| t.num_results() >= 1));
        // The stopped configs are the weak ones: each scored below the median of the
        // configs that ran all folds.
        let mut full: Vec<f64> =
            finished.iter().map(|t| t.last_result().unwrap().get(key)).collect();
        full.sort_by(f64::total_cmp);
        let median = full[full.len() / 2];
        for t in &pruned {
            let score = t.last_result().unwrap().get(key);
            assert!(score < median, "{:?} stopped at {score} (median {median})", t.config());
        }
        // The best config is a deep tree and scores like one (a stump gets about 0.2).
        let best = analysis.best_trial(key, Mode::Max, Scope::Last).unwrap();
        assert_eq!(best.num_results(), FOLDS);
        assert!(best.config().max_depth >= 6, "{:?}", best.config());
        assert!(best.last_result().unwrap().get(key) > 0.8, "{:?}", best.last_result());
    }
}
