//! Searcher benchmarks: regret on standard test functions and suggestion latency.
//!
//! `cargo bench -p tune-runtime --bench searchers -- --seeds 30 --trials 100 --threads 2
//! --svg docs/searchers-curves.svg` runs everything (see `docs/benchmarks.md`);
//! `-- latency` runs only the latency part (`-- latency-tpe` / `-- latency-gp`: one
//! searcher's), `-- regret` only the regret part. `--searchers tpe,cmaes` runs only those
//! searchers, `--sequential` only the sequential runs, `--first-seed K` uses seeds K to
//! K + seeds - 1 (default 0), and `--finals FILE` writes every
//! seed's final regret (sequential) as CSV lines `function,searcher,seed,final`, the format
//! of `optuna/compare.py --finals`, which `optuna/stats.py` compares.
//!
//! The searchers are driven directly, not through the runner: a simulated experiment keeps
//! `concurrency` trials in flight (suggested, not yet finished) and finishes the oldest
//! first, so with 4 concurrent trials every suggestion is made with 3 results pending.

use std::fmt::Write as _;
use std::time::Instant;

use tune_runtime::prelude::*;
use tune_runtime::{
    Constraint, Objectives, TrialId, TrialResult,
    searcher::{Bohb, CmaEs, GpBo, LatinHypercube, Nsga2, RandomSearch, Searcher, Suggestion, Tpe},
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
search_space! {
    struct Rosenbrock4 {
        x1: f64 = uniform(-2.048, 2.048), x2: f64 = uniform(-2.048, 2.048),
        x3: f64 = uniform(-2.048, 2.048), x4: f64 = uniform(-2.048, 2.048),
    }
}
search_space! {
    struct Ackley5 {
        x1: f64 = uniform(-32.768, 32.768), x2: f64 = uniform(-32.768, 32.768),
        x3: f64 = uniform(-32.768, 32.768), x4: f64 = uniform(-32.768, 32.768),
        x5: f64 = uniform(-32.768, 32.768),
    }
}
search_space! {
    /// A 2-D quadratic bowl: how finely a searcher converges over many trials (run only
    /// when named: `--functions Quadratic2`).
    struct Quadratic2 { x: f64 = uniform(-5.0, 5.0), y: f64 = uniform(-5.0, 5.0) }
}
search_space! {
    /// Mixed: a float, a log-scaled float, an integer and an unordered option.
    struct MixedSpace {
        x: f64 = uniform(-5.0, 5.0),
        lr: f64 = loguniform(1e-4, 1.0),
        n: i64 = randint(0, 31),
        opt: usize = choice([0, 1, 2, 3]),
    }
}

#[derive(Metrics, Debug, Clone)]
struct Two {
    f1: f64,
    f2: f64,
    c: f64,
}

search_space! {
    struct Zdt {
        x0: f64 = uniform(0.0, 1.0), x1: f64 = uniform(0.0, 1.0), x2: f64 = uniform(0.0, 1.0),
        x3: f64 = uniform(0.0, 1.0), x4: f64 = uniform(0.0, 1.0), x5: f64 = uniform(0.0, 1.0),
        x6: f64 = uniform(0.0, 1.0), x7: f64 = uniform(0.0, 1.0), x8: f64 = uniform(0.0, 1.0),
        x9: f64 = uniform(0.0, 1.0), x10: f64 = uniform(0.0, 1.0), x11: f64 = uniform(0.0, 1.0),
        x12: f64 = uniform(0.0, 1.0), x13: f64 = uniform(0.0, 1.0), x14: f64 = uniform(0.0, 1.0),
        x15: f64 = uniform(0.0, 1.0), x16: f64 = uniform(0.0, 1.0), x17: f64 = uniform(0.0, 1.0),
        x18: f64 = uniform(0.0, 1.0), x19: f64 = uniform(0.0, 1.0), x20: f64 = uniform(0.0, 1.0),
        x21: f64 = uniform(0.0, 1.0), x22: f64 = uniform(0.0, 1.0), x23: f64 = uniform(0.0, 1.0),
        x24: f64 = uniform(0.0, 1.0), x25: f64 = uniform(0.0, 1.0), x26: f64 = uniform(0.0, 1.0),
        x27: f64 = uniform(0.0, 1.0), x28: f64 = uniform(0.0, 1.0), x29: f64 = uniform(0.0, 1.0),
    }
}

/// ZDT1 (`which` 1) or ZDT2 (2) in 30 dimensions: `(f1, f2)`.
fn zdt(c: &Zdt, which: u8) -> (f64, f64) {
    let x = c.encode();
    let f1 = x[0];
    let g = 1.0 + 9.0 * x[1..].iter().sum::<f64>() / (x.len() - 1) as f64;
    let h = if which == 1 { 1.0 - (f1 / g).sqrt() } else { 1.0 - (f1 / g).powi(2) };
    (f1, g * h)
}

/// Branin and the distance to the corner (10, 15), feasible inside the disc of radius
/// √50 around (2.5, 7.5): `(f1, f2, constraint)`.
fn branin_c(c: &Branin) -> (f64, f64, f64) {
    let f2 = (c.x1 - 10.0).powi(2) + (c.x2 - 15.0).powi(2) / 4.0;
    (branin(c), f2, (c.x1 - 2.5).powi(2) + (c.x2 - 7.5).powi(2) - 50.0)
}

/// Hypervolume of 2-D losses against `reference` (a sweep).
fn hv2(points: &[(f64, f64)], reference: (f64, f64)) -> f64 {
    let mut pts: Vec<(f64, f64)> =
        points.iter().copied().filter(|p| p.0 < reference.0 && p.1 < reference.1).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (mut area, mut y) = (0.0, reference.1);
    for p in pts {
        if p.1 < y {
            area += (reference.0 - p.0) * (y - p.1);
            y = p.1;
        }
    }
    area
}

/// Hypervolume of the feasible trials after `trials` sequential trials.
fn run_mo<C: Space>(
    s: &mut dyn Searcher<C, Two>,
    f: &dyn Fn(&C) -> (f64, f64, f64),
    constrained: bool,
    trials: usize,
    seed: u64,
    reference: (f64, f64),
) -> f64 {
    let mut o = Objectives::new().minimize(Two::F1).minimize(Two::F2);
    if constrained {
        o = o.constraint(Constraint::at_most(Two::C, 0.0));
    }
    s.setup(trials, seed);
    s.set_objective(Two::F1.into(), Mode::Min);
    s.set_objectives(&o).expect("a multi-objective searcher");
    let mut pts = Vec::new();
    for id in 0..trials as u32 {
        let Suggestion::Config(c) = s.suggest(TrialId::new(id)) else { break };
        let (f1, f2, cv) = f(&c);
        let r = TrialResult {
            metrics: Two { f1, f2, c: cv },
            trial_id: TrialId::new(id),
            training_iteration: 1,
            time_this_iter_s: 0.0,
            time_total_s: 0.0,
            timestamp: 0,
            done: true,
        };
        s.on_trial_complete(TrialId::new(id), Some(&r), false);
        if cv <= 0.0 || !constrained {
            pts.push((f1, f2));
        }
    }
    hv2(&pts, reference)
}

/// NSGA-II, TPE and GP-BO on ZDT1, ZDT2 and the constrained Branin: median hypervolume.
fn multi_objective(o: &Opts) {
    println!(
        "\nHypervolume of the feasible trials after {} trials, median of {} seeds (higher is better)\n",
        o.mo_trials, o.mo_seeds
    );
    println!("| problem | searcher | median hypervolume | time (s) |");
    println!("|---|---|---|---|");
    for problem in ["ZDT1", "ZDT2", "BraninC"] {
        for name in ["nsga2", "tpe", "gp", "random"] {
            if name == "gp" && problem != "BraninC" && o.mo_trials > 100 {
                // 30 dimensions × 200 trials: minutes per seed; not part of the table.
                continue;
            }
            let start = Instant::now();
            let mut hvs: Vec<f64> = (0..o.mo_seeds as u64)
                .map(|seed| match problem {
                    "BraninC" => {
                        let mut s = make_mo::<Branin>(name);
                        run_mo(s.as_mut(), &branin_c, true, o.mo_trials, seed, (310.0, 230.0))
                    }
                    _ => {
                        let which = if problem == "ZDT1" { 1 } else { 2 };
                        let f = move |c: &Zdt| {
                            let (a, b) = zdt(c, which);
                            (a, b, 0.0)
                        };
                        let mut s = make_mo::<Zdt>(name);
                        run_mo(s.as_mut(), &f, false, o.mo_trials, seed, (1.1, 7.0))
                    }
                })
                .collect();
            let secs = start.elapsed().as_secs_f64();
            println!("| {problem} | {name} | {:.4} | {secs:.1} |", median(&mut hvs));
        }
    }
}

fn make_mo<C: Space>(name: &str) -> Box<dyn Searcher<C, Two>> {
    match name {
        "nsga2" => Box::new(Nsga2::<C>::new()),
        "tpe" => Box::new(Tpe::<C>::new()),
        "gp" => Box::new(GpBo::<C>::new()),
        _ => Box::new(RandomSearch::<C>::new()),
    }
}

fn branin(c: &Branin) -> f64 {
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    (c.x2 - b * c.x1 * c.x1 + 5.0 / pi * c.x1 - 6.0).powi(2)
        + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * c.x1.cos()
        + 10.0
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
    -(0..4)
        .map(|i| {
            let s: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-s).exp()
        })
        .sum::<f64>()
}

fn rosenbrock(c: &Rosenbrock4) -> f64 {
    let x = [c.x1, c.x2, c.x3, c.x4];
    (0..3).map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2)).sum()
}

fn ackley(c: &Ackley5) -> f64 {
    let x = [c.x1, c.x2, c.x3, c.x4, c.x5];
    let d = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2 = x.iter().map(|v| (2.0 * std::f64::consts::PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

fn quadratic(c: &Quadratic2) -> f64 {
    c.x * c.x + c.y * c.y
}

fn mixed(c: &MixedSpace) -> f64 {
    (c.x - 1.5).powi(2) / 4.0
        + (c.lr.log10() + 2.0).powi(2)
        + ((c.n - 23) as f64 / 6.0).powi(2)
        + [0.0, 0.5, 1.0, 2.0][c.opt]
}

const SEARCHERS: [&str; 6] = ["random", "lhs", "tpe", "gp", "cmaes", "bohb"];

fn make<C: Space>(name: &str) -> Option<Box<dyn Searcher<C, Loss>>> {
    Some(match name {
        "random" => Box::new(RandomSearch::<C>::new()),
        "lhs" => Box::new(LatinHypercube::<C>::new()),
        "tpe" => Box::new(Tpe::<C>::new()),
        "gp" => Box::new(GpBo::<C>::new()),
        "cmaes" => Box::new(CmaEs::<C>::new().ok()?),
        "bohb" => Box::new(Bohb::<C>::new()),
        _ => return None,
    })
}

fn result(id: u32, loss: f64) -> TrialResult<Loss> {
    TrialResult {
        metrics: Loss { loss },
        trial_id: TrialId::new(id),
        training_iteration: 1,
        time_this_iter_s: 0.0,
        time_total_s: 0.0,
        timestamp: 0,
        done: true,
    }
}

/// Best-so-far regret after each finished trial.
fn run<C: Space>(
    s: &mut dyn Searcher<C, Loss>,
    f: fn(&C) -> f64,
    opt: f64,
    trials: usize,
    concurrency: usize,
    seed: u64,
) -> Vec<f64> {
    s.setup(trials, seed);
    s.set_objective(Loss::LOSS.into(), Mode::Min);
    let mut running = std::collections::VecDeque::new();
    let mut next = 0u32;
    let mut best = f64::INFINITY;
    let mut curve = Vec::with_capacity(trials);
    let mut finished = false;
    while curve.len() < trials {
        while !finished && running.len() < concurrency {
            match s.suggest(TrialId::new(next)) {
                Suggestion::Config(c) => {
                    running.push_back((next, c));
                    next += 1;
                }
                Suggestion::NotNow => break,
                Suggestion::Finished => finished = true,
            }
        }
        let Some((id, c)) = running.pop_front() else { break };
        let y = f(&c);
        let r = result(id, y);
        s.on_trial_result(TrialId::new(id), &r);
        s.on_trial_complete(TrialId::new(id), Some(&r), false);
        best = best.min(y);
        curve.push((best - opt).max(0.0));
    }
    curve
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

struct Cell {
    function: &'static str,
    concurrency: usize,
    searcher: &'static str,
    /// Median over seeds of the best-so-far regret after each trial.
    curve: Vec<f64>,
    seconds: f64,
}

fn bench_function<C: Space>(
    function: &'static str,
    f: fn(&C) -> f64,
    opt: f64,
    o: &Opts,
    out: &mut Vec<Cell>,
) {
    let named = o.functions.as_ref().map(|v| v.iter().any(|f| f == function));
    if !named.unwrap_or(function != "Quadratic2") {
        return;
    }
    let concurrencies: &[usize] = if o.sequential { &[1] } else { &[1, 4] };
    for &concurrency in concurrencies {
        for name in SEARCHERS {
            if make::<C>(name).is_none()
                || !o.searchers.as_ref().is_none_or(|v| v.iter().any(|s| s == name))
            {
                continue;
            }
            let start = Instant::now();
            let seeds: Vec<u64> = (o.first_seed..o.first_seed + o.seeds as u64).collect();
            let curves: Vec<Vec<f64>> = std::thread::scope(|scope| {
                let chunks: Vec<_> = seeds
                    .chunks(o.seeds.div_ceil(o.threads).max(1))
                    .map(|chunk| {
                        scope.spawn(move || {
                            chunk
                                .iter()
                                .map(|seed| {
                                    let mut s = make::<C>(name).expect("checked above");
                                    run(s.as_mut(), f, opt, o.trials, concurrency, *seed)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                chunks.into_iter().flat_map(|h| h.join().expect("benchmark thread")).collect()
            });
            if concurrency == 1 {
                for (seed, c) in seeds.iter().zip(&curves) {
                    let last = c.last().copied().unwrap_or(f64::NAN);
                    let line = format!("{function},{name},{seed},{last:?}\n");
                    let _ = std::io::Write::write_all(&mut *out_finals(o), line.as_bytes());
                }
            }
            let curve = (0..o.trials)
                .map(|t| {
                    median(&mut curves.iter().map(|c| c[t.min(c.len() - 1)]).collect::<Vec<_>>())
                })
                .collect();
            let seconds = start.elapsed().as_secs_f64();
            eprintln!("{function:>12} x{concurrency} {name:>6}: {seconds:.1}s");
            out.push(Cell { function, concurrency, searcher: name, curve, seconds });
        }
    }
}

/// Where `--finals` lines go (a sink when the option is not given).
fn out_finals(o: &Opts) -> std::sync::MutexGuard<'_, Box<dyn std::io::Write + Send>> {
    o.finals.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Opts {
    searchers: Option<Vec<String>>,
    /// `--functions`: the regret functions to run (default: all but `Quadratic2`).
    functions: Option<Vec<String>>,
    sequential: bool,
    finals: std::sync::Mutex<Box<dyn std::io::Write + Send>>,
    seeds: usize,
    first_seed: u64,
    trials: usize,
    threads: usize,
    svg: Option<String>,
    regret: bool,
    latency: bool,
    tpe: bool,
    gp: bool,
    mo: bool,
    mo_seeds: usize,
    mo_trials: usize,
}

fn parse() -> Opts {
    let mut o = Opts {
        searchers: None,
        functions: None,
        sequential: false,
        finals: std::sync::Mutex::new(Box::new(std::io::sink())),
        seeds: 30,
        first_seed: 0,
        trials: 100,
        threads: 2,
        svg: None,
        regret: true,
        latency: true,
        tpe: true,
        gp: true,
        mo: true,
        mo_seeds: 10,
        mo_trials: 200,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
    while i < args.len() {
        match args[i].as_str() {
            "--seeds" => o.seeds = value(i).unwrap_or(o.seeds),
            "--first-seed" => {
                o.first_seed = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            "--trials" => o.trials = value(i).unwrap_or(o.trials),
            "--threads" => o.threads = value(i).unwrap_or(o.threads).max(1),
            "--svg" => o.svg = args.get(i + 1).cloned(),
            "--searchers" => {
                o.searchers = args.get(i + 1).map(|v| v.split(',').map(str::to_string).collect());
            }
            "--functions" => {
                o.functions = args.get(i + 1).map(|v| v.split(',').map(str::to_string).collect());
            }
            "--sequential" => o.sequential = true,
            "--finals" => {
                // A relative path is taken from the workspace root, as for `--svg`.
                let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let path = root.join(args.get(i + 1).cloned().unwrap_or_default());
                match std::fs::File::create(&path) {
                    Ok(f) => o.finals = std::sync::Mutex::new(Box::new(f)),
                    Err(e) => eprintln!("cannot write {}: {e}", path.display()),
                }
            }
            "latency" => (o.regret, o.mo) = (false, false),
            "regret" => (o.latency, o.mo) = (false, false),
            "mo" => (o.latency, o.regret) = (false, false),
            "--mo-seeds" => o.mo_seeds = value(i).unwrap_or(o.mo_seeds),
            "--mo-trials" => o.mo_trials = value(i).unwrap_or(o.mo_trials),
            "latency-tpe" => (o.regret, o.gp, o.mo) = (false, false, false),
            "latency-gp" => (o.regret, o.tpe, o.mo) = (false, false, false),
            _ => {}
        }
        i += 1;
    }
    o
}

/// CPU time of this thread in seconds (Linux `schedstat`; 0 elsewhere), to tell the
/// cost of a suggestion from time spent waiting for a core on a busy machine.
fn thread_cpu() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()))
        .map_or(0.0, |ns| ns * 1e-9)
}

/// Time per suggestion with `n` finished trials: the mean and the median wall time of
/// `reps` suggestions, and the thread's CPU time per suggestion over the whole timed loop
/// (which also includes telling the searcher each result). Each timed suggestion is then
/// finished too, so the count stays at about `n`.
fn latency<C: Space>(
    s: &mut dyn Searcher<C, Loss>,
    f: fn(&C) -> f64,
    n: usize,
    reps: usize,
) -> Latency {
    s.setup(n + reps + 1, 1);
    s.set_objective(Loss::LOSS.into(), Mode::Min);
    let mut walls = Vec::with_capacity(reps);
    let mut cpu = 0.0;
    for id in 0..(n + reps) as u32 {
        if id as usize == n {
            cpu = thread_cpu();
        }
        let t = Instant::now();
        let Suggestion::Config(c) = s.suggest(TrialId::new(id)) else { panic!("no config") };
        if id as usize >= n {
            walls.push(t.elapsed().as_secs_f64());
        }
        let r = result(id, f(&c));
        s.on_trial_complete(TrialId::new(id), Some(&r), false);
    }
    let cpu = (thread_cpu() - cpu) / reps as f64;
    let mean = walls.iter().sum::<f64>() / reps as f64;
    Latency { mean, median: median(&mut walls), cpu }
}

struct Latency {
    mean: f64,
    median: f64,
    cpu: f64,
}

impl Latency {
    fn print(&self, what: &str) {
        println!(
            "{what}: {:.3} ms per suggest (wall mean), {:.3} ms (wall median), {:.3} ms (thread CPU)",
            self.mean * 1e3,
            self.median * 1e3,
            self.cpu * 1e3
        );
    }
}

fn svg(cells: &[Cell], trials: usize) -> String {
    let functions: Vec<&str> = {
        let mut v: Vec<&str> = cells.iter().map(|c| c.function).collect();
        v.dedup();
        v
    };
    let colors = ["#888888", "#bcbd22", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"];
    let (w, h, pad) = (360.0, 240.0, 40.0);
    let cols = 3;
    let rows = functions.len().div_ceil(cols);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        w * cols as f64,
        h * rows as f64 + 30.0
    );
    for (k, name) in SEARCHERS.iter().enumerate() {
        let x = 10.0 + k as f64 * 110.0;
        let _ = write!(
            s,
            r#"<line x1="{x}" y1="15" x2="{}" y2="15" stroke="{}" stroke-width="2"/><text x="{}" y="19">{name}</text>"#,
            x + 20.0,
            colors[k],
            x + 24.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="700" y="19">solid: sequential, dashed: 4 concurrent; y: median regret (log)</text>"#
    );
    for (p, function) in functions.iter().enumerate() {
        let (ox, oy) = ((p % cols) as f64 * w, (p / cols) as f64 * h + 30.0);
        let mine: Vec<&Cell> = cells.iter().filter(|c| c.function == *function).collect();
        let vals = mine.iter().flat_map(|c| c.curve.iter()).filter(|v| **v > 0.0);
        let lo = vals.clone().fold(f64::INFINITY, |a, b| a.min(*b)).max(1e-9).log10().floor();
        let hi = vals.fold(f64::NEG_INFINITY, |a, b| a.max(*b)).log10().ceil().max(lo + 1.0);
        let px = |t: usize| ox + pad + (w - 1.5 * pad) * t as f64 / (trials - 1).max(1) as f64;
        let py = |v: f64| {
            let l = v.max(10f64.powf(lo)).log10();
            oy + 10.0 + (h - pad - 10.0) * (hi - l) / (hi - lo)
        };
        let _ = write!(
            s,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#ccc"/><text x="{}" y="{}">{function}</text><text x="{}" y="{}">1e{hi}</text><text x="{}" y="{}">1e{lo}</text><text x="{}" y="{}">trial {trials}</text>"##,
            ox + pad,
            oy + 10.0,
            w - 1.5 * pad,
            h - pad - 10.0,
            ox + pad + 5.0,
            oy + 24.0,
            ox + 2.0,
            oy + 14.0,
            ox + 2.0,
            oy + h - pad,
            ox + w - 2.5 * pad,
            oy + h - pad + 14.0
        );
        for c in mine {
            let k = SEARCHERS.iter().position(|n| *n == c.searcher).unwrap_or(0);
            let pts: Vec<String> = c
                .curve
                .iter()
                .enumerate()
                .map(|(t, v)| format!("{:.1},{:.1}", px(t), py(*v)))
                .collect();
            let dash = if c.concurrency > 1 { r#" stroke-dasharray="4 3""# } else { "" };
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1.5"{dash} points="{}"/>"#,
                colors[k],
                pts.join(" ")
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn main() {
    let o = parse();
    if o.latency {
        if o.tpe {
            latency::<Branin>(&mut Tpe::new().n_startup(1000), branin, 1000, 200)
                .print("TPE, 2-D, 1000 finished trials");
        }
        if o.gp {
            latency::<Hartmann6>(&mut GpBo::new().n_startup(200), hartmann6, 200, 20)
                .print("GP-BO, 6-D, 200 finished trials");
        }
    }
    if o.mo {
        multi_objective(&o);
    }
    if !o.regret {
        return;
    }
    let mut cells = Vec::new();
    bench_function("Branin", branin, 0.397_887_357_729_738, &o, &mut cells);
    bench_function("Hartmann6", hartmann6, -3.322_368_011_415_51, &o, &mut cells);
    bench_function("Rosenbrock4", rosenbrock, 0.0, &o, &mut cells);
    bench_function("Ackley5", ackley, 0.0, &o, &mut cells);
    bench_function("Mixed", mixed, 0.0, &o, &mut cells);
    bench_function("Quadratic2", quadratic, 0.0, &o, &mut cells);
    println!(
        "\nMedian best-so-far regret over {} seeds ({} trials): after 25 / 50 / {} trials\n",
        o.seeds, o.trials, o.trials
    );
    println!(
        "| function | concurrent | searcher | after 25 | after 50 | final | vs random | time (s) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cells {
        let random = cells
            .iter()
            .find(|r| {
                r.function == c.function && r.concurrency == c.concurrency && r.searcher == "random"
            })
            .and_then(|r| r.curve.last().copied())
            .unwrap_or(f64::NAN);
        let at = |t: usize| c.curve.get(t.min(c.curve.len()) - 1).copied().unwrap_or(f64::NAN);
        let last = c.curve.last().copied().unwrap_or(f64::NAN);
        let verdict = if c.searcher == "random" {
            "-".to_string()
        } else if last < random && last < 1e-4 * random {
            "better (>10^4x)".to_string()
        } else if last < random {
            format!("better ({:.1}x)", random / last)
        } else {
            "not better".to_string()
        };
        println!(
            "| {} | {} | {} | {:.4} | {:.4} | {:.4} | {} | {:.1} |",
            c.function,
            c.concurrency,
            c.searcher,
            at(25),
            at(50),
            last,
            verdict,
            c.seconds
        );
    }
    if let Some(path) = &o.svg {
        // `cargo bench` runs this in the package's directory: a relative path is taken
        // from the workspace root, where the documented command is typed.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = root.join(path);
        match std::fs::write(&path, svg(&cells, o.trials)) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        }
    }
}
