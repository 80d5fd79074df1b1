use tune_runtime::search_space;

const LOW: f32 = 0.1;

search_space! {
    struct Config {
        lr: f64 = uniform(LOW, 1.0),
    }
}

fn main() {}
