//! NSGA-II (Deb et al. 2002) for several objectives and constraints, generation by
//! generation but without waiting: as Optuna's `NSGAIISampler`.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::core::{Algo, Ctx, Obs, Proposal};
use super::macros::searcher_type;
use super::pareto;
use crate::space::Space;
use crate::state::StateError;

/// The NSGA-II algorithm; see [`Nsga2`].
#[derive(Debug, Clone)]
pub(crate) struct NsgaAlgo {
    population: usize,
    crossover_prob: f64,
    swap_prob: f64,
    mutation_prob: Option<f64>,
    s: NsgaState,
}

/// What [`NsgaAlgo`] saves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct NsgaState {
    /// The generation being suggested and how many of its trials are out.
    generation: u32,
    in_generation: usize,
    /// The generation of each suggested, unfinished trial.
    trial_generation: BTreeMap<u32, u32>,
    /// The generation of each trial told with a result, in the order they were told (the
    /// order of the finished trials the algorithm sees, after any warm-start trials).
    told: Vec<u32>,
    /// The parents of `parents_of` (indices of finished trials).
    parents: Vec<usize>,
    parents_of: u32,
}

impl NsgaAlgo {
    /// The elite of `candidates`: whole fronts of the constrained non-dominated sorting,
    /// the last one cut by crowding distance; `population` of them at most.
    fn elite(&self, done: &[Obs], candidates: &[usize]) -> Vec<usize> {
        let pts: Vec<&[f64]> = candidates.iter().map(|i| done[*i].losses.as_slice()).collect();
        let viol: Vec<f64> = candidates.iter().map(|i| done[*i].violation()).collect();
        let fronts = pareto::fronts(&pts, &viol);
        let mut out = Vec::with_capacity(self.population);
        let mut r = 0;
        while out.len() < self.population && out.len() < candidates.len() {
            let front: Vec<usize> = (0..candidates.len()).filter(|k| fronts[*k] == r).collect();
            r += 1;
            if out.len() + front.len() <= self.population {
                out.extend(front.iter().map(|k| candidates[*k]));
                continue;
            }
            let crowd = pareto::crowding(&pts, &front);
            let mut order: Vec<usize> = (0..front.len()).collect();
            order.sort_by(|a, b| crowd[*b].total_cmp(&crowd[*a]).then(a.cmp(b)));
            let need = self.population - out.len();
            out.extend(order[..need].iter().map(|p| candidates[front[*p]]));
        }
        out
    }

    /// Binary tournament: of two random parents, the one in the better front, then the
    /// less crowded.
    fn tournament(&self, ranks: &[(usize, f64)], rng: &mut ChaCha8Rng) -> usize {
        let a = rng.random_range(0..ranks.len());
        let b = rng.random_range(0..ranks.len());
        let better = |x: usize, y: usize| {
            ranks[x].0 < ranks[y].0 || (ranks[x].0 == ranks[y].0 && ranks[x].1 > ranks[y].1)
        };
        if better(b, a) { b } else { a }
    }
}

impl Algo for NsgaAlgo {
    const NAME: &'static str = "Nsga2";
    type State = NsgaState;

    fn supports(&self, _goals: usize, _constraints: usize) -> Result<(), String> {
        Ok(())
    }

    fn setup(&mut self, _codec: &super::unit::Codec, _n: usize, _rng: &mut ChaCha8Rng) {
        self.s = NsgaState::default();
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        if self.s.in_generation >= self.population {
            self.s.generation += 1;
            self.s.in_generation = 0;
        }
        let g = self.s.generation;
        self.s.in_generation += 1;
        self.s.trial_generation.insert(ctx.trial, g);
        let warm = ctx.done.len() - self.s.told.len();
        if g > 0 && self.s.parents_of != g {
            // The previous parents and the finished trials of the previous generation (and
            // the warm-start trials, for the first selection).
            let mut cand: Vec<usize> = self.s.parents.clone();
            cand.extend(
                self.s.told.iter().enumerate().filter(|(_, t)| **t + 1 == g).map(|(k, _)| warm + k),
            );
            if g == 1 {
                cand.extend(0..warm);
            }
            cand.sort_unstable();
            cand.dedup();
            self.s.parents = self.elite(ctx.done, &cand);
            self.s.parents_of = g;
        }
        if g == 0 || self.s.parents.len() < 2 {
            return Proposal::Prior;
        }
        let parents = &self.s.parents;
        let pts: Vec<&[f64]> = parents.iter().map(|i| ctx.done[*i].losses.as_slice()).collect();
        let viol: Vec<f64> = parents.iter().map(|i| ctx.done[*i].violation()).collect();
        let fronts = pareto::fronts(&pts, &viol);
        let mut ranks: Vec<(usize, f64)> = fronts.iter().map(|f| (*f, 0.0)).collect();
        for r in 0..=fronts.iter().copied().max().unwrap_or(0) {
            let front: Vec<usize> = (0..parents.len()).filter(|k| fronts[*k] == r).collect();
            for (k, c) in front.iter().zip(pareto::crowding(&pts, &front)) {
                ranks[*k].1 = c;
            }
        }
        let a = self.tournament(&ranks, rng);
        let mut b = self.tournament(&ranks, rng);
        for _ in 0..8 {
            if b != a {
                break;
            }
            b = self.tournament(&ranks, rng);
        }
        let (pa, pb) = (&ctx.done[parents[a]].point, &ctx.done[parents[b]].point);
        let cross = rng.random::<f64>() < self.crossover_prob;
        let d = ctx.codec.len();
        let mutation = self.mutation_prob.unwrap_or(1.0 / d.max(1) as f64);
        let mut child = vec![f64::NAN; d];
        for j in 0..d {
            if !ctx.codec.active(&child, j) {
                continue;
            }
            // Uniform crossover, then mutation by a draw from the prior.
            let from_b = cross && rng.random::<f64>() < self.swap_prob;
            let v = if from_b { pb[j] } else { pa[j] };
            let v = if !v.is_finite() || rng.random::<f64>() < mutation {
                ctx.codec.sample_dim(j, rng)
            } else {
                v
            };
            child[j] = v;
        }
        Proposal::Point(child)
    }

    fn tell(&mut self, trial: u32, obs: Option<&Obs>) {
        let g = self.s.trial_generation.remove(&trial).unwrap_or(self.s.generation);
        if obs.is_some() {
            self.s.told.push(g);
        }
    }

    fn save(&self) -> NsgaState {
        self.s.clone()
    }

    fn restore(&mut self, state: NsgaState) -> Result<(), StateError> {
        self.s = state;
        Ok(())
    }
}

searcher_type! {
    /// NSGA-II (Deb et al. 2002) for several objectives and constraints, as Optuna's
    /// `NSGAIISampler`: each generation of `population_size` trials (default 50) is bred
    /// from parents selected from the previous generation and the previous parents by
    /// non-dominated sorting and crowding distance (constrained domination: feasible trials
    /// first, infeasible ones by how much they miss). A child takes each dimension from one
    /// of two tournament winners (uniform crossover with probability `crossover_prob`,
    /// default 0.9, swapping each dimension with probability 0.5), and each dimension is
    /// redrawn from the prior with probability `mutation_prob` (default `1 / dimensions`).
    /// The first generation is drawn from the prior. Trials of a generation are suggested as
    /// the runner asks; parents are chosen from the trials finished by then, so no worker
    /// waits for a generation to finish.
    ///
    /// Every kind of dimension works: options and conditional fields are inherited like
    /// numbers, and a field a child's variant needs but its parent lacks is drawn from the
    /// prior.
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1), layers: u8 = choice([1, 2, 3]) } }
    /// let nsga = tune_runtime::searcher::Nsga2::<Cfg>::new().population_size(40);
    /// ```
    Nsga2, NsgaAlgo
}

impl<C: Space> Nsga2<C> {
    /// NSGA-II with Optuna's defaults: population 50, crossover probability 0.9, swapping
    /// probability 0.5, mutation probability `1 / dimensions`.
    pub fn new() -> Self {
        let algo = NsgaAlgo {
            population: 50,
            crossover_prob: 0.9,
            swap_prob: 0.5,
            mutation_prob: None,
            s: NsgaState::default(),
        };
        Self { inner: super::core::ModelSearcher::new(algo) }
    }

    /// Trials per generation (at least 2).
    pub fn population_size(mut self, n: usize) -> Self {
        self.inner.algo.population = n.max(2);
        self
    }

    /// Probability that a child mixes two parents (else it copies one), in `[0, 1]`.
    pub fn crossover_prob(mut self, p: f64) -> Self {
        self.inner.algo.crossover_prob = p.clamp(0.0, 1.0);
        self
    }

    /// Probability of redrawing each dimension of a child from the prior, in `[0, 1]`.
    pub fn mutation_prob(mut self, p: f64) -> Self {
        self.inner.algo.mutation_prob = Some(p.clamp(0.0, 1.0));
        self
    }
}

impl<C: Space> Default for Nsga2<C> {
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
    fn elite_keeps_whole_fronts_then_the_least_crowded() {
        let algo = Nsga2::<Cont2>::new().population_size(3).inner.algo;
        let o = |a: f64, b: f64, v: f64| Obs {
            point: vec![0.5, 0.5],
            losses: vec![a, b],
            cons: vec![v],
        };
        let done = vec![
            o(0.0, 4.0, 0.0),
            o(1.0, 3.0, 0.0),
            o(1.1, 2.9, 0.0),
            o(4.0, 0.0, 0.0),
            o(0.0, 0.0, 1.0),
            o(5.0, 5.0, 0.0),
        ];
        // Front 0 holds 0, 1, 2, 3 (the infeasible 4 comes last); the two extremes stay and
        // of 1 and 2 the one with more room around it.
        let e = algo.elite(&done, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(e.len(), 3);
        assert!(e.contains(&0) && e.contains(&3) && !e.contains(&4), "{e:?}");
    }

    #[test]
    fn improves_on_two_objectives_is_seeded_and_round_trips() {
        // Minimize (a, b) distance to two points: the front joins them.
        fn two(c: &Cont2) -> f64 {
            ((c.a - 1.0).powi(2) + (c.b - 2.0).powi(2)).sqrt()
        }
        let make = || Nsga2::<Cont2>::new().population_size(10).mutation_prob(0.1);
        let configs = drive_multi(&mut make(), 120, 2, 3, |c| {
            vec![two(c), ((c.a - 6.0).powi(2) + (c.b - 9.0).powi(2)).sqrt()]
        });
        all_valid(&configs);
        // The last generation lies closer to the segment between the two points (uniform
        // crossover, the default, recombines coordinates, so it converges slowly here).
        let off = |c: &Cont2| {
            let (dx, dy) = (5.0, 7.0);
            let t = (((c.a - 1.0) * dx + (c.b - 2.0) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
            ((c.a - 1.0 - t * dx).powi(2) + (c.b - 2.0 - t * dy).powi(2)).sqrt()
        };
        let mean = |v: &[Cont2]| v.iter().map(off).sum::<f64>() / v.len() as f64;
        assert!(
            mean(&configs[110..]) < 0.6 * mean(&configs[..10]),
            "{} vs {}",
            mean(&configs[110..]),
            mean(&configs[..10])
        );
        let again = drive_multi(&mut make(), 120, 2, 3, |c| {
            vec![two(c), ((c.a - 6.0).powi(2) + (c.b - 9.0).powi(2)).sqrt()]
        });
        assert_eq!(configs, again);
        let c = drive(&mut Nsga2::<Cond>::new().population_size(6), 40, 3, 1, cond_loss);
        all_valid(&c);
        round_trip(|| Nsga2::<Cond>::new().population_size(4), cond_loss);
    }
}
