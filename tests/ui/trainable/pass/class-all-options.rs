#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(
    config = Config,
    metrics = Loss,
    resources(cpu = 0.5, gpu = 1, extra_cpu = 2, extra_gpu = 4, custom("tpu" = 1, "licence" = 0.5)),
    test_steps = 2,
    crate = ::tune_runtime,
)]
pub struct Net {
    step: u64,
    #[checkpoint(skip)]
    cache: Vec<f32>,
}

impl Trainable for Net {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Net { step: 0, cache: vec![1.0] })
    }
    fn step(&mut self) -> TrainResult<Loss> {
        self.step += 1;
        Ok(Loss { loss: self.cache[0] as f64 / self.step as f64 })
    }
}

#[trainable(config = Config, metrics = Loss, resources(cpu = |_c: &Config| 3_u32, gpu = gpus), test = false)]
pub struct Computed;

fn gpus(_: &Config) -> f64 {
    0.25
}

impl Trainable for Computed {
    fn setup(_: &Config, _: &TrialContext) -> TrainResult<Self> {
        Ok(Computed)
    }
    fn step(&mut self) -> TrainResult<Loss> {
        Ok(Loss { loss: 0.0 })
    }
}

fn main() {
    let r = <Net as tune_runtime::TrainableSpec>::resources(&Config);
    assert_eq!((r.cpu, r.gpu, r.extra_cpu, r.extra_gpu), (0.5, 1.0, 2.0, 4.0));
    assert_eq!(r.custom.len(), 2);
    let r = <Computed as tune_runtime::TrainableSpec>::resources(&Config);
    assert_eq!((r.cpu, r.gpu), (3.0, 0.25));
    tune_runtime::check::validate_save_restore::<Net>().unwrap();
    tune_runtime::check::validate_save_restore::<Computed>().unwrap();
}
