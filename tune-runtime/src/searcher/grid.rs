//! Grid search over every dimension of a space.

use rand_chacha::ChaCha8Rng;

use super::core::{Algo, Ctx, Proposal};
use super::macros::searcher_type;
use super::unit::{Codec, Kind};
use crate::space::{DimKind, Space};
use crate::state::StateError;

#[derive(Debug)]
pub(crate) struct Grid {
    per_dim: usize,
    points: Vec<Vec<f64>>,
    next: usize,
}

/// The unit-cube values a dimension takes on the grid.
fn levels(codec: &Codec, d: usize, per_dim: usize) -> Vec<f64> {
    match (codec.kinds[d], &codec.dims()[d].kind) {
        (Kind::Cat(k), _) => (0..k).map(|i| i as f64).collect(),
        (_, DimKind::Int { low, high, log: false, q }) => {
            let step = q.unwrap_or(1).max(1);
            let count = ((high - low) / step + 1) as usize;
            if count <= per_dim {
                // Every value: the centre of its slice of the unit interval.
                (0..count)
                    .map(|i| (i as f64 * step as f64 + 0.5) / (high - low + 1) as f64)
                    .collect()
            } else {
                spread(per_dim)
            }
        }
        _ => spread(per_dim),
    }
}

/// `n` points evenly spread over `[0, 1]`, both ends included.
fn spread(n: usize) -> Vec<f64> {
    if n <= 1 { vec![0.5] } else { (0..n).map(|i| i as f64 / (n - 1) as f64).collect() }
}

impl Grid {
    /// Every combination, inactive dimensions left out (NaN) so that an enum variant's
    /// grid is only crossed with its own fields.
    fn enumerate(codec: &Codec, per_dim: usize) -> Vec<Vec<f64>> {
        let mut out = vec![vec![f64::NAN; codec.len()]];
        for d in 0..codec.len() {
            let lv = levels(codec, d, per_dim);
            let mut next = Vec::with_capacity(out.len() * lv.len());
            for p in out {
                if codec.active(&p, d) {
                    for v in &lv {
                        let mut q = p.clone();
                        q[d] = *v;
                        next.push(q);
                    }
                } else {
                    next.push(p);
                }
            }
            out = next;
        }
        out
    }
}

impl Algo for Grid {
    const NAME: &'static str = "GridSearch";
    /// The grid is rebuilt by `setup`; only the position is state.
    type State = usize;

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn setup(&mut self, codec: &Codec, _num_samples: usize, _rng: &mut ChaCha8Rng) {
        self.points = Self::enumerate(codec, self.per_dim);
        self.next = 0;
    }

    fn propose(&mut self, _ctx: &Ctx<'_>, _rng: &mut ChaCha8Rng) -> Proposal {
        match self.points.get(self.next) {
            Some(p) => {
                self.next += 1;
                Proposal::Point(p.clone())
            }
            None => Proposal::Finished,
        }
    }

    fn total(&self, _num_samples: usize) -> Option<usize> {
        Some(self.points.len())
    }

    fn capped(&self) -> bool {
        false
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
    /// Grid search over every dimension: `points_per_dim` evenly spaced values of each
    /// float (ends included, on a log scale where the domain is; normal priors over
    /// mean ± 3 std), every value of an integer range that has at most `points_per_dim`
    /// values (else evenly spaced ones), every option of a categorical dimension. An enum
    /// variant's fields are only crossed with that variant.
    ///
    /// Each grid point is suggested once, then the search is finished; the experiment's
    /// `num_samples` is ignored (wrap it in a [`Repeater`](crate::searcher::Repeater) to run each
    /// point several times). `points_to_evaluate` come first, in addition to the grid.
    GridSearch, Grid
}

impl<C: Space> GridSearch<C> {
    /// A grid with `points_per_dim` values per continuous dimension (at least 1).
    pub fn new(points_per_dim: usize) -> Self {
        let algo = Grid { per_dim: points_per_dim.max(1), points: Vec::new(), next: 0 };
        Self { inner: super::core::ModelSearcher::new(algo) }
    }

    /// The number of grid points.
    pub fn grid_len(&self) -> usize {
        Grid::enumerate(&self.inner.codec, self.inner.algo.per_dim).len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;

    #[test]
    fn grid_crosses_each_variant_with_its_own_fields() {
        // Cond: selector {A{x}, B{y, k}, C} and a top-level float `t`.
        let g = GridSearch::<Cond>::new(3);
        // A: 3 values of x; B: 3 of y × 3 of k (k has 3 values); C: 1; each × 3 of t.
        assert_eq!(g.grid_len(), (3 + 9 + 1) * 3);
        let mut g = GridSearch::<Cond>::new(3);
        // `num_samples` (here 1) does not cap the grid.
        let configs = drive(&mut g, 1, 1, 0, cond_loss);
        assert_eq!(configs.len(), 39);
        all_valid(&configs);
        let distinct: std::collections::BTreeSet<String> =
            configs.iter().map(|c| format!("{c:?}")).collect();
        assert_eq!(distinct.len(), 39);
    }
}
