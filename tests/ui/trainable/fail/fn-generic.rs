#[path = "../../support/config.rs"]
mod config;

#[allow(unused_imports)]
use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable]
fn train<C: Space>(_config: &C, session: &mut Session<Loss>) -> TrainResult<()> {
    session.report(Loss { loss: 1.0 })?;
    Ok(())
}

fn main() {}
