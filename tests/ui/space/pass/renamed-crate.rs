use tune_runtime as tune;

tune::search_space! {
    crate = tune;
    pub struct Config {
        lr: f32 = uniform(0.0, 1.0),
    }
}

fn main() {
    use tune::Space;
    assert_eq!(Config::num_dims(), 1);
}
