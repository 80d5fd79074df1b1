use tune_runtime::search_space;

search_space! {
    enum Optimizer {}
}

fn main() {}
