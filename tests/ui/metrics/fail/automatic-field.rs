use tune_runtime::Metrics;

// Every field the runner writes with each result, used as a metric name.
#[derive(Metrics, Debug, Clone)]
struct Report {
    loss: f64,
    training_iteration: u64,
    time_this_iter_s: f64,
    time_total_s: f64,
    timestamp: u64,
    trial_id: u32,
    done: f64,
}

fn main() {}
