use tune_runtime::search_space;

search_space! {
    struct Config {
        batch: u32 = grid([32, 64]),
        warmup: u32 = sample_from(8),
    }
}

fn main() {}
