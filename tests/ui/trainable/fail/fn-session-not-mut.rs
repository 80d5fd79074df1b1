#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable]
fn train(_config: &Config, session: &Session<Loss>) -> TrainResult<()> {
    let _ = session;
    Ok(())
}

fn main() {}
