#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss, test = false)]
struct Net {
    step: u64,
    #[checkpoint(skip, binary)]
    weights: Vec<f32>,
}

impl Trainable for Net {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Net { step: 0, weights: Vec::new() })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: self.weights.len() as f64 })
    }
}

fn main() {}
