#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss, resources(custom("cpu" = 2, "" = 1)))]
struct Net {
    step: u64,
}

impl Trainable for Net {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Net { step: 0 })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: 1.0 / self.step as f64 })
    }
}

fn main() {}
