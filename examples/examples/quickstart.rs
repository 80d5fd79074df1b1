//! "Tune in 60 seconds", in Rust: a class trainable, `Tuner` runs with samples, stop
//! criteria and a search space, the live status, and the analysis.
//!
//! ```sh
//! cargo run --release -p tune-examples --example quickstart
//! ```

use std::path::Path;

use tune_runtime::prelude::*;

search_space! {
    /// The hyperparameters: `{"lr": tune.uniform(0, 1), "momentum": tune.uniform(0, 1)}`.
    pub struct Hyper {
        lr: f64 = uniform(0.0, 1.0),
        momentum: f64 = uniform(0.0, 1.0),
    }
}

/// What each step reports. `Progress::MEAN_ACCURACY` is the typed handle on the metric:
/// a misspelled metric name does not compile.
#[derive(Debug, Clone, Metrics)]
pub struct Progress {
    mean_accuracy: f64,
    loss: f64,
}

/// A toy model: SGD with momentum on `loss(w) = (w - 3)^2`, so the hyperparameters
/// really decide how fast (or whether) it converges.
#[trainable(config = Hyper, metrics = Progress)]
pub struct Model {
    w: f64,
    velocity: f64,
    #[checkpoint(skip)] // comes from the config; setup rebuilds it
    config: Hyper,
}

impl Trainable for Model {
    fn setup(config: &Hyper, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Model { w: 0.0, velocity: 0.0, config: config.clone() })
    }

    /// One iteration of "training": called repeatedly by the runner.
    fn step(&mut self) -> TrainResult<Progress> {
        let grad = 2.0 * (self.w - 3.0);
        self.velocity = self.config.momentum * self.velocity - 0.5 * self.config.lr * grad;
        self.w += self.velocity;
        let loss = (self.w - 3.0).powi(2);
        Ok(Progress { mean_accuracy: 1.0 / (1.0 + loss), loss })
    }

    fn cleanup(&mut self) {
        // Release what the trainable holds (files, GPU memory, ...). Nothing here.
    }
}

/// The runs of the guide, each a `Tuner`; returns the analysis of the last one.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<Hyper, Progress>, RunError> {
    // Run 1 trial (one instance of the trainable), stop after 10 iterations.
    Tuner::<Model>::new()
        .stop(Stop::iterations(10))
        .local_dir(local_dir)
        .name("single")
        .verbose(verbose.min(1))
        .run()?;

    // Run 10 trials in parallel; concurrency follows the CPUs and each trial's resources.
    Tuner::<Model>::new()
        .num_samples(10)
        .stop(Stop::iterations(10))
        .local_dir(local_dir)
        .name("ten_samples")
        .verbose(verbose.min(1))
        .run()?;

    // Stop a trial at 10 iterations OR once it reaches a mean accuracy of 0.98.
    Tuner::<Model>::new()
        .stop(Stop::iterations(10).or(Stop::at_least(Progress::MEAN_ACCURACY, 0.98)))
        .local_dir(local_dir)
        .name("stop_early")
        .verbose(verbose.min(1))
        .run()?;

    // Search over the hyperparameters: 20 samples of `Hyper`, 10 iterations each, with the
    // live `== Status ==` table.
    Tuner::<Model>::new()
        .num_samples(20)
        .stop(Stop::iterations(10))
        .metric(Progress::MEAN_ACCURACY, Mode::Max)
        .local_dir(local_dir)
        .name("search")
        .seed(60)
        .verbose(verbose)
        .run()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let local_dir = tune_examples::results_dir("quickstart");
    let analysis = run(&local_dir, 2)?;

    // Get the best hyperparameters, as the typed config struct.
    let best = analysis
        .best_config(Progress::MEAN_ACCURACY, Mode::Max, Scope::Last)
        .ok_or("no trial reported a result")?;
    println!("best config: lr = {:.4}, momentum = {:.4}", best.lr, best.momentum);

    // The table of all trials, each with its best mean accuracy (a dataframe in Ray Tune).
    let table = analysis.table(Rows::Best(Progress::MEAN_ACCURACY.into(), Mode::Max));
    let csv = analysis.experiment_dir().join("trials.csv");
    table.write_csv(&csv)?;
    println!("all trials: {}", csv.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_finds_a_converging_config() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = run(dir.path(), 0).unwrap();
        assert_eq!(analysis.trials().len(), 20);
        let best = analysis.best_result(Progress::MEAN_ACCURACY, Mode::Max, Scope::Last).unwrap();
        assert!(best.get(Progress::MEAN_ACCURACY) > 0.9, "{:?}", best.values());
        for name in ["single", "ten_samples", "stop_early", "search"] {
            let loaded = Analysis::<Hyper, Progress>::from_dir(dir.path().join(name)).unwrap();
            let expected = match name {
                "ten_samples" => 10,
                "search" => 20,
                _ => 1,
            };
            assert_eq!(loaded.trials().len(), expected, "{name}");
        }
        let early = Analysis::<Hyper, Progress>::from_dir(dir.path().join("stop_early")).unwrap();
        let last = early.trials()[0].last_result().unwrap();
        assert!(
            last.training_iteration() == 10 || last.get(Progress::MEAN_ACCURACY) >= 0.98,
            "stopped at {} with {:?}",
            last.training_iteration(),
            last.values()
        );
    }
}
