//! Quasi-random search: an Owen-scrambled Sobol sequence over the unit cube
//! (`sobol_burley`), as a searcher and as the start of the model-based ones.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::core::{Algo, Ctx, Proposal};
use super::macros::searcher_type;
use super::unit::{Codec, Kind};
use crate::space::{DimKind, Space};
use crate::state::StateError;

/// Points of one scrambled sequence before the next seed takes over (the crate's limit).
const PER_SEED: u32 = 1 << 16;

/// The `index`-th point of the sequence seeded with `seed`, in the unit cube: options
/// by equal slices, normal priors through the normal quantile; inactive dimensions NaN.
pub(crate) fn point(codec: &Codec, index: u32, seed: u32) -> Vec<f64> {
    let dims = sobol_burley::NUM_DIMENSIONS;
    let round = index / PER_SEED;
    let mut u: Vec<f64> = (0..codec.len())
        .map(|d| {
            // Past the crate's dimensions (and its 2^16 points), further sequences are
            // independent scrambles: padding, as the crate documents.
            let set = d as u32 / dims + round * 0x9E37;
            let x = f64::from(sobol_burley::sample(
                index % PER_SEED,
                d as u32 % dims,
                seed ^ set.wrapping_mul(0x85EB_CA6B),
            ));
            match (codec.kinds[d], &codec.dims()[d].kind) {
                (Kind::Cat(k), _) => ((x * k as f64).floor()).min((k - 1) as f64),
                (_, DimKind::Normal { .. }) => (0.5 + normal_quantile(x) / 6.0).clamp(0.0, 1.0),
                _ => x,
            }
        })
        .collect();
    codec.mask(&mut u);
    u
}

/// The standard normal quantile (Acklam's rational approximation, relative error below
/// 1.2e-9); `p` is kept inside `(0, 1)`.
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    let horner = |c: &[f64], x: f64| c.iter().fold(0.0, |acc, k| acc * x + k);
    let tail = |q: f64| horner(&C, q) / (horner(&D, q) * q + 1.0);
    if p < 0.024_25 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.024_25 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        horner(&A, r) * q / (horner(&B, r) * r + 1.0)
    }
}

/// The Sobol algorithm; see [`SobolSearch`].
#[derive(Debug, Default)]
pub(crate) struct SobolAlgo {
    seed: u32,
    next: u32,
}

impl Algo for SobolAlgo {
    const NAME: &'static str = "SobolSearch";
    type State = u32;

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn setup(&mut self, _codec: &Codec, _num_samples: usize, rng: &mut ChaCha8Rng) {
        self.seed = rng.random();
        self.next = 0;
    }

    fn propose(&mut self, ctx: &Ctx<'_>, _rng: &mut ChaCha8Rng) -> Proposal {
        self.next += 1;
        Proposal::Point(point(ctx.codec, self.next - 1, self.seed))
    }

    fn save(&self) -> u32 {
        self.next
    }

    fn restore(&mut self, next: u32) -> Result<(), StateError> {
        self.next = next;
        Ok(())
    }
}

searcher_type! {
    /// Quasi-random search: `num_samples` points of an Owen-scrambled Sobol sequence
    /// (Burley 2020, through the `sobol_burley` crate) over the unit cube of the space,
    /// seeded from the experiment's seed. Any prefix of `2^k` points is stratified in every
    /// dimension and every pair of dimensions, so the space is covered more evenly than by
    /// random draws, and unlike a Latin hypercube the design does not depend on
    /// `num_samples`. Options take equal slices of `[0, 1)`; enum variants' fields are
    /// used when their variant is drawn.
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1), layers: u8 = choice([1, 2, 3]) } }
    /// let sobol = tune_runtime::searcher::SobolSearch::<Cfg>::new();
    /// ```
    SobolSearch, SobolAlgo
}

impl<C: Space> SobolSearch<C> {
    /// A Sobol searcher; the runner sets its sample count and seed.
    pub fn new() -> Self {
        Self { inner: super::core::ModelSearcher::new(SobolAlgo::default()) }
    }
}

impl<C: Space> Default for SobolSearch<C> {
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
    fn quantile_inverts_the_normal_cdf() {
        for p in [1e-6, 0.01, 0.2, 0.5, 0.77, 0.975, 1.0 - 1e-5] {
            let z = normal_quantile(p);
            assert!((super::super::unit::norm_cdf(z) - p).abs() < 1e-6 * p.max(1e-3), "{p} {z}");
        }
    }

    #[test]
    fn every_stratum_of_a_power_of_two_prefix_is_hit_once() {
        let codec = Codec::new(<Cont2 as Space>::dims());
        let pts: Vec<Vec<f64>> = (0..64).map(|i| point(&codec, i, 17)).collect();
        // 64 points: each of the 64 slices of each axis once, each 8 × 8 cell once.
        for d in 0..2 {
            let mut seen = [0; 64];
            for p in &pts {
                seen[(p[d] * 64.0) as usize] += 1;
            }
            assert!(seen.iter().all(|s| *s == 1), "{seen:?}");
        }
        let mut cells = [0; 64];
        for p in &pts {
            cells[(p[0] * 8.0) as usize * 8 + (p[1] * 8.0) as usize] += 1;
        }
        assert!(cells.iter().all(|c| *c == 1), "{cells:?}");
        assert_ne!(point(&codec, 3, 17), point(&codec, 3, 18), "the seed scrambles");
    }

    #[test]
    fn stays_inside_is_seeded_and_round_trips() {
        let a = drive(&mut SobolSearch::<Cond>::new(), 40, 3, 4, cond_loss);
        all_valid(&a);
        assert_eq!(a, drive(&mut SobolSearch::<Cond>::new(), 40, 3, 4, cond_loss));
        assert_ne!(a, drive(&mut SobolSearch::<Cond>::new(), 40, 3, 5, cond_loss));
        let m = drive(&mut SobolSearch::<Mixed>::new(), 40, 1, 4, mixed_loss);
        all_valid(&m);
        // Each option of `c` gets a quarter of the first 32 points.
        for o in 0..4u8 {
            assert_eq!(m[..32].iter().filter(|c| c.c == o).count(), 8);
        }
        round_trip(SobolSearch::<Cond>::new, cond_loss);
    }
}
