use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = loguniform(0.0, 1.0),
    }
}

fn main() {}
