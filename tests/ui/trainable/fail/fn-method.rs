#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

struct Trainer;

impl Trainer {
    #[trainable]
    fn train(&self, session: &mut Session<Loss>) -> TrainResult<()> {
        session.report(Loss { loss: 1.0 })?;
        Ok(())
    }
}

fn main() {
    let _ = Config;
}
