use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = uniform(0.0, 1.0),
        lr: f64 = loguniform(1e-4, 1e-1),
    }
}

fn main() {}
