use tune_runtime::Metrics;

#[derive(Metrics, Debug, Clone)]
#[metrics(rename_all = "camelCase")]
struct Report {
    loss: f64,
}

fn main() {}
