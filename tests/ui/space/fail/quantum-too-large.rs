use tune_runtime::search_space;

search_space! {
    struct Config {
        dropout: f64 = quniform(0.1, 0.4, 0.5),
    }
}

fn main() {}
