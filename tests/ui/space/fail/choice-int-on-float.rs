use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = choice([1, 0.1]),
    }
}

fn main() {}
