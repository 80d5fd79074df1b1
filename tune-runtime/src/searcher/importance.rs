//! Hyperparameter importance by PED-ANOVA (Watanabe et al. 2023, Optuna's
//! `PedAnovaImportanceEvaluator`): how much the distribution of each dimension among the
//! best trials differs from its distribution among all trials.

use super::parzen::{Parzen, neighbour_kernels};
use super::unit::{Codec, Kind};

/// Grid points per continuous dimension.
const STEPS: usize = 50;

/// The importance of each dimension (summing to 1 when any is positive), from finished
/// trials given as unit-cube points and losses: the Pearson divergence between the 1-D
/// density of the dimension among the best `quantile` of the trials (at least 2) and among
/// all of them, each a Parzen estimator with Optuna's kernels, integrated over a grid of
/// 50 points (every option for a choice). A dimension is judged on the trials where it is
/// active; with fewer than 2 good ones it gets 0.
pub(crate) fn ped_anova(codec: &Codec, trials: &[(Vec<f64>, f64)], quantile: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..trials.len()).collect();
    order.sort_by(|a, b| trials[*a].1.total_cmp(&trials[*b].1));
    let n_top = ((quantile * trials.len() as f64).ceil() as usize).max(2).min(trials.len());
    let top: Vec<usize> = order[..n_top].to_vec();
    let raw: Vec<f64> = (0..codec.len())
        .map(|j| {
            let col = |idx: &mut dyn Iterator<Item = usize>| -> Vec<[f64; 1]> {
                idx.map(|i| [trials[i].0[j]]).filter(|p| p[0].is_finite()).collect()
            };
            let all = col(&mut (0..trials.len()));
            let good = col(&mut top.iter().copied());
            if good.len() < 2 || all.len() < 3 {
                return 0.0;
            }
            let kinds = [codec.kinds[j]];
            let fit = |pts: &[[f64; 1]]| {
                let refs: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
                Parzen::fit(
                    &kinds,
                    &refs,
                    neighbour_kernels(&kinds, &refs, 1.0),
                    &vec![1.0; refs.len()],
                    None,
                )
            };
            let (pg, pa) = (fit(&good), fit(&all));
            let grid: Vec<f64> = match kinds[0] {
                Kind::Cat(c) => (0..c).map(|o| o as f64).collect(),
                Kind::Cont => (0..STEPS).map(|k| (k as f64 + 0.5) / STEPS as f64).collect(),
            };
            let pa_v: Vec<f64> =
                grid.iter().map(|x| pa.log_pdf_with(&[*x], &mut Vec::new()).exp()).collect();
            let pg_v: Vec<f64> =
                grid.iter().map(|x| pg.log_pdf_with(&[*x], &mut Vec::new()).exp()).collect();
            let za: f64 = pa_v.iter().sum();
            let zg: f64 = pg_v.iter().sum();
            if za <= 0.0 || zg <= 0.0 {
                return 0.0;
            }
            // Pearson divergence of the good from the whole: Σ p_all (p_good/p_all − 1)².
            pa_v.iter()
                .zip(&pg_v)
                .map(|(a, g)| {
                    let (a, g) = (a / za, g / zg);
                    if a > 0.0 { a * (g / a - 1.0).powi(2) } else { 0.0 }
                })
                .sum()
        })
        .collect();
    let total: f64 = raw.iter().sum();
    if total > 0.0 { raw.iter().map(|r| r / total).collect() } else { raw }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::searcher::test_support::Mixed;
    use crate::space::Space;

    #[test]
    fn the_dimension_that_decides_the_loss_ranks_first() {
        // Mixed: x (float), n (int), c (choice). The loss depends on c strongly, on x a
        // little, not on n.
        let codec = Codec::new(<Mixed as Space>::dims());
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let trials: Vec<(Vec<f64>, f64)> = (0..300)
            .map(|_| {
                let m = Mixed::sample(&mut rng);
                let noise: f64 = rng.random::<f64>() * 0.01;
                let loss = if m.c == 2 { 0.0 } else { 1.0 } + 0.1 * (m.x - 0.5).abs() + noise;
                (codec.encode_unit(&m.encode()), loss)
            })
            .collect();
        let imp = ped_anova(&codec, &trials, 0.1);
        assert!((imp.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{imp:?}");
        assert!(imp[2] > imp[0] && imp[0] > imp[1], "{imp:?}");
    }
}
