// Shared by the UI cases: a config without dimensions (hand-written, as `search_space!`
// would generate it) and a metrics struct.
#![allow(dead_code)]

use tune_runtime::{Metrics, Space, space::{Condition, Dim, DomainViolation, SpaceError}};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config;

impl Space for Config {
    fn grid_size() -> usize {
        1
    }
    fn sample_at<R: rand::Rng + ?Sized>(_: &mut R, _: usize) -> Self {
        Config
    }
    fn num_dims() -> usize {
        0
    }
    fn describe(_: &mut Vec<Dim>, _: &str, _: Option<Condition>) {}
    fn encode_into(&self, _: &mut [f64]) {}
    fn decode_from(_: &[f64]) -> Result<Self, SpaceError> {
        Ok(Config)
    }
    fn check_domains(&self, _: &str, _: &mut Vec<DomainViolation>) {}
}

#[derive(Metrics, Debug, Clone)]
pub struct Loss {
    pub loss: f64,
}
