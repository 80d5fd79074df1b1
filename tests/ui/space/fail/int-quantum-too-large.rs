use tune_runtime::search_space;

search_space! {
    struct Config {
        width: u32 = qrandint(17, 31, 32),
    }
}

fn main() {}
