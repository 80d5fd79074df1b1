use tune_runtime::search_space;

search_space! {
    struct Config {
        batch: u32 = grid([32, 64]),
        warmup: u32 = sample_from(|c: &Self| c.batch as f64 / 8.0),
    }
}

fn main() {}
