#[path = "../../support/config.rs"]
mod config;

#[allow(unused_imports)]
use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss)]
struct Net<T> {
    step: T,
}

fn main() {}
