//! Random sampling and grid search: Ray Tune's `BasicVariantGenerator`.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{Searcher, Suggestion};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::TrialId;

/// The default searcher: `num_samples` repetitions of the grid (every combination of the
/// `grid` fields), every other field sampled at random. With no grid field this is plain
/// random search with `num_samples` trials.
///
/// The config of trial `k` is grid point `k % grid size` with its other fields drawn from
/// a ChaCha8 generator seeded from the experiment's seed, on stream `k`: a seeded
/// experiment suggests the same configs every time, and every process of a shared
/// experiment suggests the same config for trial `k` (so the process that creates it first
/// wins, and no config runs twice).
#[derive(Debug, Clone)]
pub struct BasicVariantGenerator {
    rng: ChaCha8Rng,
    num_samples: usize,
    grid_size: usize,
    next: usize,
}

impl Default for BasicVariantGenerator {
    fn default() -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(0), num_samples: 1, grid_size: 1, next: 0 }
    }
}

impl BasicVariantGenerator {
    /// A generator; the runner sets its sample count and seed.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<C: Space, M: Metrics> Searcher<C, M> for BasicVariantGenerator {
    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
        self.num_samples = num_samples;
        self.grid_size = C::grid_size().max(1);
        self.next = 0;
    }

    fn suggest(&mut self, trial: TrialId) -> Suggestion<C> {
        let k = trial.index();
        if k >= self.num_samples.saturating_mul(self.grid_size) {
            return Suggestion::Finished;
        }
        let mut rng = self.rng.clone();
        rng.set_stream(k as u64);
        self.next = self.next.max(k + 1);
        Suggestion::Config(C::sample_at(&mut rng, k % self.grid_size))
    }

    fn total_trials(&self) -> Option<usize> {
        Some(self.num_samples.saturating_mul(self.grid_size))
    }

    fn save_state(&self) -> serde_json::Value {
        crate::state::save(
            "BasicVariantGenerator",
            &Saved { next: self.next, rng: self.rng.clone() },
        )
    }

    fn restore_state(&mut self, state: serde_json::Value) -> Result<(), crate::state::StateError> {
        let saved: Saved = crate::state::load("BasicVariantGenerator", state)?;
        self.rng = saved.rng;
        self.next = saved.next;
        Ok(())
    }
}

/// What [`BasicVariantGenerator`] saves: its position and generator.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    next: usize,
    rng: ChaCha8Rng,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, Score};

    fn all(seed: u64) -> Vec<Cfg> {
        let mut g = BasicVariantGenerator::new();
        <BasicVariantGenerator as Searcher<Cfg, Score>>::setup(&mut g, 2, seed);
        let mut out = Vec::new();
        while let Suggestion::Config(c) = <BasicVariantGenerator as Searcher<Cfg, Score>>::suggest(
            &mut g,
            TrialId(out.len() as u32),
        ) {
            out.push(c);
        }
        out
    }

    #[test]
    fn repeats_the_grid_num_samples_times() {
        let configs = all(7);
        assert_eq!(configs.len(), 6);
        let ks: Vec<i64> = configs.iter().map(|c| c.k).collect();
        assert_eq!(ks, vec![1, 2, 3, 1, 2, 3]);
        assert_eq!(configs, all(7), "same seed, same configs");
        assert_ne!(configs, all(8));
    }

    #[test]
    fn restore_continues_where_the_save_was() {
        let mut g = BasicVariantGenerator::new();
        <BasicVariantGenerator as Searcher<Cfg, Score>>::setup(&mut g, 2, 7);
        let _ = <BasicVariantGenerator as Searcher<Cfg, Score>>::suggest(&mut g, TrialId(0));
        let _ = <BasicVariantGenerator as Searcher<Cfg, Score>>::suggest(&mut g, TrialId(1));
        let state = <BasicVariantGenerator as Searcher<Cfg, Score>>::save_state(&g);
        let mut h = BasicVariantGenerator::new();
        <BasicVariantGenerator as Searcher<Cfg, Score>>::setup(&mut h, 2, 7);
        <BasicVariantGenerator as Searcher<Cfg, Score>>::restore_state(&mut h, state).unwrap();
        let next = <BasicVariantGenerator as Searcher<Cfg, Score>>::suggest(&mut h, TrialId(2));
        assert_eq!(next, Suggestion::Config(all(7)[2].clone()));
        let bad = serde_json::json!({"next": 99});
        assert!(
            <BasicVariantGenerator as Searcher<Cfg, Score>>::restore_state(&mut h, bad).is_err()
        );
    }

    #[test]
    fn state_round_trip() {
        use crate::searcher::test_support::{Cond, cond_loss, round_trip};
        round_trip::<Cond, _>(BasicVariantGenerator::new, cond_loss);
    }
}
