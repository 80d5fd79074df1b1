//! Advanced resource allocation: a trainable that uses 1 GPU itself and launches 4 workers
//! with a GPU each declares `gpu = 1, extra_gpu = 4`; another computes its request from
//! its config (Ray Tune's `default_resource_requests`). Trials are admitted only when their
//! resources are free and see their GPU ids in `TrialContext::gpu_ids`: all of them, the
//! trainable's own first, then the extra ones to place its workers on.
//!
//! The GPUs here are ids handed out by the runner; nothing touches a real device.
//!
//! ```sh
//! cargo run --release -p tune-examples --example resources
//! ```

use std::path::Path;

use tune_runtime::prelude::*;

search_space! {
    /// How many data-parallel workers a trial launches.
    pub struct Config {
        workers: u32 = choice([1, 2, 4]),
    }
}

/// One step's result.
#[derive(Debug, Clone, Metrics)]
pub struct Usage {
    /// Number of GPU ids the trial was given (`gpu + extra_gpu`).
    gpus_seen: usize,
}

/// `resources_per_trial={"cpu": 1, "gpu": 1, "extra_gpu": 4}`.
#[trainable(config = Config, metrics = Usage, resources(cpu = 1, gpu = 1, extra_gpu = 4))]
pub struct Distributed {
    gpus: usize,
}

impl Trainable for Distributed {
    fn setup(_config: &Config, ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Distributed { gpus: ctx.gpu_ids.len() })
    }

    fn step(&mut self) -> TrainResult<Usage> {
        Ok(Usage { gpus_seen: self.gpus })
    }
}

/// Asks for one GPU per worker, computed from the config.
#[trainable(config = Config, metrics = Usage, resources(cpu = 1, gpu = |c: &Config| c.workers))]
pub struct PerWorker {
    gpus: usize,
}

impl Trainable for PerWorker {
    fn setup(_config: &Config, ctx: &TrialContext) -> TrainResult<Self> {
        Ok(PerWorker { gpus: ctx.gpu_ids.len() })
    }

    fn step(&mut self) -> TrainResult<Usage> {
        Ok(Usage { gpus_seen: self.gpus })
    }
}

/// The analysis of one experiment of this example.
pub type Runs = Analysis<Config, Usage>;

/// Runs both trainables on a node with 8 GPUs.
pub fn run(local_dir: &Path, verbose: u8) -> Result<(Runs, Runs), RunError> {
    let fixed = Tuner::<Distributed>::new()
        .name("my_trainable")
        .num_samples(4)
        .stop(Stop::iterations(3))
        .total_gpus(8)
        .local_dir(local_dir)
        .verbose(verbose)
        .run()?;
    let computed = Tuner::<PerWorker>::new()
        .name("per_worker")
        .num_samples(6)
        .stop(Stop::iterations(3))
        .total_gpus(8)
        .seed(8)
        .local_dir(local_dir)
        .verbose(verbose)
        .run()?;
    Ok((fixed, computed))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (fixed, computed) = run(&tune_examples::results_dir("resources"), 1)?;
    for trial in fixed.trials().iter().chain(computed.trials()) {
        let seen = trial.last_result().map(|r| r.get(Usage::GPUS_SEEN));
        println!("{}: workers = {}, GPU ids given = {seen:?}", trial.id(), trial.config().workers);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trials_get_the_gpus_they_declare() {
        let dir = tempfile::tempdir().unwrap();
        let (fixed, computed) = run(dir.path(), 0).unwrap();
        for trial in fixed.trials() {
            // The trial gets all 5 ids: one for itself, four to place its workers on.
            assert_eq!(trial.last_result().unwrap().get(Usage::GPUS_SEEN), 5.0);
        }
        for trial in computed.trials() {
            let expected = f64::from(trial.config().workers);
            assert_eq!(trial.last_result().unwrap().get(Usage::GPUS_SEEN), expected);
        }
    }
}
