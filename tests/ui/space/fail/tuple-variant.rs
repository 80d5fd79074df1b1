use tune_runtime::search_space;

search_space! {
    enum Optimizer {
        Sgd(f64),
        Adam,
    }
}

fn main() {}
