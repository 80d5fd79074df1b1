//! A hand-written config for tests (`search_space!` generates these in real code).

use rand::Rng;
use serde::{Deserialize, Serialize};
use tune_runtime::{
    Space,
    space::{Condition, Dim, DomainViolation, SpaceError},
};

/// `guess` in `1..10000`, `workers` in `1..5`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuessConfig {
    pub guess: i64,
    pub workers: u32,
}

impl Space for GuessConfig {
    fn grid_size() -> usize {
        1
    }
    fn sample_at<R: Rng + ?Sized>(rng: &mut R, _grid_index: usize) -> Self {
        Self { guess: rng.random_range(1..10000), workers: rng.random_range(1..5) }
    }
    fn num_dims() -> usize {
        0
    }
    fn describe(_: &mut Vec<Dim>, _: &str, _: Option<Condition>) {}
    fn encode_into(&self, _: &mut [f64]) {}
    fn decode_from(_: &[f64]) -> Result<Self, SpaceError> {
        Ok(Self { guess: 1, workers: 1 })
    }
    fn check_domains(&self, _: &str, _: &mut Vec<DomainViolation>) {}
}
