//! Pareto dominance, non-dominated sorting, crowding distance and hypervolume, for
//! losses (every objective minimized). Pure functions shared by the multi-objective
//! searchers, schedulers and the analysis.

/// Whether `a` dominates `b`: no worse in every objective and better in one.
pub(crate) fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// Whether `a` dominates `b` under constraints (Deb's rule): a feasible point (violation
/// 0) dominates an infeasible one; of two infeasible points the smaller violation wins;
/// two feasible points compare by [`dominates`].
pub(crate) fn constrained_dominates(a: &[f64], va: f64, b: &[f64], vb: f64) -> bool {
    match (va > 0.0, vb > 0.0) {
        (false, true) => true,
        (true, false) => false,
        (true, true) => va < vb,
        (false, false) => dominates(a, b),
    }
}

/// The front index of every point (0: non-dominated, 1: non-dominated once front 0 is
/// removed, ...), with `violations` (one per point, 0 for feasible) taken into account by
/// [`constrained_dominates`]. O(k n²) for n points of k objectives.
pub(crate) fn fronts(points: &[&[f64]], violations: &[f64]) -> Vec<usize> {
    let n = points.len();
    let v = |i: usize| violations.get(i).copied().unwrap_or(0.0);
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in (i + 1)..n {
            if constrained_dominates(points[i], v(i), points[j], v(j)) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if constrained_dominates(points[j], v(j), points[i], v(i)) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut rank = vec![usize::MAX; n];
    let mut current: Vec<usize> = (0..n).filter(|i| dominated_by[*i] == 0).collect();
    let mut r = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            rank[i] = r;
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        current = next;
        r += 1;
    }
    rank
}

/// NSGA-II's crowding distance of each of `members` (indices into `points`) within their
/// set: the sum over objectives of the normalized gap between each point's neighbours;
/// the extremes of every objective get infinity.
pub(crate) fn crowding(points: &[&[f64]], members: &[usize]) -> Vec<f64> {
    let n = members.len();
    let mut dist = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let k = points[members[0]].len();
    let mut order: Vec<usize> = (0..n).collect();
    #[allow(clippy::needless_range_loop)] // `m` indexes into every point, not one slice
    for m in 0..k {
        order.sort_by(|a, b| points[members[*a]][m].total_cmp(&points[members[*b]][m]));
        let lo = points[members[order[0]]][m];
        let hi = points[members[order[n - 1]]][m];
        dist[order[0]] = f64::INFINITY;
        dist[order[n - 1]] = f64::INFINITY;
        let span = hi - lo;
        if span <= 0.0 || !span.is_finite() {
            continue;
        }
        for w in 1..n - 1 {
            let gap = points[members[order[w + 1]]][m] - points[members[order[w - 1]]][m];
            dist[order[w]] += gap / span;
        }
    }
    dist
}

/// The hypervolume dominated by `points` and bounded by `reference` (each objective
/// minimized; points not strictly better than the reference in every objective add
/// nothing). Exact: a sweep in 2-D, slicing along the last objective above that.
pub(crate) fn hypervolume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let pts: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.iter().zip(reference).all(|(x, r)| x < r))
        .map(|p| p.to_vec())
        .collect();
    hv(pts, reference)
}

fn hv(mut pts: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    let d = reference.len();
    if pts.is_empty() || d == 0 {
        return 0.0;
    }
    if d == 1 {
        let best = pts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        return (reference[0] - best).max(0.0);
    }
    if d == 2 {
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        let mut area = 0.0;
        let mut y = reference[1];
        for p in &pts {
            if p[1] < y {
                area += (reference[0] - p[0]) * (y - p[1]);
                y = p[1];
            }
        }
        return area;
    }
    // Slice along the last objective: between consecutive values the cross-section is the
    // (d-1)-dimensional hypervolume of the points below.
    pts.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let sub_ref = &reference[..d - 1];
    let mut total = 0.0;
    for i in 0..pts.len() {
        let top = if i + 1 < pts.len() { pts[i + 1][d - 1] } else { reference[d - 1] };
        let height = top - pts[i][d - 1];
        if height <= 0.0 {
            continue;
        }
        let below: Vec<Vec<f64>> = pts[..=i].iter().map(|p| p[..d - 1].to_vec()).collect();
        total += height * hv(nondominated(below), sub_ref);
    }
    total
}

/// The points no other point dominates (duplicates kept once).
fn nondominated(pts: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = Vec::with_capacity(pts.len());
    for p in pts {
        if out.iter().any(|q| dominates(q, &p) || *q == p) {
            continue;
        }
        out.retain(|q| !dominates(&p, q));
        out.push(p);
    }
    out
}

/// A reference point for losses: each objective's worst value plus a tenth of its range
/// (at least a small margin), so that the extreme points still contribute.
pub(crate) fn reference_point(points: &[&[f64]]) -> Vec<f64> {
    let k = points.first().map_or(0, |p| p.len());
    (0..k)
        .map(|m| {
            let lo = points.iter().map(|p| p[m]).fold(f64::INFINITY, f64::min);
            let hi = points.iter().map(|p| p[m]).fold(f64::NEG_INFINITY, f64::max);
            let margin = ((hi - lo) * 0.1).max(hi.abs() * 1e-3).max(1e-12);
            hi + margin
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn dominance_and_fronts() {
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[0.0, 3.0], &[1.0, 2.0]));
        let pts: Vec<&[f64]> =
            vec![&[1.0, 4.0], &[2.0, 2.0], &[4.0, 1.0], &[3.0, 3.0], &[5.0, 5.0]];
        assert_eq!(fronts(&pts, &[]), vec![0, 0, 0, 1, 2]);
        // Infeasible points come after every feasible one, by violation: without (2, 2),
        // (3, 3) is non-dominated.
        assert_eq!(fronts(&pts, &[0.0, 2.0, 0.0, 0.0, 1.0]), vec![0, 2, 0, 0, 1]);
    }

    #[test]
    fn crowding_rewards_isolated_points() {
        let pts: Vec<&[f64]> = vec![&[0.0, 4.0], &[1.0, 3.0], &[1.2, 2.8], &[4.0, 0.0]];
        let d = crowding(&pts, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // Point 2 has a far neighbour (3) on one side; point 1 two close ones.
        assert!(d[2] > d[1], "{d:?}");
    }

    #[test]
    fn hypervolume_known_values_and_monte_carlo() {
        let pts: Vec<&[f64]> = vec![&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]];
        // Staircase under reference (4, 4): 3 + 2 + 1.
        assert!((hypervolume(&pts, &[4.0, 4.0]) - 6.0).abs() < 1e-12);
        // A dominated point and one outside the reference add nothing.
        let more: Vec<&[f64]> =
            vec![&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0], &[3.0, 3.0], &[5.0, 0.0]];
        assert!((hypervolume(&more, &[4.0, 4.0]) - 6.0).abs() < 1e-12);
        // 3-D against a Monte Carlo estimate.
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let p3: Vec<Vec<f64>> =
            (0..12).map(|_| (0..3).map(|_| rng.random::<f64>()).collect()).collect();
        let refs: Vec<&[f64]> = p3.iter().map(Vec::as_slice).collect();
        let exact = hypervolume(&refs, &[1.0, 1.0, 1.0]);
        let n = 200_000;
        let hits = (0..n)
            .filter(|_| {
                let x: Vec<f64> = (0..3).map(|_| rng.random::<f64>()).collect();
                refs.iter().any(|p| p.iter().zip(&x).all(|(a, b)| a <= b))
            })
            .count();
        let mc = hits as f64 / n as f64;
        assert!((exact - mc).abs() < 0.005, "{exact} vs {mc}");
    }
}
