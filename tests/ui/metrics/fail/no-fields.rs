use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
struct Report {}

fn main() {}
