use tune_runtime::search_space;

search_space! {
    struct Config {
        batch: u32 = grid([]),
    }
}

fn main() {}
