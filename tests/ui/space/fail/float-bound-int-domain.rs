use tune_runtime::search_space;

search_space! {
    struct Config {
        layers: u32 = randint(1, 4.5),
    }
}

fn main() {}
