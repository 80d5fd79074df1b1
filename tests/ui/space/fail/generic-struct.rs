use tune_runtime::search_space;

search_space! {
    struct Config<T> {
        lr: T = uniform(0.0, 1.0),
    }
}

fn main() {}
