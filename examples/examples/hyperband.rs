//! HyperBand maximizing accuracy over 20 samples of a two-parameter space: the
//! "Trial Schedulers" block of Ray Tune's "Tune in 60 seconds".
//!
//! ```text
//! cargo run --release --example hyperband
//! ```

use std::error::Error;
use std::path::Path;

use tune_runtime::prelude::*;
use tune_runtime::scheduler::HyperBand;

search_space! {
    /// `{"lr": tune.uniform(0, 1), "momentum": tune.uniform(0, 1)}`
    pub struct Config {
        lr: f64 = uniform(0.0, 1.0),
        momentum: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Accuracy {
    accuracy: f64,
}

/// A stand-in for a model: accuracy climbs towards a ceiling set by the config, at a speed
/// set by the learning rate (so early results only roughly predict the final ones).
#[trainable(config = Config, metrics = Accuracy)]
pub struct MyTrainableClass {
    accuracy: f64,
    #[checkpoint(skip)]
    ceiling: f64,
    #[checkpoint(skip)]
    speed: f64,
}

impl Trainable for MyTrainableClass {
    fn setup(config: &Config, _ctx: &TrialContext) -> TrainResult<Self> {
        let ceiling = 1.0 - 0.5 * (config.lr - 0.3).powi(2) - 0.3 * (config.momentum - 0.8).powi(2);
        Ok(MyTrainableClass { accuracy: 0.0, ceiling, speed: 0.02 + 0.2 * config.lr })
    }

    fn step(&mut self) -> TrainResult<Accuracy> {
        // A little work per step, as a real epoch would take.
        std::thread::sleep(std::time::Duration::from_millis(2));
        self.accuracy += self.speed * (self.ceiling - self.accuracy);
        Ok(Accuracy { accuracy: self.accuracy })
    }
}

/// Runs the block: 20 samples, HyperBand up to 81 iterations.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<Config, Accuracy>, Box<dyn Error>> {
    // Create HyperBand scheduler and maximize accuracy.
    let hyperband = HyperBand::builder(Accuracy::ACCURACY, Mode::Max).max_t(81.0).build()?;

    // Execute 20 trials using HyperBand using a search space.
    let analysis = Tuner::<MyTrainableClass>::new()
        .num_samples(20)
        .scheduler(hyperband)
        .metric(Accuracy::ACCURACY, Mode::Max)
        .local_dir(local_dir)
        .name("hyperband")
        .seed(0)
        .verbose(verbose)
        .run()?;
    Ok(analysis)
}

fn main() -> Result<(), Box<dyn Error>> {
    let analysis = run(&tune_examples::results_dir("hyperband"), 1)?;
    let best = analysis
        .best_config(Accuracy::ACCURACY, Mode::Max, Scope::Last)
        .ok_or("no trial reported a result")?;
    let iterations: usize = analysis.trials().iter().map(|t| t.num_results()).sum();
    println!("best config: lr = {:.4}, momentum = {:.4}", best.lr, best.momentum);
    println!("{iterations} training iterations in all (20 trials to 81 would take 1620)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperband_stops_most_trials_early() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = run(dir.path(), 0).unwrap();
        assert_eq!(analysis.trials().len(), 20);
        assert_eq!(analysis.count(TrialStatus::Terminated), 20);
        let runs: Vec<usize> = analysis.trials().iter().map(|t| t.num_results()).collect();
        // One bracket of up to 81 trials holds all 20: 20 reach 1, 6 reach 3, 2 reach 9,
        // then one goes on to 27 and 81.
        let mut sorted = runs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted.iter().filter(|n| **n == 1).count(), 14, "{runs:?}");
        assert_eq!(*sorted.last().unwrap(), 81, "{runs:?}");
        assert!(runs.iter().sum::<usize>() < 1620 / 4, "{runs:?}");
    }
}
