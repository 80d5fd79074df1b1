use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: u32 = choice(1, 2, 3),
    }
}

fn main() {}
