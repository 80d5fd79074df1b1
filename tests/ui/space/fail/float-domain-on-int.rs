use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: usize = uniform(1.0, 4.0),
    }
}

fn main() {}
