#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

struct Digits;

#[trainable(config = Config, metrics = Loss, data = Digits, test = false)]
struct Net {
    step: u64,
}

impl Trainable for Net {
    fn setup(_: &Config, ctx: &TrialContext) -> TrainResult<Self> {
        let _digits: std::sync::Arc<Digits> = Self::data(ctx)?;
        Ok(Net { step: 0 })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: 1.0 / self.step as f64 })
    }
}

fn main() {
    // The data must be of the trainable's `data = Digits`.
    let _ = Tuner::<Net>::new().with_data(vec![1.0f32, 2.0]);
}
