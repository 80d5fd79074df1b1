use tune_runtime::search_space;

search_space! {
    struct Config {
        dropout: f64 = quniform(0.0, 0.5, -0.1),
    }
}

fn main() {}
