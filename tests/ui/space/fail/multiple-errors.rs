use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = loguniform(0.0, 1e-1),
        momentum: f64 = uniform(0.99, 0.0),
        layers: usize = choice([]),
        batch: u32 = gird([32, 64]),
        dropout: f64 = quniform(0.0, 0.5, 0.0),
        lr: f64 = uniform(0.0, 1.0),
    }
    enum Optimizer {
        Sgd { nesterov: bool = grid([true, false]) },
    }
}

fn main() {}
