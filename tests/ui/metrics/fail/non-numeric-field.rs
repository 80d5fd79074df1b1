use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
struct Report {
    loss: f64,
    label: String,
    accuracy: Option<f64>,
}

fn main() {}
