#[path = "../../support/config.rs"]
mod config;

#[allow(unused_imports)]
use config::{Config, Loss};
use tune_runtime::prelude::*;

#[trainable(config = Config, metrics = Loss)]
enum Net {
    Small,
    Large,
}

fn main() {}
