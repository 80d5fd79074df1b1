//! The model side of BOHB (Falkner et al. 2018): a TPE-like kernel density model per
//! budget, fitted on the largest budget with enough results.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::core::{Algo, Ctx, Proposal};
use super::macros::searcher_type;
use super::parzen::{DimKernel, Parzen, scott_kernels};
use crate::space::Space;
use crate::state::StateError;
use crate::state::nonfinite;

/// The BOHB algorithm; see [`Bohb`].
#[derive(Debug, Clone)]
pub(crate) struct BohbAlgo {
    min_points: Option<usize>,
    top_fraction: f64,
    random_fraction: f64,
    bandwidth_factor: f64,
    min_bandwidth: f64,
    candidates: usize,
    budgets: Option<Vec<u64>>,
    /// budget → trial → (point, loss at that budget).
    obs: BTreeMap<u64, BTreeMap<u32, (Vec<f64>, f64)>>,
}

impl BohbAlgo {
    /// The budget the model is fitted on: the largest with at least `min + 2` results.
    pub(crate) fn model_budget(&self, min: usize) -> Option<u64> {
        self.obs.iter().rev().find(|(_, m)| m.len() >= min + 2).map(|(b, _)| *b)
    }
}

/// One observation of [`BohbAlgo`]: budget, trial, point, loss.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BohbObs(
    u64,
    u32,
    #[serde(with = "nonfinite")] Vec<f64>,
    #[serde(with = "nonfinite")] f64,
);

impl Algo for BohbAlgo {
    const NAME: &'static str = "Bohb";
    type State = Vec<BohbObs>;

    fn observe(&mut self, trial: u32, point: &[f64], budget: u64, loss: f64) {
        if self.budgets.as_ref().is_some_and(|b| !b.contains(&budget)) {
            return;
        }
        self.obs.entry(budget).or_default().insert(trial, (point.to_vec(), loss));
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        let min = self.min_points.unwrap_or(ctx.codec.len() + 1).max(2);
        if rng.random::<f64>() < self.random_fraction {
            return Proposal::Prior;
        }
        let Some(budget) = self.model_budget(min) else { return Proposal::Prior };
        let mut data: Vec<&(Vec<f64>, f64)> = self.obs[&budget].values().collect();
        data.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n = data.len();
        let n_good = ((self.top_fraction * n as f64) as usize).max(min).min(n - 1);
        let n_bad = (n - n_good).max(min).min(n - n_good);
        let good: Vec<&[f64]> = data[..n_good].iter().map(|d| d.0.as_slice()).collect();
        let bad: Vec<&[f64]> =
            data[n_good..n_good + n_bad].iter().map(|d| d.0.as_slice()).collect();
        let kinds = &ctx.codec.kinds;
        let bw_good = scott_kernels(kinds, &good, 1.0, self.min_bandwidth);
        let wide: Vec<DimKernel> = bw_good
            .iter()
            .map(|k| match k {
                DimKernel::Cont(s) => DimKernel::Cont(
                    s.iter().map(|b| (b * self.bandwidth_factor).min(1.0)).collect(),
                ),
                DimKernel::Cat(keep) => {
                    DimKernel::Cat(1.0 - ((1.0 - keep) * self.bandwidth_factor).min(0.9))
                }
            })
            .collect();
        let (wg, wb) = (vec![1.0; good.len()], vec![1.0; bad.len()]);
        let l = Parzen::fit(kinds, &good, bw_good, &wg, None);
        let sampler = Parzen::fit(kinds, &good, wide, &wg, None);
        let bad_kernels = scott_kernels(kinds, &bad, 1.0, self.min_bandwidth);
        let g = Parzen::fit(kinds, &bad, bad_kernels, &wb, None);
        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut scratch = Vec::new();
        for _ in 0..self.candidates {
            let u = sampler.sample(ctx.codec, rng);
            let score =
                l.log_pdf_with(&u, &mut scratch) - g.log_pdf_with(&u, &mut scratch).max(-1e300);
            if best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, u));
            }
        }
        best.map_or(Proposal::Prior, |b| Proposal::Point(b.1))
    }

    fn save(&self) -> Vec<BohbObs> {
        self.obs
            .iter()
            .flat_map(|(b, m)| m.iter().map(move |(t, (p, l))| BohbObs(*b, *t, p.clone(), *l)))
            .collect()
    }

    fn restore(&mut self, saved: Vec<BohbObs>) -> Result<(), StateError> {
        let mut obs: BTreeMap<u64, BTreeMap<u32, (Vec<f64>, f64)>> = BTreeMap::new();
        for BohbObs(b, t, p, l) in saved {
            obs.entry(b).or_default().insert(t, (p, l));
        }
        self.obs = obs;
        Ok(())
    }
}

searcher_type! {
    /// The searcher of BOHB (Falkner et al. 2018): HyperBand's budgets with TPE-like
    /// models instead of random configs.
    ///
    /// Every result is an observation at a budget, the trial's `training_iteration`
    /// (restrict with [`Bohb::budgets`] to the rung budgets of the scheduler). A new
    /// config comes, with probability `random_fraction` (default 1/3), from the prior;
    /// otherwise from kernel densities fitted on the largest budget that has at least
    /// `min_points + 2` results (default `min_points`: dimensions + 1): the best
    /// `top_fraction` (default 15%) form the good density `l`, the rest the bad one `g`,
    /// `n_candidates` (default 64) points are drawn from `l` with its bandwidths widened
    /// by `bandwidth_factor` (default 3), and the one with the largest `l/g` is
    /// suggested. Until a budget has enough results, configs come from the prior, as in
    /// plain HyperBand. Conditional and categorical dimensions are modelled as in
    /// [`Tpe`](crate::searcher::Tpe).
    ///
    /// Pair it with the HyperBand variant for BOHB among the schedulers, which stops and
    /// resumes trials at the rung budgets and so produces results at those budgets; see
    /// `docs/searchers.md`. It also works with any scheduler that lets trials report
    /// several iterations.
    Bohb, BohbAlgo
}

impl<C: Space> Bohb<C> {
    /// BOHB's searcher with the paper's defaults.
    pub fn new() -> Self {
        let algo = BohbAlgo {
            min_points: None,
            top_fraction: 0.15,
            random_fraction: 1.0 / 3.0,
            bandwidth_factor: 3.0,
            min_bandwidth: 1e-3,
            candidates: 64,
            budgets: None,
            obs: BTreeMap::new(),
        };
        Self { inner: super::core::ModelSearcher::new(algo) }
    }

    /// Only record results at these training iterations (the scheduler's rungs).
    pub fn budgets(mut self, budgets: Vec<u64>) -> Self {
        self.inner.algo.budgets = Some(budgets);
        self
    }

    /// Results a budget needs (beyond 2) before a model is fitted on it.
    pub fn min_points_in_model(mut self, n: usize) -> Self {
        self.inner.algo.min_points = Some(n);
        self
    }

    /// Fraction of results in the good density (default 0.15).
    pub fn top_fraction(mut self, f: f64) -> Self {
        self.inner.algo.top_fraction = f.clamp(0.01, 0.99);
        self
    }

    /// Probability of a config from the prior (default 1/3).
    pub fn random_fraction(mut self, f: f64) -> Self {
        self.inner.algo.random_fraction = f.clamp(0.0, 1.0);
        self
    }

    /// Factor widening the good density's bandwidths when drawing candidates (default 3).
    pub fn bandwidth_factor(mut self, f: f64) -> Self {
        self.inner.algo.bandwidth_factor = f.max(0.0);
        self
    }

    /// Candidates drawn per suggestion (default 64).
    pub fn n_candidates(mut self, n: usize) -> Self {
        self.inner.algo.candidates = n.max(1);
        self
    }
}

impl<C: Space> Default for Bohb<C> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use crate::searcher::{Searcher, Suggestion};
    use crate::testing::{SCORE, Score};
    use crate::trial::{Mode, TrialId};

    /// A synthetic HyperBand bracket: 27 configs at budget 1, the best third continue to
    /// budget 3, the best third of those to 9. Loss: distance to the optimum, noisier at
    /// small budgets.
    fn bracket(s: &mut Bohb<Cont2>, first_id: u32, loss: fn(&Cont2, u64) -> f64) -> Vec<Cont2> {
        let mut configs = Vec::new();
        for i in 0..27 {
            match <_ as Searcher<Cont2, Score>>::suggest(s, TrialId(first_id + i)) {
                Suggestion::Config(c) => configs.push((first_id + i, c)),
                other => panic!("{other:?}"),
            }
        }
        let mut alive = configs.clone();
        for budget in [1u64, 3, 9] {
            let mut scored: Vec<(f64, u32, Cont2)> = alive
                .iter()
                .map(|(id, c)| {
                    let l = loss(c, budget);
                    <_ as Searcher<Cont2, Score>>::on_trial_result(
                        s,
                        TrialId(*id),
                        &result(*id, budget, l),
                    );
                    (l, *id, c.clone())
                })
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            let keep = (scored.len() / 3).max(1);
            for (l, id, _) in &scored[keep..] {
                let r = result(*id, budget, *l);
                <_ as Searcher<Cont2, Score>>::on_trial_complete(s, TrialId(*id), Some(&r), false);
            }
            alive = scored[..keep].iter().map(|(_, id, c)| (*id, c.clone())).collect();
        }
        for (id, c) in &alive {
            let r = result(*id, 9, loss(c, 9));
            <_ as Searcher<Cont2, Score>>::on_trial_complete(s, TrialId(*id), Some(&r), false);
        }
        configs.into_iter().map(|(_, c)| c).collect()
    }

    fn loss(c: &Cont2, budget: u64) -> f64 {
        let d = ((c.a - 2.0) / 15.0).powi(2) + ((c.b - 3.0) / 15.0).powi(2);
        d + 0.2 / budget as f64 * ((c.a * 7.0).sin() + 1.0)
    }

    #[test]
    fn models_the_largest_budget_with_enough_results() {
        let mut s = Bohb::<Cont2>::new();
        <_ as Searcher<Cont2, Score>>::setup(&mut s, 1000, 4);
        <_ as Searcher<Cont2, Score>>::set_objective(&mut s, SCORE.into(), Mode::Min);
        let first = bracket(&mut s, 0, loss);
        all_valid(&first);
        // 27 results at budget 1, 9 at 3, 3 at 9; 2-D → min points 3, so 5 are needed.
        assert_eq!(s.inner.algo.model_budget(3), Some(3));
        bracket(&mut s, 100, loss);
        // 6 results at budget 9 now.
        assert_eq!(s.inner.algo.model_budget(3), Some(9));
        let third = bracket(&mut s, 200, loss);
        all_valid(&third);
        let mean = |v: &[Cont2]| v.iter().map(|c| loss(c, 9)).sum::<f64>() / v.len() as f64;
        assert!(mean(&third) < mean(&first) * 0.8, "{} vs {}", mean(&third), mean(&first));
    }

    #[test]
    fn budgets_filter_and_round_trip() {
        let mut s = Bohb::<Cont2>::new().budgets(vec![3]);
        <_ as Searcher<Cont2, Score>>::setup(&mut s, 1000, 4);
        <_ as Searcher<Cont2, Score>>::set_objective(&mut s, SCORE.into(), Mode::Min);
        bracket(&mut s, 0, loss);
        assert_eq!(s.inner.algo.obs.keys().copied().collect::<Vec<_>>(), vec![3]);
        round_trip(|| Bohb::<Cond>::new().min_points_in_model(2), cond_loss);
    }
}
