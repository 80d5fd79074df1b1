use tune_runtime::{Metric, Metrics};

#[derive(Metrics, Debug, Clone)]
#[metrics(crate = ::tune_runtime)]
pub struct Report {
    pub loss: f64,
    pub lr: f32,
    pub epoch: u32,
    pub delta: i64,
    pub samples: usize,
    pub converged: bool,
    pub r#type: u8,
}

fn main() {
    let r = Report { loss: 0.5, lr: 0.25, epoch: 3, delta: -2, samples: 10, converged: true, r#type: 1 };
    assert_eq!(Report::NAMES, &["loss", "lr", "epoch", "delta", "samples", "converged", "type"]);
    let handles: [Metric<Report>; 7] = [
        Report::LOSS,
        Report::LR,
        Report::EPOCH,
        Report::DELTA,
        Report::SAMPLES,
        Report::CONVERGED,
        Report::TYPE,
    ];
    let values: Vec<f64> = handles.iter().map(|h| h.get(&r)).collect();
    assert_eq!(values, [0.5, 0.25, 3.0, -2.0, 10.0, 1.0, 1.0]);
}
