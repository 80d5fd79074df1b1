use tune_runtime::prelude::*;

const LOW: f64 = 1e-4;
const MAX_LAYERS: i64 = 8;

fn default_name() -> String {
    "resnet".to_owned()
}

search_space! {
    pub struct Config {
        lr: f64 = loguniform(LOW, LOW * 1000.0),
        layers: u8 = randint(1, MAX_LAYERS),
        name: String = constant(default_name()),
        activation: Activation = choice([Activation::Relu, Activation::Gelu]),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    Relu,
    Gelu,
}

fn main() {
    use rand::SeedableRng;
    let c = Config::sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    assert!(c.validate().is_ok());
    assert_eq!(c.name, "resnet");
}
