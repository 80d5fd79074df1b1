use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: usize = choice([]),
    }
}

fn main() {}
