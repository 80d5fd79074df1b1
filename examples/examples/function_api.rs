//! The function-based API: a plain function that loops and reports each iteration through
//! its `Session` (Ray Tune's `tune.track.log`), here also checkpointing its state so the
//! trial can be paused and restored.
//!
//! ```sh
//! cargo run --release -p tune-examples --example function_api
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use tune_runtime::prelude::*;

search_space! {
    /// Parameters provided by the searcher for each trial.
    pub struct Config {
        lr: f64 = loguniform(1e-3, 1.0),
        decay: f64 = uniform(0.9, 1.0),
    }
}

/// What `report` logs each iteration.
#[derive(Debug, Clone, Metrics)]
pub struct Log {
    loss: f64,
}

/// The state the function checkpoints: everything its loop needs to continue.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    x: f64,
    lr: f64,
}

/// Gradient descent on `x^2` from `x = 10`, with a decaying step size. The macro keeps the
/// function and generates the trainable struct `Descend` beside it.
#[trainable]
pub fn descend(config: &Config, session: &mut Session<Log>) -> TrainResult<()> {
    let mut state: State = session.restored_state()?.unwrap_or(State { x: 10.0, lr: config.lr });
    loop {
        state.x -= state.lr * 2.0 * state.x;
        state.lr *= config.decay;
        session.checkpoint(&state)?;
        // Returns `Err(Stopped)` once the runner stops the trial: `?` ends the loop.
        session.report(Log { loss: state.x * state.x })?;
    }
}

/// Runs 8 trials of `descend` for 15 iterations each.
pub fn run(local_dir: &Path, verbose: u8) -> Result<Analysis<Config, Log>, RunError> {
    Tuner::<Descend>::new()
        .num_samples(8)
        .stop(Stop::iterations(15))
        .metric(Log::LOSS, Mode::Min)
        .checkpoint_at_end(true)
        .local_dir(local_dir)
        .name("function_api")
        .seed(1)
        .verbose(verbose)
        .run()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let analysis = run(&tune_examples::results_dir("function_api"), 2)?;
    let best = analysis.best_config(Log::LOSS, Mode::Min, Scope::Last).ok_or("no results")?;
    println!("best config: {best:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trial_reports_15_iterations_and_checkpoints_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = run(dir.path(), 0).unwrap();
        assert_eq!(analysis.trials().len(), 8);
        for trial in analysis.trials() {
            assert_eq!(trial.status(), TrialStatus::Terminated, "{:?}", trial.error());
            assert_eq!(trial.num_results(), 15);
            let dir = trial.dir().unwrap();
            assert!(
                dir.join("checkpoint_000015").join("state.json").is_file(),
                "{}",
                dir.display()
            );
        }
        let best = analysis.best_result(Log::LOSS, Mode::Min, Scope::Last).unwrap();
        assert!(best.get(Log::LOSS) < 1e-3, "{:?}", best.values());
    }
}
