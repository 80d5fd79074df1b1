//! The `Guesser` of Ray Tune's Trainable guide: each trial starts from a random guess in
//! `[1, 10000)` and walks towards the password.
//!
//! In the Python guide the trainable reports `accuracy` while the analysis asks for the
//! best config by `diff`, a metric that does not exist; Ray Tune notices at run time.
//! Here the metric is `GuessMetrics::DIFF`, and a misspelled one does not compile.
//!
//! ```sh
//! cargo run --release -p tune-examples --example guesser
//! ```

use std::path::Path;

use tune_runtime::prelude::*;

search_space! {
    /// `{"guess": tune.randint(1, 10000)}`
    pub struct GuessConfig {
        guess: i64 = randint(1, 10000),
    }
}

/// One step's result.
#[derive(Debug, Clone, Metrics)]
pub struct GuessMetrics {
    /// Distance between the guess and the password.
    diff: i64,
}

/// Randomly picks a number from `[1, 10000)` to find the password.
#[trainable(config = GuessConfig, metrics = GuessMetrics)]
pub struct Guesser {
    guess: i64,
    iter: u64,
    #[checkpoint(skip)]
    password: i64,
}

impl Trainable for Guesser {
    /// Invoked once training starts (`_setup`).
    fn setup(config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Guesser { guess: config.guess, iter: 0, password: 1024 })
    }

    /// One logical iteration of training (`_train`); `training_iteration` is added by the
    /// runner.
    fn step(&mut self) -> TrainResult<GuessMetrics> {
        self.iter += 1;
        self.guess += 1;
        Ok(GuessMetrics { diff: (self.guess - self.password).abs() })
    }
}

/// `tune.run(Guesser, stop={"training_iteration": 10}, num_samples=10, config=...)`.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<GuessConfig, GuessMetrics>, RunError> {
    Tuner::<Guesser>::new()
        .stop(Stop::iterations(10))
        .num_samples(10)
        .metric(GuessMetrics::DIFF, Mode::Min)
        .local_dir(local_dir)
        .name("guesser")
        .seed(1024)
        .verbose(verbose)
        .run()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let analysis = run(&tune_examples::results_dir("guesser"), 2)?;
    let best = analysis.best_config(GuessMetrics::DIFF, Mode::Min, Scope::Last);
    println!("best config: {best:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_config_is_the_guess_closest_to_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = run(dir.path(), 0).unwrap();
        assert_eq!(analysis.trials().len(), 10);
        let best = analysis.best_config(GuessMetrics::DIFF, Mode::Min, Scope::Last).unwrap();
        // After 10 steps a trial's guess is `config.guess + 10`.
        let closest =
            analysis.trials().iter().map(|t| (t.config().guess + 10 - 1024).abs()).min().unwrap();
        assert_eq!((best.guess + 10 - 1024).abs(), closest);
        for trial in analysis.trials() {
            assert_eq!(trial.last_result().unwrap().training_iteration(), 10);
        }
    }
}
