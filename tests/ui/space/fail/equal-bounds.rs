use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: u32 = randint(4, 4),
    }
}

fn main() {}
