#[path = "../../support/config.rs"]
mod config;

#[allow(unused_imports)]
use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable]
fn train(config: &Config) -> TrainResult<()> {
    let _ = config;
    Ok(())
}

fn main() {}
