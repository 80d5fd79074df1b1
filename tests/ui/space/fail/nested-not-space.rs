use tune_runtime::search_space;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Optimizer {
    lr: f64,
}

search_space! {
    struct Config {
        batch: u32 = grid([32, 64]),
        optimizer: Optimizer,
    }
}

fn main() {}
