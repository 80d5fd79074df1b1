use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
#[allow(non_snake_case)]
struct Report {
    loss: f64,
    Loss: f64,
}

fn main() {}
