#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable]
fn train(config: Config, session: &mut Session<Loss>) -> TrainResult<()> {
    let _ = config;
    session.report(Loss { loss: 1.0 })?;
    Ok(())
}

fn main() {}
