//! Hyperparameter importance by PED-ANOVA (Watanabe, Bansal and Hutter, 2023): for each
//! hyperparameter, the Pearson divergence between its distribution among the best 10% of
//! trials and among all of them. A hyperparameter whose good values are spread like all
//! its values does not matter; one whose good values crowd in a corner does. Importances
//! are normalized to sum to 1.
//!
//! The boundary is [`importance`]: columns of hyperparameter values in, `(name, share)`
//! out, so another estimator (fANOVA) can take its place.

use crate::trial::Mode;

/// Values of one hyperparameter across trials.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    /// One value per trial: a number, or a category's index; NaN where the trial does not
    /// have it (an inactive enum field).
    pub values: Vec<f64>,
    pub kind: Kind,
}

/// How a hyperparameter's values are compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// A number, on a log scale when `log`.
    Numeric { log: bool },
    /// One of `n` categories.
    Categorical { n: usize },
}

/// The share of the top trials a divergence is measured on.
const TOP: f64 = 0.1;
/// Points of the grid the densities are compared on.
const GRID: usize = 64;

/// The importance of each column for `objective` (one value per trial, NaN where a trial
/// has none), best first. Empty when fewer than 4 trials have an objective.
pub(crate) fn importance(columns: &[Column], objective: &[f64], mode: Mode) -> Vec<(String, f64)> {
    let mut order: Vec<usize> =
        (0..objective.len()).filter(|&i| objective[i].is_finite()).collect();
    if order.len() < 4 {
        return Vec::new();
    }
    order.sort_by(|&a, &b| {
        let (x, y) = (objective[a], objective[b]);
        match mode {
            Mode::Min => x.total_cmp(&y),
            Mode::Max => y.total_cmp(&x),
        }
    });
    let k = ((order.len() as f64 * TOP).ceil() as usize).max(2);
    let top = &order[..k];
    let mut out: Vec<(String, f64)> = columns
        .iter()
        .map(|c| {
            let all: Vec<f64> =
                order.iter().map(|&i| c.values[i]).filter(|v| v.is_finite()).collect();
            let best: Vec<f64> =
                top.iter().map(|&i| c.values[i]).filter(|v| v.is_finite()).collect();
            (c.name.clone(), divergence(&all, &best, c.kind))
        })
        .collect();
    let sum: f64 = out.iter().map(|(_, v)| v).sum();
    for (_, v) in &mut out {
        *v = if sum > 0.0 { *v / sum } else { 0.0 };
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Pearson divergence of the density of `best` from that of `all`:
/// the integral of `(p_best / p_all - 1)^2 p_all`.
fn divergence(all: &[f64], best: &[f64], kind: Kind) -> f64 {
    if all.len() < 2 || best.len() < 2 {
        return 0.0;
    }
    match kind {
        Kind::Categorical { n } => {
            let n = n.max(1);
            let hist = |xs: &[f64]| {
                // Laplace smoothing keeps unseen categories from dividing by zero.
                let mut h = vec![1.0; n];
                for x in xs {
                    if let Some(slot) = h.get_mut(*x as usize) {
                        *slot += 1.0;
                    }
                }
                let total: f64 = h.iter().sum();
                h.into_iter().map(|c| c / total).collect::<Vec<f64>>()
            };
            let (pa, pb) = (hist(all), hist(best));
            pa.iter().zip(&pb).map(|(a, b)| (b / a - 1.0).powi(2) * a).sum()
        }
        Kind::Numeric { log } => {
            let t = |x: f64| if log { x.max(f64::MIN_POSITIVE).ln() } else { x };
            let all: Vec<f64> = all.iter().map(|x| t(*x)).collect();
            let best: Vec<f64> = best.iter().map(|x| t(*x)).collect();
            let (lo, hi) = all
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| (l.min(*x), h.max(*x)));
            if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
                return 0.0;
            }
            let scale = |xs: &[f64]| xs.iter().map(|x| (x - lo) / (hi - lo)).collect::<Vec<f64>>();
            let (all, best) = (scale(&all), scale(&best));
            let grid: Vec<f64> = (0..GRID).map(|g| (g as f64 + 0.5) / GRID as f64).collect();
            let (pa, pb) = (kde(&all, &grid), kde(&best, &grid));
            let dx = 1.0 / GRID as f64;
            pa.iter().zip(&pb).map(|(a, b)| (b / a - 1.0).powi(2) * a * dx).sum()
        }
    }
}

/// A Gaussian kernel density of `xs` (in `[0, 1]`) at `grid`, normalized on the grid;
/// Scott's bandwidth, at least 0.02.
fn kde(xs: &[f64], grid: &[f64]) -> Vec<f64> {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let h = (1.06 * sd * n.powf(-0.2)).max(0.02);
    let mut p: Vec<f64> = grid
        .iter()
        .map(|g| xs.iter().map(|x| (-0.5 * ((g - x) / h).powi(2)).exp()).sum::<f64>())
        .collect();
    let total: f64 = p.iter().sum::<f64>() / grid.len() as f64;
    for v in &mut p {
        *v = (*v / total).max(1e-12);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hyperparameter_that_drives_the_objective_ranks_first() {
        // loss = (lr - 0.3)^2; noise and the category do not matter.
        let n = 400;
        let mut state = 12345u64;
        let mut rand = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let lr: Vec<f64> = (0..n).map(|_| rand()).collect();
        let noise: Vec<f64> = (0..n).map(|_| rand()).collect();
        let cat: Vec<f64> = (0..n).map(|_| (rand() * 3.0).floor()).collect();
        let loss: Vec<f64> = lr.iter().map(|x| (x - 0.3).powi(2)).collect();
        let cols = [
            Column { name: "noise".into(), values: noise, kind: Kind::Numeric { log: false } },
            Column { name: "lr".into(), values: lr, kind: Kind::Numeric { log: false } },
            Column { name: "cat".into(), values: cat, kind: Kind::Categorical { n: 3 } },
        ];
        let imp = importance(&cols, &loss, Mode::Min);
        assert_eq!(imp[0].0, "lr", "{imp:?}");
        assert!(imp[0].1 > 0.8, "{imp:?}");
        let total: f64 = imp.iter().map(|(_, v)| v).sum();
        assert!((total - 1.0).abs() < 1e-9);
        // Maximizing the same loss puts the good values at the far ends: lr still leads.
        assert_eq!(importance(&cols, &loss, Mode::Max)[0].0, "lr");
    }

    #[test]
    fn a_categorical_driver_is_found_and_few_trials_give_nothing() {
        let cat: Vec<f64> = (0..90).map(|i| f64::from(i % 3)).collect();
        let x: Vec<f64> = (0..90).map(|i| f64::from(i * 7 % 90) / 90.0).collect();
        let y: Vec<f64> = cat.iter().map(|c| if *c == 1.0 { 0.0 } else { 1.0 }).collect();
        let cols = [
            Column { name: "x".into(), values: x, kind: Kind::Numeric { log: false } },
            Column { name: "cat".into(), values: cat, kind: Kind::Categorical { n: 3 } },
        ];
        assert_eq!(importance(&cols, &y, Mode::Min)[0].0, "cat");
        assert!(importance(&cols, &y[..3], Mode::Min).is_empty());
    }
}
