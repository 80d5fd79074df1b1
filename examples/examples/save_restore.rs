//! Save and restore: a trainable whose model lives in a file of its own, checkpointed by
//! the runner into `local_dir/experiment/trial/checkpoint_<iter>/`, restored into a new
//! experiment with `Tuner::restore`, and checked with `validate_save_restore`.
//!
//! ```sh
//! cargo run --release -p tune-examples --example save_restore
//! ```

use std::path::Path;

use tune_runtime::check::{SaveRestoreError, validate_save_restore};
use tune_runtime::prelude::*;

search_space! {
    /// The learning rate of the toy model.
    pub struct Config {
        lr: f64 = uniform(0.05, 0.5),
    }
}

/// One step's result.
#[derive(Debug, Clone, Metrics)]
pub struct Fit {
    loss: f64,
}

/// A linear model `y = a * x` fitted to `y = 2x` by gradient descent. The weights are saved
/// as a file of their own (like `torch.save(model.state_dict(), path)`); the step counter is
/// generated state in `state.json`.
#[trainable(config = Config, metrics = Fit)]
pub struct LinearModel {
    steps: u64,
    #[checkpoint(skip)] // saved by save_files as `model.txt`
    weight: f64,
    #[checkpoint(skip)]
    lr: f64,
}

impl Trainable for LinearModel {
    fn setup(config: &Config, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(LinearModel { steps: 0, weight: 0.0, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Fit> {
        self.steps += 1;
        // Mean squared error over x in {1, 2, 3}.
        let grad: f64 = [1.0, 2.0, 3.0].iter().map(|x| 2.0 * (self.weight - 2.0) * x * x).sum();
        self.weight -= self.lr * grad / 14.0;
        Ok(Fit { loss: (self.weight - 2.0).powi(2) * 14.0 / 3.0 })
    }

    /// Paths are relative to `dir`: the runner moves checkpoints around (temporary
    /// directories, pausing), so nothing may depend on an absolute path.
    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        std::fs::write(dir.join("model.txt"), format!("{:?}", self.weight))?;
        Ok(())
    }

    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        let text = std::fs::read_to_string(dir.join("model.txt"))?;
        self.weight =
            text.trim().parse().map_err(|e| TrainError::msg(format!("model.txt: {e}")))?;
        Ok(())
    }
}

/// The analysis of one experiment of this example.
pub type Runs = Analysis<Config, Fit>;

/// Trains 4 trials with a checkpoint every 5 iterations, then starts a new experiment
/// from the best trial's checkpoint.
pub fn run(local_dir: &Path, verbose: u8) -> Result<(Runs, Runs), Box<dyn std::error::Error>> {
    // Catch save/restore bugs before spending compute (the generated `#[test]` runs the same
    // check under `cargo test`).
    validate_save_restore::<LinearModel>().map_err(|e: SaveRestoreError| e.to_string())?;

    let first = Tuner::<LinearModel>::new()
        .num_samples(4)
        .stop(Stop::iterations(10))
        .checkpoint_freq(5)
        .keep_checkpoints_num(2)
        .checkpoint_score(Fit::LOSS, Mode::Min)
        .metric(Fit::LOSS, Mode::Min)
        .local_dir(local_dir)
        .name("first")
        .seed(3)
        .verbose(verbose)
        .run()?;
    let checkpoint =
        first.best_checkpoint(Fit::LOSS, Mode::Min, Scope::Last).ok_or("no checkpoint")?;

    // `tune.run(restore=<checkpoint_dir>)`: the trial continues from iteration 10.
    let resumed = Tuner::<LinearModel>::new()
        .stop(Stop::iterations(20))
        .restore(checkpoint)
        .local_dir(local_dir)
        .name("resumed")
        .verbose(verbose)
        .run()?;
    Ok((first, resumed))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (first, resumed) = run(&tune_examples::results_dir("save_restore"), 1)?;
    let best = first.best_checkpoint(Fit::LOSS, Mode::Min, Scope::Last);
    println!("best checkpoint of the first run: {best:?}");
    if let Some(last) = resumed.trials().first().and_then(|t| t.last_result()) {
        println!(
            "resumed to iteration {} with loss {:.3e}",
            last.training_iteration(),
            last.get(Fit::LOSS)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_land_in_the_trial_dir_and_a_restored_trial_continues() {
        let dir = tempfile::tempdir().unwrap();
        let (first, resumed) = run(dir.path(), 0).unwrap();
        for trial in first.trials() {
            let trial_dir = trial.dir().unwrap();
            for iter in [5, 10] {
                let checkpoint = trial_dir.join(format!("checkpoint_{iter:06}"));
                assert!(checkpoint.join("model.txt").is_file(), "{}", checkpoint.display());
                assert!(checkpoint.join("state.json").is_file(), "{}", checkpoint.display());
            }
        }
        let trial = &resumed.trials()[0];
        let rows: Vec<_> = trial.results().collect();
        // Restored at iteration 10, stopped at 20: iterations 11..=20.
        assert_eq!(rows.first().unwrap().training_iteration(), 11);
        assert_eq!(rows.last().unwrap().training_iteration(), 20);
        let before = first.best_result(Fit::LOSS, Mode::Min, Scope::Last).unwrap().get(Fit::LOSS);
        assert!(rows[0].get(Fit::LOSS) <= before, "the restored model did not keep its weight");
    }
}
