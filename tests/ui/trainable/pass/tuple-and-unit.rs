#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss)]
struct Pair(u64, #[checkpoint(skip)] f64, u32);

impl Trainable for Pair {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Pair(0, 2.0, 0))
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.0 += 1;
        self.2 += 2;
        Ok(Loss { loss: self.1 * (self.0 + u64::from(self.2)) as f64 })
    }
}

#[trainable(config = Config, metrics = Loss)]
struct Stateless;

impl Trainable for Stateless {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Stateless)
    }
    fn step(&mut self) -> TrainResult<Loss> {
        Ok(Loss { loss: 1.0 })
    }
}

fn main() {
    use tune_runtime::Checkpointable;
    let mut p = Pair::setup(&Config, &TrialContext::detached("p", 0)).unwrap();
    p.step().unwrap();
    assert_eq!(p.save_state().unwrap(), br#"{"0":1,"2":2}"#);
    assert_eq!(Stateless.save_state().unwrap(), b"{}");
    tune_runtime::check::validate_save_restore::<Pair>().unwrap();
    tune_runtime::check::validate_save_restore::<Stateless>().unwrap();
}
