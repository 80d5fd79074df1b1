#[path = "../../support/config.rs"]
mod config;

use std::sync::Arc;

use config::{Config, Loss};
use tune_runtime::prelude::*;
use tune_runtime::{TrainableSpec, check::SaveRestoreOptions};

#[derive(Debug)]
pub struct Digits {
    pixels: Vec<f32>,
}

fn small_config() -> Config {
    Config
}

fn small_data() -> Digits {
    Digits { pixels: vec![0.5; 4] }
}

#[trainable(config = Config, metrics = Loss, data = Digits, test_config = small_config, test_data = small_data, test_steps = 2)]
struct Net {
    #[checkpoint(binary)]
    weights: Vec<f32>,
    #[checkpoint(binary)]
    bias: [f64; 2],
    #[checkpoint(binary)]
    counts: Box<[u32]>,
    step: u64,
    #[checkpoint(skip)]
    data: Arc<Digits>,
}

impl Trainable for Net {
    fn setup(_: &Config, ctx: &TrialContext) -> TrainResult<Self> {
        let data = Self::data(ctx)?;
        let weights = data.pixels.clone();
        Ok(Net { weights, bias: [0.0; 2], counts: vec![0; 3].into_boxed_slice(), step: 0, data })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        for (w, p) in self.weights.iter_mut().zip(&self.data.pixels) {
            *w += p;
        }
        self.bias[0] += 1.0;
        self.counts[1] += 2;
        Ok(Loss { loss: f64::from(self.weights[0]) + self.bias[0] + f64::from(self.counts[1]) })
    }
}

/// A function trainable with shared data and files written only when the runner keeps a
/// checkpoint.
#[trainable(data = Digits, test_data = small_data)]
pub fn train(_config: &Config, session: &mut Session<Loss>) -> TrainResult<()> {
    let data = Train::data(session.context())?;
    let mut step: u64 = match session.restored_dir() {
        Some(dir) => std::fs::read_to_string(dir.join("step.txt"))?.parse()?,
        None => 0,
    };
    while step < 10 {
        step += 1;
        let loss = f64::from(data.pixels[0]) / step as f64;
        session.report_with(Loss { loss }, |dir| {
            std::fs::write(dir.join("step.txt"), step.to_string())?;
            Ok(())
        })?;
    }
    Ok(())
}

fn main() {
    tune_runtime::check::validate_save_restore_with::<Net>(
        SaveRestoreOptions::new().data(Arc::new(small_data())),
    )
    .unwrap();
    tune_runtime::check::validate_function_trainable::<Train>(
        SaveRestoreOptions::new().data(Arc::new(small_data())),
    )
    .unwrap();
    let _: Tuner<Net> = Tuner::<Net>::new().with_data(small_data());
}
