use tune_runtime::search_space;

search_space! {
    struct Config {
        lr: f64 = randint(1, 10),
    }
}

fn main() {}
