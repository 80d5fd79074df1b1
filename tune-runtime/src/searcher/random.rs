//! Random search from the space's prior, and Latin hypercube sampling (quasi-random).

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::core::{Algo, Ctx, Proposal};
use super::macros::searcher_type;
use super::unit::{Codec, Kind};
use crate::space::Space;
use crate::state::StateError;

#[derive(Debug, Default)]
pub(crate) struct Prior;

impl Algo for Prior {
    const NAME: &'static str = "RandomSearch";
    type State = ();

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn save(&self) {}

    fn restore(&mut self, _state: ()) -> Result<(), StateError> {
        Ok(())
    }

    fn propose(&mut self, _ctx: &Ctx<'_>, _rng: &mut ChaCha8Rng) -> Proposal {
        Proposal::Prior
    }
}

searcher_type! {
    /// Random search: `num_samples` configs drawn independently from the space's prior
    /// (each field's declared domain; enum variants uniformly, then their fields).
    ///
    /// Unlike [`BasicVariantGenerator`](crate::searcher::BasicVariantGenerator) it does not repeat
    /// the grid: `grid` fields are sampled like `choice`. It takes `points_to_evaluate`.
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1) } }
    /// let searcher = tune_runtime::searcher::RandomSearch::<Cfg>::new();
    /// ```
    RandomSearch, Prior
}

impl<C: Space> RandomSearch<C> {
    /// A random searcher; the runner sets its sample count and seed.
    pub fn new() -> Self {
        Self { inner: super::core::ModelSearcher::new(Prior) }
    }
}

impl<C: Space> Default for RandomSearch<C> {
    fn default() -> Self {
        Self::new()
    }
}

/// Latin hypercube design: each continuous dimension is cut into `n` equal strata and
/// every stratum is used exactly once over the `n` samples.
#[derive(Debug, Default)]
pub(crate) struct Lhs {
    /// Per dimension, the stratum of each sample.
    strata: Vec<Vec<u32>>,
    n: usize,
    next: usize,
}

impl Lhs {
    fn build(&mut self, codec: &Codec, num_samples: usize, rng: &mut ChaCha8Rng) {
        // Designs past a million points bring nothing over random sampling.
        let n = num_samples.clamp(1, 1 << 20);
        self.n = n;
        self.next = 0;
        self.strata = codec
            .kinds
            .iter()
            .map(|k| {
                let m = match k {
                    Kind::Cont => n,
                    // Categories are balanced the same way: sample i gets option perm[i] % k.
                    Kind::Cat(c) => n.div_ceil(*c) * c,
                };
                let mut p: Vec<u32> = (0..m as u32).collect();
                p.shuffle(rng);
                p
            })
            .collect();
    }
}

impl Algo for Lhs {
    const NAME: &'static str = "LatinHypercube";
    /// The design is rebuilt by `setup` from the same seed; only the position is state.
    type State = usize;

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn setup(&mut self, codec: &Codec, num_samples: usize, rng: &mut ChaCha8Rng) {
        self.build(codec, num_samples, rng);
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        if self.next >= self.n {
            return Proposal::Prior;
        }
        let i = self.next;
        self.next += 1;
        let mut u: Vec<f64> = ctx
            .codec
            .kinds
            .iter()
            .zip(&self.strata)
            .map(|(k, s)| match k {
                Kind::Cont => (f64::from(s[i]) + rng.random::<f64>()) / self.n as f64,
                Kind::Cat(c) => f64::from(s[i] % *c as u32),
            })
            .collect();
        ctx.codec.mask(&mut u);
        Proposal::Point(u)
    }

    fn save(&self) -> usize {
        self.next
    }

    fn restore(&mut self, next: usize) -> Result<(), StateError> {
        self.next = next;
        Ok(())
    }
}

searcher_type! {
    /// Quasi-random search with a Latin hypercube design over `num_samples` points: every
    /// continuous dimension (in the unit cube: log-scaled where the domain is) is split
    /// into `num_samples` equal slices and each slice is sampled exactly once, so even a
    /// small budget covers every range evenly. Categorical dimensions are balanced the
    /// same way; dimensions of enum variants are used when their variant is drawn.
    ///
    /// The design is drawn in `setup` from the seed, so a seeded run is reproducible.
    LatinHypercube, Lhs
}

impl<C: Space> LatinHypercube<C> {
    /// A Latin hypercube searcher over the experiment's `num_samples`.
    pub fn new() -> Self {
        Self { inner: super::core::ModelSearcher::new(Lhs::default()) }
    }
}

impl<C: Space> Default for LatinHypercube<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;

    #[test]
    fn latin_hypercube_uses_every_stratum_once() {
        let mut s = LatinHypercube::<Cont2>::new();
        let configs = drive(&mut s, 20, 1, 5, |c: &Cont2| c.a + c.b);
        assert_eq!(configs.len(), 20);
        let mut seen = [false; 20];
        for c in &configs {
            seen[((c.a + 5.0) / 15.0 * 20.0).floor() as usize] = true;
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn random_and_lhs_stay_inside_and_are_seeded() {
        for seed in 0..3 {
            let a = drive(&mut RandomSearch::<Cond>::new(), 30, 1, seed, cond_loss);
            let b = drive(&mut RandomSearch::<Cond>::new(), 30, 1, seed, cond_loss);
            assert_eq!(a, b);
            all_valid(&a);
            let c = drive(&mut LatinHypercube::<Cond>::new(), 30, 3, seed, cond_loss);
            all_valid(&c);
        }
    }

    #[test]
    fn state_round_trip() {
        round_trip(LatinHypercube::<Cond>::new, cond_loss);
        round_trip(RandomSearch::<Cond>::new, cond_loss);
    }
}
