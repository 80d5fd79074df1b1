use tune_runtime::search_space;

search_space! {
    struct Config {
        noise: f64 = randn(0.0, 0.0),
    }
}

fn main() {}
