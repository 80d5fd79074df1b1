use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = LR,
    }
}

fn main() {}
