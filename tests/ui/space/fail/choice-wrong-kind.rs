use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: usize = choice([1, "two", 3]),
    }
}

fn main() {}
