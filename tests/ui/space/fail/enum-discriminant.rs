use tune_runtime::search_space;

search_space! {
    enum Optimizer {
        Sgd = 1,
    }
}

fn main() {}
