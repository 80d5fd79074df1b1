//! Regression guard for the searchers' quality: a reduced version of the regret benchmark
//! of `benches/searchers.rs` (5 seeds, 40 trials, sequential) whose median final regret
//! per searcher and function must stay within a margin of the figures recorded below.
//!
//! The runs are seeded, so the figures are exact (debug and release builds compute the
//! same floats). A change that makes a searcher markedly worse fails here; a change that
//! is meant to move the figures records new ones:
//!
//! ```text
//! TUNE_RECORD_GUARD=1 cargo test -p tune-runtime --test regret_guard -- --nocapture
//! ```
//!
//! prints the table to paste into `RECORDED`.

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialId, TrialResult,
    searcher::{CmaEs, GpBo, RandomSearch, Searcher, Suggestion, Tpe},
};

#[derive(Metrics, Debug, Clone)]
struct Loss {
    loss: f64,
}

search_space! {
    struct Branin { x1: f64 = uniform(-5.0, 10.0), x2: f64 = uniform(0.0, 15.0) }
}
search_space! {
    struct Hartmann6 {
        x1: f64 = uniform(0.0, 1.0), x2: f64 = uniform(0.0, 1.0), x3: f64 = uniform(0.0, 1.0),
        x4: f64 = uniform(0.0, 1.0), x5: f64 = uniform(0.0, 1.0), x6: f64 = uniform(0.0, 1.0),
    }
}

fn branin(c: &Branin) -> f64 {
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    (c.x2 - b * c.x1 * c.x1 + 5.0 / pi * c.x1 - 6.0).powi(2)
        + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * c.x1.cos()
        + 10.0
        - 0.397_887_357_729_738
}

fn hartmann6(c: &Hartmann6) -> f64 {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    let x = [c.x1, c.x2, c.x3, c.x4, c.x5, c.x6];
    let f: f64 = (0..4)
        .map(|i| {
            let s: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-s).exp()
        })
        .sum();
    3.322_368_011_415_51 - f
}

const SEEDS: u64 = 5;
const TRIALS: usize = 40;

/// Median final regret of `make()` over the seeds.
fn median_regret<C: Space, S: Searcher<C, Loss>>(make: impl Fn() -> S, f: fn(&C) -> f64) -> f64 {
    let mut finals: Vec<f64> = (0..SEEDS)
        .map(|seed| {
            let mut s = make();
            s.setup(TRIALS, seed);
            s.set_objective(Loss::LOSS.into(), Mode::Min);
            let mut best = f64::INFINITY;
            for id in 0..TRIALS as u32 {
                let Suggestion::Config(c) = s.suggest(TrialId::new(id)) else { break };
                let loss = f(&c);
                let r = TrialResult {
                    metrics: Loss { loss },
                    trial_id: TrialId::new(id),
                    training_iteration: 1,
                    time_this_iter_s: 0.0,
                    time_total_s: 0.0,
                    timestamp: 0,
                    done: true,
                };
                s.on_trial_complete(TrialId::new(id), Some(&r), false);
                best = best.min(loss);
            }
            best.max(0.0)
        })
        .collect();
    finals.sort_by(f64::total_cmp);
    finals[finals.len() / 2]
}

/// (function, searcher, median final regret) recorded with the command in the header.
const RECORDED: &[(&str, &str, f64)] = &[
    ("Branin", "random", 1.7415429628224957e0),
    ("Branin", "tpe", 2.356092450459874e-1),
    ("Branin", "cmaes", 4.3609513481167833e-1),
    ("Branin", "gp", 3.7731091840081943e-4),
    ("Hartmann6", "random", 8.770519040841074e-1),
    ("Hartmann6", "tpe", 4.959997875399784e-1),
    ("Hartmann6", "cmaes", 4.645236490390334e-1),
];

/// A figure may grow by this factor (plus a small absolute slack for figures near 0)
/// before the guard fails: seeds are few, so smaller moves are noise of the protocol.
const MARGIN: f64 = 1.5;
const SLACK: f64 = 1e-3;

#[test]
fn median_regret_stays_near_the_recorded_figures() {
    let measured = [
        ("Branin", "random", median_regret(RandomSearch::<Branin>::new, branin)),
        ("Branin", "tpe", median_regret(Tpe::<Branin>::new, branin)),
        ("Branin", "cmaes", median_regret(|| CmaEs::<Branin>::new().expect("continuous"), branin)),
        ("Branin", "gp", median_regret(|| GpBo::<Branin>::new().n_candidates(128), branin)),
        ("Hartmann6", "random", median_regret(RandomSearch::<Hartmann6>::new, hartmann6)),
        ("Hartmann6", "tpe", median_regret(Tpe::<Hartmann6>::new, hartmann6)),
        (
            "Hartmann6",
            "cmaes",
            median_regret(|| CmaEs::<Hartmann6>::new().expect("continuous"), hartmann6),
        ),
    ];
    if std::env::var_os("TUNE_RECORD_GUARD").is_some() {
        for (f, s, v) in &measured {
            println!("    ({f:?}, {s:?}, {v:e}),");
        }
        return;
    }
    assert_eq!(measured.len(), RECORDED.len(), "record the figures (see the header)");
    let mut worse = Vec::new();
    for ((f, s, v), (rf, rs, r)) in measured.iter().zip(RECORDED) {
        assert_eq!((f, s), (rf, rs), "record the figures again (see the header)");
        if *v > r * MARGIN + SLACK {
            worse.push(format!("{s} on {f}: median regret {v:.4}, recorded {r:.4}"));
        }
    }
    assert!(worse.is_empty(), "searchers got worse:\n{}", worse.join("\n"));
}
