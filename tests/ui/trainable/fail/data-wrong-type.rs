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
    // The data must be of the trainable's `data = Digits`: a `Digits` or an `Arc<Digits>`.
    let _ = Tuner::<Net>::new().with_data(vec![1.0f32, 2.0]);
    // Not a reference, and not an `Arc` of another type.
    let digits = Digits;
    let _ = Tuner::<Net>::new().with_data(&digits);
    let _ = Tuner::<Net>::new().with_data(std::sync::Arc::new(1u8));
    // What compiles.
    let _ = Tuner::<Net>::new().with_data(Digits);
    let _ = Tuner::<Net>::new().with_data(std::sync::Arc::new(Digits));
}
