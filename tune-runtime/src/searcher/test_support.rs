//! Spaces and a small driver for the searchers' unit tests.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::VecDeque;

use super::{Searcher, Suggestion};
use crate::space::Space;
use crate::testing::{SCORE, Score};
use crate::trial::{Mode, TrialId, TrialResult};

crate::search_space! {
    /// A conditional space: a float and an enum whose variants have their own fields.
    pub struct Cond {
        t: f64 = uniform(0.0, 1.0),
        model: Model,
    }
    pub enum Model {
        A { x: f64 = uniform(-1.0, 1.0) },
        B { y: f64 = loguniform(1e-3, 1.0), k: i64 = choice([1, 2, 3]) },
        C,
    }
}

crate::search_space! {
    /// Branin's domain.
    pub struct Cont2 {
        a: f64 = uniform(-5.0, 10.0),
        b: f64 = uniform(0.0, 15.0),
    }
}

crate::search_space! {
    /// Integers and options.
    pub struct Mixed {
        x: f64 = uniform(-2.0, 2.0),
        n: i64 = randint(0, 20),
        c: u8 = choice([0, 1, 2, 3]),
    }
}

/// Best (0) at `model = B { y: 0.01, k: 2 }`, `t = 0.3`.
pub fn cond_loss(c: &Cond) -> f64 {
    let m = match &c.model {
        Model::A { x } => 1.0 + x * x,
        Model::B { y, k } => (y.log10() + 2.0).powi(2) + (*k - 2).abs() as f64,
        Model::C => 2.0,
    };
    m + (c.t - 0.3).powi(2)
}

pub fn mixed_loss(c: &Mixed) -> f64 {
    (c.x - 0.5).powi(2) + ((c.n - 7) as f64 / 5.0).powi(2) + if c.c == 2 { 0.0 } else { 1.0 }
}

pub fn result(id: u32, iteration: u64, score: f64) -> TrialResult<Score> {
    TrialResult {
        metrics: Score { score },
        trial_id: TrialId(id),
        training_iteration: iteration,
        time_this_iter_s: 0.0,
        time_total_s: 0.0,
        timestamp: 0,
        done: false,
    }
}

/// A simulated experiment: up to `concurrency` trials at once, each finishing (oldest
/// first) with `loss(config)` as its one result; minimizes.
pub struct Run<C> {
    pub next_id: u32,
    pub running: VecDeque<(u32, C)>,
    pub configs: Vec<C>,
    pub finished: bool,
}

impl<C: Space> Run<C> {
    pub fn start<S: Searcher<C, Score>>(s: &mut S, n: usize, seed: u64) -> Self {
        s.setup(n, seed);
        s.set_objective(SCORE.into(), Mode::Min);
        Run { next_id: 0, running: VecDeque::new(), configs: Vec::new(), finished: false }
    }

    /// Fills up to `concurrency`, then finishes the oldest trial. False once all is done.
    pub fn step<S: Searcher<C, Score>>(
        &mut self,
        s: &mut S,
        concurrency: usize,
        loss: fn(&C) -> f64,
    ) -> bool {
        while !self.finished && self.running.len() < concurrency {
            match s.suggest(TrialId(self.next_id)) {
                Suggestion::Config(c) => {
                    self.running.push_back((self.next_id, c.clone()));
                    self.configs.push(c);
                    self.next_id += 1;
                }
                Suggestion::NotNow => break,
                Suggestion::Finished => self.finished = true,
            }
        }
        let Some((id, c)) = self.running.pop_front() else { return !self.finished };
        let r = result(id, 1, loss(&c));
        s.on_trial_result(TrialId(id), &r);
        s.on_trial_complete(TrialId(id), Some(&r), false);
        true
    }
}

/// Runs `n` trials and returns every suggested config in order.
pub fn drive<C: Space, S: Searcher<C, Score>>(
    s: &mut S,
    n: usize,
    concurrency: usize,
    seed: u64,
    loss: fn(&C) -> f64,
) -> Vec<C> {
    let mut run = Run::start(s, n, seed);
    let mut guard = 0;
    while run.step(s, concurrency, loss) {
        guard += 1;
        assert!(guard < 100_000, "the searcher never finished");
    }
    run.configs
}

/// Every config is inside its space and survives the encoding.
pub fn all_valid<C: Space>(configs: &[C]) {
    for c in configs {
        c.validate().unwrap();
        assert_eq!(&C::decode(&c.encode()).unwrap(), c);
    }
}

/// Runs 15 trials with 2 at once, saves, restores into a fresh searcher and checks that
/// both continue with the same 15 configs.
pub fn round_trip<C: Space, S: Searcher<C, Score>>(make: impl Fn() -> S, loss: fn(&C) -> f64) {
    let mut a = make();
    let mut run = Run::start(&mut a, 30, 11);
    for _ in 0..15 {
        run.step(&mut a, 2, loss);
    }
    let state = a.save_state();
    let text = serde_json::to_string(&state).unwrap();
    let mut b = make();
    let mut run_b = Run::start(&mut b, 30, 11);
    b.restore_state(serde_json::from_str(&text).unwrap()).unwrap();
    run_b.next_id = run.next_id;
    run_b.running = run.running.clone();
    let before = run.configs.len();
    for _ in 0..15 {
        run.step(&mut a, 2, loss);
        run_b.step(&mut b, 2, loss);
    }
    assert!(run.configs.len() > before, "nothing suggested after the save");
    assert_eq!(run.configs[before..], run_b.configs[..], "the restored searcher diverged");
}

/// Two losses, for the multi-objective searchers.
#[derive(Debug, Clone)]
pub struct Two {
    pub f: [f64; 3],
}

impl crate::metrics::Metrics for Two {
    const NAMES: &'static [&'static str] = &["f1", "f2", "g"];
    fn value(&self, index: usize) -> f64 {
        self.f[index]
    }
}

pub const F1: crate::metrics::Metric<Two> = crate::metrics::Metric::new(0, "f1");
pub const F2: crate::metrics::Metric<Two> = crate::metrics::Metric::new(1, "f2");
pub const G: crate::metrics::Metric<Two> = crate::metrics::Metric::new(2, "g");

/// Runs `n` trials minimizing both values of `f` (a third value, when `f` gives one, is a
/// constraint `<= 0`), `concurrency` at a time; returns every suggested config in order.
pub fn drive_multi<C: Space, S: Searcher<C, Two>>(
    s: &mut S,
    n: usize,
    concurrency: usize,
    seed: u64,
    f: fn(&C) -> Vec<f64>,
) -> Vec<C> {
    let mut o = crate::objectives::Objectives::new().minimize(F1).minimize(F2);
    if let Some(c) =
        C::sample(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0))
            .pipe(|c| f(&c).get(2).copied())
    {
        let _ = c;
        o = o.constraint(crate::objectives::Constraint::at_most(G, 0.0));
    }
    s.setup(n, seed);
    s.set_objective(F1.into(), Mode::Min);
    s.set_objectives(&o).unwrap();
    let mut running: VecDeque<(u32, C)> = VecDeque::new();
    let mut configs = Vec::new();
    let mut next = 0u32;
    let mut finished = false;
    loop {
        while !finished && running.len() < concurrency {
            match s.suggest(TrialId(next)) {
                Suggestion::Config(c) => {
                    running.push_back((next, c.clone()));
                    configs.push(c);
                    next += 1;
                }
                Suggestion::NotNow => break,
                Suggestion::Finished => finished = true,
            }
        }
        let Some((id, c)) = running.pop_front() else { break };
        let v = f(&c);
        let r = TrialResult {
            metrics: Two { f: [v[0], v[1], v.get(2).copied().unwrap_or(0.0)] },
            trial_id: TrialId(id),
            training_iteration: 1,
            time_this_iter_s: 0.0,
            time_total_s: 0.0,
            timestamp: 0,
            done: false,
        };
        s.on_trial_complete(TrialId(id), Some(&r), false);
    }
    configs
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}
