#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

struct Digits;

fn small_config() -> u32 {
    3
}

fn small_data() -> Vec<f32> {
    Vec::new()
}

#[trainable(config = Config, metrics = Loss, data = Digits, test_config = small_config, test_data = small_data)]
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
