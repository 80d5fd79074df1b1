use tune_runtime::search_space;

search_space! {
    struct Config {
        width: u32 = lograndint(0, 1024),
    }
}

fn main() {}
