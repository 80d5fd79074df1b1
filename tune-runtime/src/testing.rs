//! Hand-written implementations of the core traits for unit tests (what the macros will
//! generate).

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{CheckpointError, DomainViolation, SpaceError, TrainResult};
use crate::metrics::{Metric, Metrics};
use crate::space::{Condition, Dim, DimKind, Space};
use crate::trainable::{Checkpointable, Trainable, TrainableSpec, TrialContext};

/// `x = uniform(0, 1)`, `k = grid([1, 2, 3])`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cfg {
    pub x: f64,
    pub k: i64,
}

impl Space for Cfg {
    fn grid_size() -> usize {
        3
    }
    fn sample_at<R: Rng + ?Sized>(rng: &mut R, grid_index: usize) -> Self {
        Cfg { x: rng.random::<f64>(), k: [1, 2, 3][grid_index % 3] }
    }
    fn num_dims() -> usize {
        2
    }
    fn describe(dims: &mut Vec<Dim>, prefix: &str, condition: Option<Condition>) {
        dims.push(Dim {
            name: format!("{prefix}x"),
            kind: DimKind::Float { low: 0.0, high: 1.0, log: false, q: None },
            condition,
        });
        dims.push(Dim {
            name: format!("{prefix}k"),
            kind: DimKind::Categorical { choices: vec!["1".into(), "2".into(), "3".into()] },
            condition,
        });
    }
    fn encode_into(&self, out: &mut [f64]) {
        out[0] = self.x;
        out[1] = (self.k - 1) as f64;
    }
    fn decode_from(x: &[f64]) -> Result<Self, SpaceError> {
        Ok(Cfg { x: x[0], k: x[1] as i64 + 1 })
    }
    fn check_domains(&self, prefix: &str, errors: &mut Vec<DomainViolation>) {
        if !(0.0..1.0).contains(&self.x) {
            errors.push(DomainViolation {
                path: format!("{prefix}x"),
                message: "must be in [0, 1)".into(),
            });
        }
        if !(1..=3).contains(&self.k) {
            errors.push(DomainViolation {
                path: format!("{prefix}k"),
                message: "must be one of 1, 2, 3".into(),
            });
        }
    }
}

#[derive(Debug, Clone)]
pub struct Score {
    pub score: f64,
}

pub const SCORE: Metric<Score> = Metric::new(0, "score");

impl Metrics for Score {
    const NAMES: &'static [&'static str] = &["score"];
    fn value(&self, _index: usize) -> f64 {
        self.score
    }
    fn from_values(values: &[f64]) -> Option<Self> {
        match values {
            [score] => Some(Score { score: *score }),
            _ => None,
        }
    }
}

/// Reports `score = x * k * iteration`.
#[derive(Debug)]
pub struct Counter {
    pub x: f64,
    pub k: i64,
    pub iter: u64,
}

impl TrainableSpec for Counter {
    type Config = Cfg;
    type Metrics = Score;
    type Data = ();
    const NAME: &'static str = "Counter";
}

impl Checkpointable for Counter {
    fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
        Ok(self.iter.to_string().into_bytes())
    }
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.iter = String::from_utf8_lossy(bytes).parse().unwrap_or(0);
        Ok(())
    }
}

impl Trainable for Counter {
    fn setup(config: &Cfg, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Counter { x: config.x, k: config.k, iter: 0 })
    }
    fn step(&mut self) -> TrainResult<Score> {
        self.iter += 1;
        Ok(Score { score: self.x * self.k as f64 * self.iter as f64 })
    }
}

/// A result of trial `trial` at `iteration` with `score`; `time_total_s == iteration`.
pub fn result(trial: u32, iteration: u64, score: f64) -> crate::TrialResult<Score> {
    crate::TrialResult {
        metrics: Score { score },
        trial_id: crate::TrialId(trial),
        training_iteration: iteration,
        time_this_iter_s: 1.0,
        time_total_s: iteration as f64,
        timestamp: 0,
        done: false,
    }
}
