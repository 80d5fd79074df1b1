use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
struct Report(f64, f64);

fn main() {}
