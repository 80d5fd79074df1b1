use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
enum Report {
    Loss(f64),
}

fn main() {}
