use tune_runtime::search_space;

search_space! {
    enum Optimizer {
        Sgd { lr: f64 = uniform(0.0, 1.0), nesterov: bool = grid([true, false]) },
        Adam,
    }
}

fn main() {}
