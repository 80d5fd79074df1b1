//! Reusing actors: a trainable that is slow to set up (here: it builds a large lookup table)
//! implements `reset_config`, and `reuse_actors(true)` hands a finished trial's instance
//! to the next trial instead of building a new one.
//!
//! ```sh
//! cargo run --release -p tune-examples --example reuse_actors
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tune_runtime::prelude::*;

search_space! {
    /// Optimizer settings that `reset_config` can switch in place.
    pub struct Config {
        lr: f64 = loguniform(1e-3, 1e-1),
        momentum: f64 = uniform(0.5, 0.99),
    }
}

/// One step's result.
#[derive(Debug, Clone, Metrics)]
pub struct Loss {
    loss: f64,
}

/// How many times the runner ran the expensive setup (for the test and the printout).
pub static SETUPS: AtomicUsize = AtomicUsize::new(0);

/// SGD with momentum on a fixed quadratic; `table` stands for data loaders and the like.
#[trainable(config = Config, metrics = Loss)]
pub struct Sgd {
    w: f64,
    velocity: f64,
    #[checkpoint(skip)]
    config: Config,
    #[checkpoint(skip)]
    table: Vec<f64>,
}

impl Trainable for Sgd {
    fn setup(config: &Config, ctx: &TrialContext) -> TrainResult<Self> {
        // Only trials of an experiment have a directory; the generated save/restore test,
        // which may run at the same time under `cargo test`, does not count.
        if ctx.trial_dir.is_some() {
            SETUPS.fetch_add(1, Ordering::Relaxed);
        }
        let table = (0..100_000).map(|i| f64::from(i).sqrt()).collect();
        Ok(Sgd { w: 5.0, velocity: 0.0, config: config.clone(), table })
    }

    fn step(&mut self) -> TrainResult<Loss> {
        let grad = 2.0 * self.w * (self.table[4] / 2.0); // table[4] == 2.0
        self.velocity = self.config.momentum * self.velocity - self.config.lr * grad;
        self.w += self.velocity;
        Ok(Loss { loss: self.w * self.w })
    }

    /// Switches to a new config in place: the optimizer settings change, the model
    /// restarts, the expensive table is kept. `Ok(true)`: the instance is now as good as
    /// a fresh `setup(config)`.
    fn reset_config(&mut self, config: &Config, _ctx: &TrialContext) -> TrainResult<bool> {
        self.config = config.clone();
        self.w = 5.0;
        self.velocity = 0.0;
        Ok(true)
    }
}

/// Runs 12 trials, two at a time, reusing instances.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<Config, Loss>, RunError> {
    Tuner::<Sgd>::new()
        .num_samples(12)
        .max_concurrent_trials(2)
        .reuse_actors(true)
        .stop(Stop::iterations(20))
        .metric(Loss::LOSS, Mode::Min)
        .local_dir(local_dir)
        .name("reuse_actors")
        .seed(12)
        .verbose(verbose)
        .run()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let analysis = run(&tune_examples::results_dir("reuse_actors"), 1)?;
    println!(
        "{} trials, {} expensive setups",
        analysis.trials().len(),
        SETUPS.load(Ordering::Relaxed)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_reused_through_reset_config() {
        let dir = tempfile::tempdir().unwrap();
        let before = SETUPS.load(Ordering::Relaxed);
        let analysis = run(dir.path(), 0).unwrap();
        let setups = SETUPS.load(Ordering::Relaxed) - before;
        assert_eq!(analysis.trials().len(), 12);
        // With 2 trials at a time, 2 instances serve all 12 trials.
        assert!(setups <= 2, "{setups} setups for 12 trials");
        for trial in analysis.trials() {
            assert_eq!(trial.num_results(), 20);
        }
    }
}
