//! CMA-ES (Hansen's covariance matrix adaptation evolution strategy) with ask/tell.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::UnsupportedSpace;
use super::core::{Algo, Ctx, Obs, Proposal};
use super::macros::searcher_type;
use super::unit::Codec;
use crate::space::Space;
use crate::state::StateError;

/// The state of the strategy: (μ/μ_w, λ)-CMA-ES with rank-one and rank-μ updates and
/// cumulative step-size adaptation, following Hansen's tutorial (arXiv:1604.00772).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cma {
    n: usize,
    pub(crate) lambda: usize,
    weights: Vec<f64>,
    mueff: f64,
    cs: f64,
    ds: f64,
    cc: f64,
    c1: f64,
    cmu: f64,
    chin: f64,
    pub(crate) mean: Vec<f64>,
    pub(crate) sigma: f64,
    pc: Vec<f64>,
    ps: Vec<f64>,
    /// Covariance, its eigenvectors (columns) and the square roots of its eigenvalues.
    c: Vec<f64>,
    b: Vec<f64>,
    d: Vec<f64>,
    pub(crate) generation: u64,
}

impl Cma {
    pub(crate) fn new(mean: Vec<f64>, sigma: f64, lambda: Option<usize>, active: bool) -> Self {
        let n = mean.len().max(1);
        let nf = n as f64;
        let lambda = lambda.unwrap_or(4 + (3.0 * nf.ln()).floor() as usize).max(2);
        // Weights for all λ ranks (Hansen 2016, "active" CMA): the better half positive
        // (they move the mean), the worse half negative (they shrink the covariance along
        // the directions of bad steps).
        let raw: Vec<f64> = (0..lambda)
            .map(|i| ((lambda as f64 + 1.0) / 2.0).ln() - ((i + 1) as f64).ln())
            .collect();
        let pos: f64 = raw.iter().filter(|w| **w > 0.0).sum();
        let pos2: f64 = raw.iter().filter(|w| **w > 0.0).map(|w| w * w).sum();
        let neg: f64 = raw.iter().filter(|w| **w < 0.0).map(|w| -w).sum();
        let neg2: f64 = raw.iter().filter(|w| **w < 0.0).map(|w| w * w).sum();
        let mueff = pos * pos / pos2;
        let cs = (mueff + 2.0) / (nf + mueff + 5.0);
        let ds = 1.0 + 2.0 * (((mueff - 1.0) / (nf + 1.0)).sqrt() - 1.0).max(0.0) + cs;
        let cc = (4.0 + mueff / nf) / (nf + 4.0 + 2.0 * mueff / nf);
        let c1 = 2.0 / ((nf + 1.3).powi(2) + mueff);
        let cmu = (1.0 - c1).min(2.0 * (mueff - 2.0 + 1.0 / mueff) / ((nf + 2.0).powi(2) + mueff));
        let chin = nf.sqrt() * (1.0 - 1.0 / (4.0 * nf) + 1.0 / (21.0 * nf * nf));
        let weights: Vec<f64> = if active {
            let mueff_neg = if neg2 > 0.0 { neg * neg / neg2 } else { 0.0 };
            let alpha_mu = 1.0 + c1 / cmu;
            let alpha_mueff = 1.0 + 2.0 * mueff_neg / (mueff + 2.0);
            let alpha_posdef = (1.0 - c1 - cmu) / (nf * cmu);
            let scale = alpha_mu.min(alpha_mueff).min(alpha_posdef).max(0.0) / neg.max(1e-300);
            raw.iter().map(|w| if *w >= 0.0 { w / pos } else { w * scale }).collect()
        } else {
            raw.iter().filter(|w| **w > 0.0).map(|w| w / pos).collect()
        };
        let mut eye = vec![0.0; n * n];
        for i in 0..n {
            eye[i * n + i] = 1.0;
        }
        Self {
            n,
            lambda,
            weights,
            mueff,
            cs,
            ds,
            cc,
            c1,
            cmu,
            chin,
            mean,
            sigma,
            pc: vec![0.0; n],
            ps: vec![0.0; n],
            c: eye.clone(),
            b: eye,
            d: vec![1.0; n],
            generation: 0,
        }
    }

    /// `m + σ B D z` with `z` standard normal.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let n = self.n;
        let z: Vec<f64> = (0..n).map(|_| rng.sample(rand_distr::StandardNormal)).collect();
        (0..n)
            .map(|i| {
                let y: f64 = (0..n).map(|j| self.b[i * n + j] * self.d[j] * z[j]).sum();
                self.mean[i] + self.sigma * y
            })
            .collect()
    }

    /// One generation's update from its `lambda` points and losses.
    pub(crate) fn tell(&mut self, pop: &[(Vec<f64>, f64)]) {
        let n = self.n;
        let mut order: Vec<usize> = (0..pop.len()).collect();
        order.sort_by(|a, b| pop[*a].1.total_cmp(&pop[*b].1));
        let ys: Vec<Vec<f64>> = order
            .iter()
            .take(self.weights.len())
            .map(|&i| (0..n).map(|k| (pop[i].0[k] - self.mean[k]) / self.sigma).collect())
            .collect();
        // The mean moves by the positive weights only.
        let yw: Vec<f64> = (0..n)
            .map(|k| ys.iter().zip(&self.weights).map(|(y, w)| w.max(0.0) * y[k]).sum())
            .collect();
        // A negative weight is rescaled by n / |C^{-1/2} y|² (with the covariance before
        // this update), so that the covariance stays positive definite.
        let cov_weights: Vec<f64> = ys
            .iter()
            .zip(&self.weights)
            .map(|(y, &w)| {
                if w >= 0.0 {
                    return w;
                }
                let norm2: f64 = (0..n)
                    .map(|j| {
                        let v: f64 = (0..n).map(|i| self.b[i * n + j] * y[i]).sum::<f64>();
                        (v / self.d[j]).powi(2)
                    })
                    .sum();
                w * n as f64 / norm2.max(1e-20)
            })
            .collect();
        let wsum: f64 = self.weights.iter().take(ys.len()).sum();
        for (m, y) in self.mean.iter_mut().zip(&yw) {
            *m += self.sigma * y;
        }
        // C^{-1/2} yw = B D^{-1} Bᵀ yw.
        let bt_yw: Vec<f64> = (0..n)
            .map(|j| (0..n).map(|i| self.b[i * n + j] * yw[i]).sum::<f64>() / self.d[j])
            .collect();
        let inv_sqrt: Vec<f64> =
            (0..n).map(|i| (0..n).map(|j| self.b[i * n + j] * bt_yw[j]).sum()).collect();
        let a = (self.cs * (2.0 - self.cs) * self.mueff).sqrt();
        for (p, v) in self.ps.iter_mut().zip(&inv_sqrt) {
            *p = (1.0 - self.cs) * *p + a * v;
        }
        let ps_norm = self.ps.iter().map(|v| v * v).sum::<f64>().sqrt();
        self.generation += 1;
        let decay = 1.0 - (1.0 - self.cs).powf(2.0 * self.generation as f64);
        let hsig = ps_norm / decay.sqrt() / self.chin < 1.4 + 2.0 / (n as f64 + 1.0);
        let hs = if hsig { 1.0 } else { 0.0 };
        let ac = (self.cc * (2.0 - self.cc) * self.mueff).sqrt();
        for (p, y) in self.pc.iter_mut().zip(&yw) {
            *p = (1.0 - self.cc) * *p + hs * ac * y;
        }
        let old =
            1.0 - self.c1 - self.cmu * wsum + (1.0 - hs) * self.c1 * self.cc * (2.0 - self.cc);
        for i in 0..n {
            for j in 0..n {
                let rank_mu: f64 = ys.iter().zip(&cov_weights).map(|(y, w)| w * y[i] * y[j]).sum();
                self.c[i * n + j] = old * self.c[i * n + j]
                    + self.c1 * self.pc[i] * self.pc[j]
                    + self.cmu * rank_mu;
            }
        }
        self.sigma *= ((self.cs / self.ds) * (ps_norm / self.chin - 1.0)).exp();
        self.sigma = self.sigma.clamp(1e-12, 1e3);
        self.decompose();
    }

    fn decompose(&mut self) {
        let n = self.n;
        let c = DMatrix::from_fn(n, n, |i, j| 0.5 * (self.c[i * n + j] + self.c[j * n + i]));
        let eig = SymmetricEigen::new(c);
        let vals: DVector<f64> = eig.eigenvalues;
        for i in 0..n {
            for j in 0..n {
                self.b[i * n + j] = eig.eigenvectors[(i, j)];
            }
        }
        self.d = vals.iter().map(|v| v.max(1e-20).sqrt()).collect();
    }
}

/// Whether the strategy uses negative weights (active CMA).
const ACTIVE: bool = true;

/// The CMA-ES algorithm over the unit cube; see [`CmaEs`].
#[derive(Debug, Clone)]
pub(crate) struct CmaAlgo {
    sigma0: f64,
    popsize: Option<usize>,
    pub(crate) cma: Option<Cma>,
    /// This generation: trial, point, loss once told.
    asked: Vec<(u32, Vec<f64>, Option<f64>)>,
}

/// What [`CmaAlgo`] saves: the strategy and the current generation's asked points.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CmaState {
    cma: Option<Cma>,
    asked: Vec<(u32, Vec<f64>, Option<f64>)>,
}

impl Algo for CmaAlgo {
    const NAME: &'static str = "CmaEs";
    type State = CmaState;

    fn setup(&mut self, codec: &Codec, _num_samples: usize, _rng: &mut ChaCha8Rng) {
        self.cma = Some(Cma::new(vec![0.5; codec.len()], self.sigma0, self.popsize, ACTIVE));
        self.asked.clear();
    }

    fn propose(&mut self, ctx: &Ctx<'_>, rng: &mut ChaCha8Rng) -> Proposal {
        let Some(cma) = &self.cma else { return Proposal::Prior };
        if self.asked.len() >= cma.lambda {
            // Ask/tell: the next generation needs this one's results.
            return Proposal::Wait;
        }
        let inside = |x: &[f64]| x.iter().all(|v| (0.0..=1.0).contains(v));
        let mut x = cma.sample(rng);
        for _ in 0..20 {
            if inside(&x) {
                break;
            }
            x = cma.sample(rng);
        }
        let x: Vec<f64> = x.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        self.asked.push((ctx.trial, x.clone(), None));
        Proposal::Point(x)
    }

    fn tell(&mut self, trial: u32, obs: Option<&Obs>) {
        let loss = obs.map(Obs::loss);
        let Some(e) = self.asked.iter_mut().find(|e| e.0 == trial) else { return };
        // A failed trial ranks last.
        e.2 = Some(loss.unwrap_or(f64::MAX));
        let Some(cma) = &mut self.cma else { return };
        if self.asked.len() == cma.lambda && self.asked.iter().all(|e| e.2.is_some()) {
            let pop: Vec<(Vec<f64>, f64)> =
                self.asked.drain(..).map(|(_, x, l)| (x, l.unwrap_or(f64::MAX))).collect();
            cma.tell(&pop);
        }
    }

    fn save(&self) -> CmaState {
        CmaState { cma: self.cma.clone(), asked: self.asked.clone() }
    }

    fn restore(&mut self, state: CmaState) -> Result<(), StateError> {
        if let (Some(mine), Some(saved)) = (&self.cma, &state.cma) {
            if mine.n != saved.n || mine.lambda != saved.lambda {
                return Err(crate::state::mismatch(
                    "CmaEs",
                    format!(
                        "the state has {} dimensions and population {}, this searcher {} and {}",
                        saved.n, saved.lambda, mine.n, mine.lambda
                    ),
                ));
            }
        }
        self.cma = state.cma;
        self.asked = state.asked;
        Ok(())
    }
}

searcher_type! {
    /// CMA-ES with ask/tell, for continuous spaces (floats, normal priors and integers,
    /// which are rounded; no categorical or conditional dimension).
    ///
    /// The strategy runs in the unit cube (log-scaled domains in log space) from its
    /// centre with step size `sigma0` (default 1/6, as Optuna). Each generation of `popsize`
    /// configs (default `4 + ⌊3 ln n⌋`) is suggested as trials ask for them; once all
    /// are suggested the searcher answers [`Suggestion::NotNow`](crate::searcher::Suggestion) until
    /// their results are in, then updates the mean, step size and covariance. A failed
    /// trial ranks last. Samples outside the cube are redrawn (then clipped).
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1), wd: f64 = uniform(0.0, 0.1) } }
    /// let cma = tune_runtime::searcher::CmaEs::<Cfg>::new()?.sigma0(0.2);
    /// # Ok::<(), tune_runtime::searcher::UnsupportedSpace>(())
    /// ```
    CmaEs, CmaAlgo
}

impl<C: Space> CmaEs<C> {
    /// CMA-ES over `C`, or an error naming the first categorical or conditional dimension.
    pub fn new() -> Result<Self, UnsupportedSpace> {
        let codec = Codec::new(C::dims());
        if let Some(d) = codec.all_continuous() {
            return Err(UnsupportedSpace {
                searcher: "CmaEs",
                dim: d.name.clone(),
                reason: if d.condition.is_some() {
                    "it belongs to an enum variant, and CMA-ES needs every dimension in every \
                     config; use Tpe or GpBo for conditional spaces"
                        .into()
                } else {
                    "it is categorical (choice, grid or an enum), and CMA-ES needs ordered \
                     values; use Tpe or GpBo, or make it a numeric range"
                        .into()
                },
            });
        }
        let algo = CmaAlgo { sigma0: 1.0 / 6.0, popsize: None, cma: None, asked: Vec::new() };
        Ok(Self { inner: super::core::ModelSearcher::new(algo) })
    }

    /// Initial step size in the unit cube (default 1/6, Optuna's: a sixth of the range).
    pub fn sigma0(mut self, sigma: f64) -> Self {
        if sigma > 0.0 {
            self.inner.algo.sigma0 = sigma;
        }
        self
    }

    /// Population size per generation (default `4 + ⌊3 ln n⌋`, at least 2).
    pub fn popsize(mut self, lambda: usize) -> Self {
        self.inner.algo.popsize = Some(lambda.max(2));
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::searcher::test_support::*;
    use rand::SeedableRng;

    fn sphere(x: &[f64]) -> f64 {
        x.iter().map(|v| (v - 0.3).powi(2)).sum()
    }

    #[test]
    fn first_update_recombines_the_best_half() {
        let mut cma = Cma::new(vec![0.5, 0.5], 0.2, Some(4), true);
        let pop = vec![
            (vec![0.1, 0.5], 3.0),
            (vec![0.6, 0.4], 1.0),
            (vec![0.9, 0.9], 4.0),
            (vec![0.3, 0.3], 2.0),
        ];
        let w = cma.weights.clone();
        assert_eq!(w.len(), 4, "a weight per rank");
        assert!((w[0] + w[1] - 1.0).abs() < 1e-12 && w[0] > w[1] && w[1] > 0.0);
        assert!(w[3] < w[2] && w[2] < 0.0, "the worse half negative: {w:?}");
        cma.tell(&pop);
        // m' = w0 x_best + w1 x_second (learning rate 1).
        assert!((cma.mean[0] - (w[0] * 0.6 + w[1] * 0.3)).abs() < 1e-12);
        assert!((cma.mean[1] - (w[0] * 0.4 + w[1] * 0.3)).abs() < 1e-12);
        assert_eq!(cma.generation, 1);
        // The covariance stays symmetric positive definite.
        assert!(cma.d.iter().all(|d| *d > 0.0));
    }

    #[test]
    fn three_updates_match_the_cmaes_library() {
        // The same fixed populations told to `cmaes.CMA(mean=[0.5]*6, sigma=1/6)` (the
        // library behind Optuna's CmaEsSampler, version 0.13.1) give these figures.
        let n = 6;
        let mut cma = Cma::new(vec![0.5; n], 1.0 / 6.0, None, true);
        assert_eq!(cma.lambda, 9);
        let w = [0.493_738_377_484_340_9, 0.281_096_832_480_643_3, -0.745_069_862_150_622];
        for (a, b) in [cma.weights[0], cma.weights[1], cma.weights[8]].iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "{:?}", cma.weights);
        }
        assert!((cma.mueff - 2.840_610_429_717_053_4).abs() < 1e-12);
        assert!((cma.cmu - 0.035_686_311_996_752_1).abs() < 1e-12);
        for g in 0..3 {
            let pop: Vec<(Vec<f64>, f64)> = (0..cma.lambda)
                .map(|k| {
                    let x: Vec<f64> = (0..n)
                        .map(|i| cma.mean[i] + cma.sigma * ((k * 7 + i * 3 + g * 11) as f64).sin())
                        .collect();
                    let f = x.iter().enumerate().map(|(i, v)| (v - 0.1 * i as f64).powi(2)).sum();
                    (x, f)
                })
                .collect();
            cma.tell(&pop);
        }
        let mean = [0.383_581_290_297_729_6, 0.591_146_649_894_308, 0.435_949_710_731_005];
        for (a, b) in cma.mean.iter().zip(mean) {
            assert!((a - b).abs() < 1e-9, "{:?}", cma.mean);
        }
        assert!((cma.sigma - 0.102_510_041_043_218_77).abs() < 1e-9, "{}", cma.sigma);
        // The library adds 1e-8 to a norm in the negative weights: agreement to ~1e-9.
        let c = [
            (0, 0.894_829_473_425_613_1),
            (1, 0.113_033_230_178_266_08),
            (35, 0.897_796_093_119_750_5),
        ];
        for (k, want) in c {
            assert!((cma.c[k] - want).abs() < 1e-8, "C[{k}] {} vs {want}", cma.c[k]);
        }
    }

    #[test]
    fn forty_updates_with_clipped_points_match_the_cmaes_library() {
        // Points clipped to the cube, a bumpy function, 40 generations (the step size
        // shrinks 60-fold). The same populations told to `cmaes.CMA` 0.13.1 give these
        // figures.
        let n = 6;
        let mut cma = Cma::new(vec![0.5; n], 1.0 / 6.0, None, true);
        for g in 0..40 {
            let pop: Vec<(Vec<f64>, f64)> = (0..cma.lambda)
                .map(|k| {
                    let x: Vec<f64> = (0..n)
                        .map(|i| {
                            let t = (k as f64) * 7.3 + (i as f64) * 3.1 + (g as f64) * 11.7;
                            (cma.mean[i] + cma.sigma * 2.5 * t.sin()).clamp(0.0, 1.0)
                        })
                        .collect();
                    let f = x
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (v - 0.15 * i as f64).powi(2))
                        .sum::<f64>()
                        + 0.3 * (9.0 * x[0]).sin();
                    (x, f)
                })
                .collect();
            cma.tell(&pop);
        }
        assert!((cma.sigma - 0.002_775_797_891).abs() < 1e-9, "{}", cma.sigma);
        assert!((cma.mean[0] - 0.501_995_103_219).abs() < 1e-9, "{:?}", cma.mean);
        assert!((cma.mean[3] - 0.543_282_816_882).abs() < 1e-9, "{:?}", cma.mean);
        assert!((cma.c[7] - 0.924_292_080_279).abs() < 1e-9, "{}", cma.c[7]);
    }

    #[test]
    fn negative_weights_shrink_the_covariance_along_the_worst_step() {
        let pop = vec![
            (vec![0.1, 0.5], 3.0),
            (vec![0.6, 0.4], 1.0),
            (vec![0.9, 0.9], 4.0),
            (vec![0.3, 0.3], 2.0),
        ];
        // The worst point lies along (1, 1) from the mean.
        let along = |cma: &Cma| {
            let c = &cma.c;
            0.5 * (c[0] + c[1] + c[2] + c[3])
        };
        let (mut active, mut passive) = (
            Cma::new(vec![0.5; 2], 0.2, Some(4), true),
            Cma::new(vec![0.5; 2], 0.2, Some(4), false),
        );
        assert_eq!(passive.weights.len(), 2);
        active.tell(&pop);
        passive.tell(&pop);
        assert_eq!(active.mean, passive.mean, "the mean ignores the negative weights");
        assert!(along(&active) < along(&passive), "{} vs {}", along(&active), along(&passive));
        assert!(active.d.iter().all(|d| *d > 0.0));
    }

    #[test]
    fn converges_on_a_quadratic() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut cma = Cma::new(vec![0.8; 5], 0.3, None, true);
        for _ in 0..150 {
            let pop: Vec<(Vec<f64>, f64)> = (0..cma.lambda)
                .map(|_| {
                    let x = cma.sample(&mut rng);
                    let f = sphere(&x);
                    (x, f)
                })
                .collect();
            cma.tell(&pop);
        }
        assert!(sphere(&cma.mean) < 1e-8, "{:?}", cma.mean);
        assert!(cma.sigma < 1e-3);
    }

    #[test]
    fn rejects_categorical_and_conditional_spaces() {
        let e = CmaEs::<Mixed>::new().unwrap_err();
        assert_eq!(e.dim, "c");
        assert!(e.to_string().contains("cannot search dimension `c`"), "{e}");
        let e = CmaEs::<Cond>::new().unwrap_err();
        assert!(e.to_string().contains("CmaEs cannot search"), "{e}");
    }

    #[test]
    fn ask_tell_through_the_searcher() {
        let mut s = CmaEs::<Cont2>::new().unwrap();
        // Concurrency larger than the population: the searcher waits for each generation.
        let configs =
            drive(&mut s, 120, 10, 3, |c: &Cont2| (c.a - 1.0).powi(2) + (c.b - 2.0).powi(2));
        assert_eq!(configs.len(), 120);
        all_valid(&configs);
        let last = &configs[110..];
        assert!(
            last.iter().all(|c| (c.a - 1.0).abs() < 1.0 && (c.b - 2.0).abs() < 1.0),
            "{last:?}"
        );
        round_trip(|| CmaEs::<Cont2>::new().unwrap(), |c: &Cont2| c.a * c.a + c.b);
    }
}
