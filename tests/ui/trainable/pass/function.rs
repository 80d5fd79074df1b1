#[path = "../../support/config.rs"]
mod config;

use config::{Config, Loss};
use tune_runtime::prelude::*;

/// A training function; the generated struct is `Train`.
#[trainable(resources(cpu = 2))]
pub fn train(_config: &Config, session: &mut Session<Loss>) -> TrainResult<()> {
    let mut step: u64 = session.restored_state()?.unwrap_or(0);
    while step < 10 {
        step += 1;
        session.checkpoint(&step)?;
        session.report(Loss { loss: 1.0 / step as f64 })?;
    }
    Ok(())
}

#[trainable(name = Custom, test = false)]
fn r#loop(_config: &Config, session: &mut tune_runtime::Session<config::Loss>) -> tune_runtime::TrainResult<()> {
    loop {
        session.report(Loss { loss: 0.0 })?;
    }
}

fn main() {
    assert_eq!(<Train as tune_runtime::TrainableSpec>::NAME, "train");
    assert_eq!(<Custom as tune_runtime::TrainableSpec>::NAME, "loop");
    tune_runtime::check::validate_save_restore::<Train>().unwrap();
    let mut t = <Custom as Trainable>::setup(&Config, &TrialContext::detached("x", 0)).unwrap();
    t.step().unwrap();
    t.cleanup();
}
