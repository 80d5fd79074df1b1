#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss)]
struct Net {
    step: u64,
    #[checkpoint(skipp)]
    cache: Vec<f32>,
}

impl Trainable for Net {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Net { step: 0, cache: Vec::new() })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: self.cache.len() as f64 })
    }
}

fn main() {}
