use tune_runtime::prelude::*;

search_space! {
    /// doc comments and extra derives pass through
    #[derive(Default)]
    pub struct TrainConfig {
        /// The learning rate.
        lr: f64 = loguniform(1e-4, 1e-1),
        momentum: f64 = uniform(0.0, 0.99),
        layers: usize = choice([1, 2, 3]),
        batch: u32 = grid([32, 64, 128]),
        warmup: u32 = sample_from(|c: &Self| c.batch / 8),
        seed: u64 = 42,
        name: String = choice(["a", "b"]),
        optimizer: Optimizer,
    }

    #[derive(Default)]
    pub enum Optimizer {
        Sgd { lr: f64 = loguniform(1e-3, 1e-1), momentum: f64 = uniform(0.0, 0.99) },
        Adam { beta1: f64 = uniform(0.8, 0.999) },
        #[default]
        Plain,
    }
}

fn main() {
    use rand::SeedableRng;
    let config = TrainConfig::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    assert!(config.validate().is_ok());
    let _ = TrainConfig::default();
}
