use tune_runtime::search_space;

search_space! {
    struct Config {
        seed: u64 = 1.5,
    }
}

fn main() {}
