//! ASHA's brackets and rungs: where trials record their scores, single-objective (a
//! quantile of the scores) or multi-objective (non-dominated sorting at the rung).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Decision;
use crate::searcher::pareto;
use crate::state::nonfinite;

/// What a trial records at a rung.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Score {
    /// The metric, turned so that larger is better.
    Single(f64),
    /// Every objective as a loss, and the sum of the constraints' excesses.
    Multi(Vec<f64>, f64),
}

/// One rung: its milestone and what the trials that reached it recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rung {
    #[serde(with = "nonfinite")]
    pub(crate) milestone: f64,
    /// Single objective: the scores, sorted (larger is better).
    #[serde(with = "nonfinite", default, skip_serializing_if = "Vec::is_empty")]
    scores: Vec<f64>,
    /// Several objectives: every recorded trial's losses and violation.
    #[serde(with = "nonfinite", default, skip_serializing_if = "Vec::is_empty")]
    points: Vec<(Vec<f64>, f64)>,
    /// The trials (creation indices) that recorded a score here.
    trials: BTreeSet<u32>,
}

/// One bracket: rungs from the highest milestone to the lowest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bracket {
    pub(crate) rungs: Vec<Rung>,
    #[serde(with = "nonfinite")]
    reduction_factor: f64,
}

impl Bracket {
    pub(crate) fn new(grace: f64, max_t: f64, rf: f64, s: usize) -> Self {
        let n = ((max_t / grace).ln() / rf.ln() + 1e-9).floor() as i64 - s as i64 + 1;
        let rungs = (0..n.max(0) as usize)
            .rev()
            .map(|k| Rung {
                milestone: grace * rf.powi((k + s) as i32),
                scores: Vec::new(),
                points: Vec::new(),
                trials: BTreeSet::new(),
            })
            .collect();
        Self { rungs, reduction_factor: rf }
    }

    /// Whether `other` has the same rungs (a state saved with the same options).
    pub(crate) fn same_plan(&self, other: &Bracket) -> bool {
        self.reduction_factor == other.reduction_factor
            && self.rungs.len() == other.rungs.len()
            && self.rungs.iter().zip(&other.rungs).all(|(a, b)| a.milestone == b.milestone)
    }

    /// Records the score of a trial at the highest rung it passed and not yet recorded,
    /// and says whether it falls below that rung's cutoff.
    pub(crate) fn on_result(&mut self, trial: usize, time: f64, score: Score) -> Decision {
        let q = 1.0 - 1.0 / self.reduction_factor;
        let rf = self.reduction_factor;
        for rung in &mut self.rungs {
            if time < rung.milestone || rung.trials.contains(&(trial as u32)) {
                continue;
            }
            rung.trials.insert(trial as u32);
            let below = match score {
                Score::Single(s) => {
                    let below = percentile(&rung.scores, q).is_some_and(|cutoff| s < cutoff);
                    let at = rung.scores.partition_point(|x| *x < s);
                    rung.scores.insert(at, s);
                    below
                }
                Score::Multi(losses, violation) => {
                    rung.points.push((losses, violation));
                    !in_top(&rung.points, rung.points.len() - 1, rf)
                }
            };
            return if below { Decision::Stop } else { Decision::Continue };
        }
        Decision::Continue
    }
}

/// Whether point `me` is among the best `max(1, floor(n / rf))` of the `n` points, ordered
/// by front of the (constrained) non-dominated sorting, then by crowding distance within
/// the front (NSGA-II's order, as MO-ASHA of Schmucker et al. 2021 does at a rung).
pub(crate) fn in_top(points: &[(Vec<f64>, f64)], me: usize, rf: f64) -> bool {
    let n = points.len();
    let keep = ((n as f64 / rf).floor() as usize).max(1);
    let pts: Vec<&[f64]> = points.iter().map(|p| p.0.as_slice()).collect();
    let viol: Vec<f64> = points.iter().map(|p| p.1).collect();
    let fronts = pareto::fronts(&pts, &viol);
    let mine = fronts[me];
    let ahead = fronts.iter().filter(|f| **f < mine).count();
    if ahead >= keep {
        return false;
    }
    let front: Vec<usize> = (0..n).filter(|i| fronts[*i] == mine).collect();
    if ahead + front.len() <= keep {
        return true;
    }
    let crowd = pareto::crowding(&pts, &front);
    let my = front.iter().position(|i| *i == me).map_or(0.0, |p| crowd[p]);
    // Ties in crowding go to the earlier trial.
    let pos = front.iter().zip(&crowd).filter(|(i, c)| **c > my || (**c == my && **i < me)).count();
    ahead + pos < keep
}

/// numpy's default (linear) percentile of sorted values, `q` in `[0, 1]`.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_objective_rung_keeps_the_best_fronts() {
        let p = |a: f64, b: f64, v: f64| (vec![a, b], v);
        // Three non-dominated points and a dominated one; keep floor(4 / 2) = 2.
        let pts = vec![p(0.0, 4.0, 0.0), p(4.0, 0.0, 0.0), p(2.0, 2.0, 0.0), p(3.0, 3.0, 0.0)];
        assert!(!in_top(&pts, 3, 2.0), "dominated");
        // The extremes have infinite crowding distance; the middle one loses.
        assert!(in_top(&pts, 0, 2.0) && in_top(&pts, 1, 2.0));
        assert!(!in_top(&pts, 2, 2.0));
        // An infeasible point ranks after every feasible one.
        let inf = vec![p(0.0, 0.0, 1.0), p(5.0, 5.0, 0.0)];
        assert!(!in_top(&inf, 0, 2.0) && in_top(&inf, 1, 2.0));
        // The first point at a rung always goes on.
        assert!(in_top(&[p(9.0, 9.0, 3.0)], 0, 4.0));
    }

    #[test]
    fn bracket_records_each_trial_once_per_rung() {
        let mut b = Bracket::new(1.0, 9.0, 3.0, 0);
        assert_eq!(b.rungs.iter().map(|r| r.milestone).collect::<Vec<_>>(), vec![9.0, 3.0, 1.0]);
        let m = |a: f64| Score::Multi(vec![a, -a], 0.0);
        assert_eq!(b.on_result(0, 1.0, m(1.0)), Decision::Continue);
        // Trial 1 is dominated by... nothing: (2, -2) vs (1, -1) are non-dominated; keep
        // max(1, floor(2 / 3)) = 1, and both are extremes: the earlier trial wins.
        assert_eq!(b.on_result(1, 1.0, m(2.0)), Decision::Stop);
        assert_eq!(b.on_result(0, 2.0, m(0.0)), Decision::Continue, "already recorded");
    }
}
