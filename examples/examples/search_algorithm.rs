//! The "Search Algorithms" block of the seed guide *Tune in 60 Seconds*, in Rust: TPE over
//! `momentum` in [0, 20] and `lr` in [0, 1], maximizing `accuracy`, 20 samples, each
//! stopped after 20 iterations.
//!
//! ```sh
//! cargo run --release -p tune-examples --example search_algorithm
//! ```

use std::path::Path;

use tune_runtime::prelude::*;
use tune_runtime::searcher::Tpe;

search_space! {
    /// The guide's HyperOpt space: `hp.uniform("momentum", 0, 20)`, `hp.uniform("lr", 0, 1)`.
    pub struct Config {
        momentum: f64 = uniform(0.0, 20.0),
        lr: f64 = uniform(0.0, 1.0),
    }
}

/// What each step reports.
#[derive(Metrics, Debug, Clone)]
pub struct Accuracy {
    accuracy: f64,
}

/// A stand-in for training: accuracy climbs towards a ceiling set by the config (best
/// near `momentum = 9`, `lr = 0.1`), faster with a larger learning rate.
#[trainable(config = Config, metrics = Accuracy)]
pub struct Model {
    iter: u64,
    momentum: f64,
    lr: f64,
}

impl Trainable for Model {
    fn setup(config: &Config, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Model { iter: 0, momentum: config.momentum, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Accuracy> {
        self.iter += 1;
        let ceiling = 1.0 - ((self.momentum - 9.0) / 20.0).powi(2) - (self.lr - 0.1).powi(2);
        let progress = 1.0 - (-(self.iter as f64) * (0.05 + self.lr)).exp();
        Ok(Accuracy { accuracy: ceiling * progress })
    }
}

/// Pass the searcher to the tuner and maximize accuracy; 20 trials, 20 iterations each.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<Config, Accuracy>, RunError> {
    Tuner::<Model>::new()
        .searcher(Tpe::new())
        .metric(Accuracy::ACCURACY, Mode::Max)
        .num_samples(20)
        .stop(Stop::iterations(20))
        .local_dir(local_dir)
        .name("search_algorithm")
        .seed(20)
        .verbose(verbose)
        .run()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let analysis = run(&tune_examples::results_dir("search_algorithm"), 2)?;
    let best = analysis
        .best_config(Accuracy::ACCURACY, Mode::Max, Scope::Last)
        .ok_or("no trial reported")?;
    println!("Best config: {best:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpe_runs_20_trials_and_finds_a_good_config() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = run(dir.path(), 0).unwrap();
        assert_eq!(analysis.trials().len(), 20);
        for trial in analysis.trials() {
            assert_eq!(trial.num_results(), 20, "{:?}", trial.error());
        }
        let best = analysis.best_result(Accuracy::ACCURACY, Mode::Max, Scope::Last).unwrap();
        assert!(best.get(Accuracy::ACCURACY) > 0.8, "{:?}", best.values());
    }
}
