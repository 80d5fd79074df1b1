use tune_runtime::search_space;

search_space! {
    enum Optimizer {
        Sgd { lr: f64 = uniform(0.0, 1.0), warmup: f64 = sample_from(|c: &Self| 1.0) },
    }
}

fn main() {}
