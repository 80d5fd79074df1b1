use tune_runtime::search_space;

search_space! {
    struct Config(f64);
}

fn main() {}
