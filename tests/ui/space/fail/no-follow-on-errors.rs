// After an error the declared types still exist with a `Space` impl, so code that uses
// them reports nothing more than the macro's own error.
use tune_runtime::prelude::*;

search_space! {
    pub struct Config {
        lr: f64 = uniform(1.0, 0.5),
        batch: u32 = grid([32, 64]),
        optimizer: Optimizer,
    }

    pub enum Optimizer {
        Sgd { momentum: f64 = uniform(0.0, 0.99) },
        Adam,
    }
}

fn train(config: &Config) -> f64 {
    config.lr * f64::from(config.batch)
}

fn main() {
    use rand::SeedableRng;
    let config = Config::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    let _ = train(&config);
    let _ = matches!(config.optimizer, Optimizer::Sgd { momentum } if momentum > 0.5);
    let _ = Config::from_json_str("{}");
}
