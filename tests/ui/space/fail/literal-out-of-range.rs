use tune_runtime::search_space;

search_space! {
    struct Config {
        width: u8 = choice([16, 300]),
        offset: u32 = constant(-1),
    }
}

fn main() {}
