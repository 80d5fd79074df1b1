use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = uniform(1.0, 0.5),
    }
}

fn main() {}
