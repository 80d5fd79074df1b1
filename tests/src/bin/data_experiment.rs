//! An experiment with shared data and binary checkpoints, run as a separate process by
//! `tests/trainable_data.rs`, with or without `--isolate` (every trial in a worker process:
//! the workers run `main` again, load the data themselves and write and read
//! `state.safetensors` themselves). Every trial fails once at its 4th step (a marker file
//! per trial) and continues from its checkpoint of step 2.
//!
//! `data_experiment <local_dir> <name> [--isolate]` prints one line per trial:
//! `<status> <failures> <total at each step>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tune_runtime::prelude::*;
use tune_runtime::{TrainableSpec, TrialStatus};

search_space! {
    pub struct Cfg {
        scale: f64 = grid([1.0, 2.0]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Fit {
    total: f64,
}

/// The data set every trial shares.
#[derive(Debug)]
pub struct Pixels(Vec<f32>);

#[trainable(config = Cfg, metrics = Fit, data = Pixels, test = false)]
pub struct Net {
    #[checkpoint(binary)]
    weights: Vec<f32>,
    iter: u64,
    #[checkpoint(skip)]
    data: Arc<Pixels>,
    #[checkpoint(skip)]
    marker: Option<PathBuf>,
}

impl Trainable for Net {
    fn setup(config: &Cfg, ctx: &TrialContext) -> TrainResult<Self> {
        let data = Self::data(ctx)?;
        let weights = data.0.iter().map(|p| p * config.scale as f32).collect();
        let marker = ctx.trial_dir.as_ref().map(|d| d.join("failed-once"));
        Ok(Net { weights, iter: 0, data, marker })
    }

    fn step(&mut self) -> TrainResult<Fit> {
        self.iter += 1;
        if self.iter == 4
            && let Some(marker) = self.marker.as_ref().filter(|m| !m.exists())
        {
            std::fs::write(marker, b"")?;
            return Err(TrainError::msg("injected failure"));
        }
        for (w, p) in self.weights.iter_mut().zip(&self.data.0) {
            *w = *w * 0.5 + p;
        }
        Ok(Fit { total: self.weights.iter().map(|w| f64::from(*w)).sum() })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (local, name) = (Path::new(&args[1]), &args[2]);
    let pixels = Pixels((0..5000).map(|i| (i % 7) as f32 / 8.0).collect());
    let analysis = Tuner::<Net>::new()
        .with_data(pixels)
        .stop(Stop::iterations(6))
        .checkpoint_freq(2)
        .max_failures(1)
        .total_cpus(2.0)
        .verbose(0)
        .local_dir(local)
        .name(name.as_str())
        .isolate_trials(args.iter().any(|a| a == "--isolate"))
        .run()?;
    for t in analysis.trials() {
        let totals: Vec<String> = t.results().map(|r| r.get(Fit::TOTAL).to_string()).collect();
        let done = t.status() == TrialStatus::Terminated;
        println!("{} {} {}", done, t.failures().len(), totals.join(","));
    }
    assert_eq!(<Net as TrainableSpec>::NAME, "Net");
    Ok(())
}
