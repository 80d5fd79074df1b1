#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

struct Weights(Vec<f32>);

#[trainable(config = Config, metrics = Loss)]
struct Net {
    step: u64,
    weights: Weights,
}

impl Trainable for Net {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Net { step: 0, weights: Weights(Vec::new()) })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: self.weights.0.len() as f64 })
    }
}

fn main() {}
