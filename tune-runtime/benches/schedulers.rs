//! Scheduler benchmarks (run by hand; minutes):
//!
//! - `multifidelity`: learning curves from a formula whose ranking changes over time, 20
//!   seeds. Random search runs 32 trials to the full budget (81 iterations); ASHA and
//!   HyperBand sample from the same seeded stream. For each, the training iterations spent
//!   until the best result so far reaches random search's final best, and the compute
//!   saved. Writes `target/schedulers_multifidelity.svg` (best so far against iterations,
//!   seed 0).
//! - `pbt`: the toy problem of Jaderberg et al. 2017 (maximize Q = 1.2 - (t0^2 + t1^2) by
//!   gradient steps on the surrogate 1.2 - (h0 t0^2 + h1 t1^2)), population 2 with
//!   h = (1, 0) and (0, 1), against the same population with fixed hyperparameters; PBT
//!   (explore by uniform noise) against PB2 (explore by the GP bandit) with the same budget.
//! - `overhead`: the driver's per-result cost with ASHA against FIFO.
//!
//! `cargo bench -p tune-runtime --bench schedulers [-- multifidelity|pbt|overhead]`

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialId,
    scheduler::{Asha, FifoScheduler, HyperBand, Pausing, Pb2, Pbt},
    searcher::{Searcher, Suggestion},
};

const MAX_T: u64 = 81;
const RANDOM_TRIALS: usize = 32;
const SEEDS: u64 = 20;

search_space! {
    /// Two hyperparameters of the synthetic learning curves.
    pub struct Curve {
        lr: f64 = uniform(0.0, 1.0),
        wd: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Quality {
    quality: f64,
}

static STEPS: AtomicU64 = AtomicU64::new(0);
/// (iterations so far, best so far) at every improvement.
static TRACE: Mutex<Vec<(u64, f64)>> = Mutex::new(Vec::new());

/// quality(t) = q (1 - e^(-s t)) + b e^(-t / 3), with the final quality
/// q = 1 - (lr - 0.3)^2 - (wd - 0.6)^2, a speed s = 0.3 + 0.3 wd + 0.2 lr and an early boost
/// b = 0.05 lr that fades: fast learners and high learning rates look better early than
/// they end, so the ranking changes over time.
#[derive(Debug)]
#[trainable(config = Curve, metrics = Quality)]
pub struct CurveModel {
    t: u64,
    #[checkpoint(skip)]
    q: f64,
    #[checkpoint(skip)]
    s: f64,
    #[checkpoint(skip)]
    b: f64,
}

impl Trainable for CurveModel {
    fn setup(c: &Curve, _ctx: &TrialContext) -> TrainResult<Self> {
        let q = 1.0 - (c.lr - 0.3).powi(2) - (c.wd - 0.6).powi(2);
        Ok(CurveModel { t: 0, q, s: 0.3 + 0.3 * c.wd + 0.2 * c.lr, b: 0.05 * c.lr })
    }

    fn step(&mut self) -> TrainResult<Quality> {
        self.t += 1;
        let t = self.t as f64;
        let quality = self.q * (1.0 - (-self.s * t).exp()) + self.b * (-t / 3.0).exp();
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut trace) = TRACE.lock() {
            if trace.last().is_none_or(|(_, best)| quality > *best) {
                trace.push((n, quality));
            }
        }
        Ok(Quality { quality })
    }
}

fn reset() {
    STEPS.store(0, Ordering::SeqCst);
    if let Ok(mut t) = TRACE.lock() {
        t.clear();
    }
}

fn trace() -> (u64, Vec<(u64, f64)>) {
    (STEPS.load(Ordering::SeqCst), TRACE.lock().map(|t| t.clone()).unwrap_or_default())
}

fn tuner(seed: u64, samples: usize) -> Tuner<CurveModel> {
    Tuner::<CurveModel>::new()
        .num_samples(samples)
        .total_cpus(1.0)
        .file_logging(false)
        .pausing(Pausing::Memory)
        .seed(seed)
        .verbose(0)
}

/// Iterations until the trace first reaches `target`.
fn reach(trace: &[(u64, f64)], target: f64) -> Option<u64> {
    trace.iter().find(|(_, q)| *q >= target - 1e-12).map(|(n, _)| *n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

type Run = (u64, Vec<(u64, f64)>);

fn multifidelity() -> Result<(), Box<dyn std::error::Error>> {
    let full = (RANDOM_TRIALS as u64 * MAX_T) as f64;
    let mut rows = Vec::new();
    let mut plot: Vec<(&str, Run)> = Vec::new();
    let (mut asha_frac, mut hb_frac) = (Vec::new(), Vec::new());
    let (mut asha_hit, mut hb_hit) = (0, 0);
    for seed in 0..SEEDS {
        reset();
        tuner(seed, RANDOM_TRIALS).stop(Stop::iterations(MAX_T)).run()?;
        let random = trace();
        let target = random.1.last().map_or(0.0, |x| x.1);

        reset();
        let asha = Asha::builder(Quality::QUALITY, Mode::Max)
            .max_t(MAX_T as f64)
            .grace_period(1.0)
            .reduction_factor(3.0)
            .build()?;
        tuner(seed, 256).scheduler(asha).run()?;
        let asha = trace();

        reset();
        let hb = HyperBand::builder(Quality::QUALITY, Mode::Max).max_t(MAX_T as f64).build()?;
        tuner(seed, 143).scheduler(hb).run()?;
        let hb = trace();

        let a = reach(&asha.1, target);
        let h = reach(&hb.1, target);
        asha_hit += usize::from(a.is_some());
        hb_hit += usize::from(h.is_some());
        // A run that never reaches the target counts as the whole random-search budget.
        asha_frac.push(a.map_or(1.0, |n| n as f64 / full));
        hb_frac.push(h.map_or(1.0, |n| n as f64 / full));
        rows.push(format!(
            "| {seed} | {target:.4} | {} | {} | {} | {} |",
            a.map_or("not reached".into(), |n| n.to_string()),
            asha.0,
            h.map_or("not reached".into(), |n| n.to_string()),
            hb.0
        ));
        if seed == 0 {
            plot = vec![("random search", random), ("ASHA", asha), ("HyperBand", hb)];
        }
    }
    println!(
        "multifidelity: {SEEDS} seeds, random search {RANDOM_TRIALS} trials x {MAX_T} = {full} iterations"
    );
    println!(
        "| seed | random search final best | ASHA iterations to reach it | ASHA total | HyperBand iterations to reach it | HyperBand total |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("{r}");
    }
    let (ma, mh) = (median(asha_frac), median(hb_frac));
    println!(
        "ASHA: reached in {asha_hit}/{SEEDS} seeds; median {:.1}% of random search's iterations (saved {:.1}%)",
        100.0 * ma,
        100.0 * (1.0 - ma)
    );
    println!(
        "HyperBand: reached in {hb_hit}/{SEEDS} seeds; median {:.1}% of random search's iterations (saved {:.1}%)",
        100.0 * mh,
        100.0 * (1.0 - mh)
    );
    let svg = svg_plot(&plot, full);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/schedulers_multifidelity.svg");
    std::fs::write(&path, svg)?;
    println!("plot: {}", path.display());
    Ok(())
}

/// Best so far against training iterations, as step lines.
fn svg_plot(series: &[(&str, Run)], x_max: f64) -> String {
    let (w, h, m) = (640.0, 400.0, 50.0);
    let y_min = series
        .iter()
        .flat_map(|(_, (_, t))| t.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .max(0.0);
    let y_max = series.iter().flat_map(|(_, (_, t))| t.iter().map(|p| p.1)).fold(0.0, f64::max);
    let sx = |x: f64| m + (w - 2.0 * m) * x / x_max;
    let sy = |y: f64| h - m - (h - 2.0 * m) * (y - y_min) / (y_max - y_min).max(1e-9);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(
        s,
        "<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - m,
        w - m,
        h - m
    );
    let _ =
        writeln!(s, "<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>", h - m);
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">training iterations (random search total {x_max})</text>",
        w / 2.0,
        h - 15.0
    );
    let _ = writeln!(
        s,
        "<text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">best quality so far</text>",
        h / 2.0,
        h / 2.0
    );
    for k in 0..=4 {
        let x = x_max * f64::from(k) / 4.0;
        let y = y_min + (y_max - y_min) * f64::from(k) / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x:.0}</text>",
            sx(x),
            h - m + 15.0
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{y:.2}</text>",
            m - 4.0,
            sy(y) + 4.0
        );
    }
    // The target: random search's final best.
    if let Some((_, (_, t))) = series.first() {
        if let Some((_, q)) = t.last() {
            let _ = writeln!(
                s,
                "<line x1=\"{m}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#999999\" stroke-dasharray=\"4 4\"/>",
                w - m,
                y = sy(*q)
            );
        }
    }
    let colors = ["#555555", "#d62728", "#1f77b4"];
    for (k, (name, (total, t))) in series.iter().enumerate() {
        let mut pts = String::new();
        let mut last = None;
        for (n, q) in t {
            if let Some(prev) = last {
                let _ = write!(pts, "{:.1},{:.1} ", sx(*n as f64), sy(prev));
            }
            let _ = write!(pts, "{:.1},{:.1} ", sx(*n as f64), sy(*q));
            last = Some(*q);
        }
        if let Some(prev) = last {
            let _ = write!(pts, "{:.1},{:.1}", sx((*total as f64).min(x_max)), sy(prev));
        }
        let c = colors[k % colors.len()];
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{pts}\"/>"
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{c}\">{name}</text>",
            w - m - 120.0,
            m + 15.0 * (k as f64 + 1.0)
        );
    }
    s.push_str("</svg>\n");
    s
}

// ---------------------------------------------------------------- PBT toy problem

search_space! {
    /// The surrogate's weights.
    pub struct H {
        h0: f64 = uniform(0.0, 1.0),
        h1: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Q {
    q: f64,
}

/// Gradient ascent on 1.2 - (h0 t0^2 + h1 t1^2) from t = (0.9, 0.9); reports the true Q.
#[derive(Debug)]
#[trainable(config = H, metrics = Q)]
pub struct Toy {
    t0: f64,
    t1: f64,
    #[checkpoint(skip)]
    h0: f64,
    #[checkpoint(skip)]
    h1: f64,
}

const ETA: f64 = 0.02;
const PBT_STEPS: u64 = 200;

impl Trainable for Toy {
    fn setup(h: &H, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Toy { t0: 0.9, t1: 0.9, h0: h.h0, h1: h.h1 })
    }
    fn step(&mut self) -> TrainResult<Q> {
        self.t0 -= ETA * 2.0 * self.h0 * self.t0;
        self.t1 -= ETA * 2.0 * self.h1 * self.t1;
        Ok(Q { q: 1.2 - (self.t0 * self.t0 + self.t1 * self.t1) })
    }
    fn reset_config(&mut self, h: &H, _ctx: &TrialContext) -> TrainResult<bool> {
        *self = Toy { t0: 0.9, t1: 0.9, h0: h.h0, h1: h.h1 };
        Ok(true)
    }
}

/// The paper's population: h = (1, 0) and (0, 1).
#[derive(Debug)]
struct Population(usize);

impl Searcher<H, Q> for Population {
    fn suggest(&mut self, _trial: TrialId) -> Suggestion<H> {
        let configs = [H { h0: 1.0, h1: 0.0 }, H { h0: 0.0, h1: 1.0 }];
        let c = configs.get(self.0).cloned();
        self.0 += 1;
        c.map_or(Suggestion::Finished, Suggestion::Config)
    }
}

fn pbt() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut fixed_q = Vec::new();
    let mut pbt_q = Vec::new();
    let mut pb2_q = Vec::new();
    let best = |a: &tune_runtime::Analysis<H, Q>| {
        a.trials()
            .iter()
            .filter_map(|t| t.score(Q::Q, Mode::Max, Scope::Last))
            .fold(f64::NEG_INFINITY, f64::max)
    };
    println!(
        "| seed | best fixed Q | PBT best Q (1.2 - Q) | PB2 best Q (1.2 - Q) |\n|---|---|---|---|"
    );
    for seed in 0..SEEDS {
        let base = || {
            Tuner::<Toy>::new()
                .searcher(Population(0))
                .stop(Stop::iterations(PBT_STEPS))
                .total_cpus(2.0)
                .local_dir(dir.path())
                .seed(seed)
                .verbose(0)
        };
        let fixed = base().name(format!("fixed{seed}")).scheduler(FifoScheduler::new()).run()?;
        let best_fixed = best(&fixed);
        let pbt = Pbt::<H, Q>::builder(Q::Q, Mode::Max)
            .perturbation_interval(4.0)
            .quantile_fraction(0.5)
            // Explore: perturb each weight by uniform noise in [-0.1, 0.1], kept in [0, 1].
            .explore(|h: &mut H, rng| {
                use rand::Rng;
                h.h0 = (h.h0 + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0);
                h.h1 = (h.h1 + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0);
            })
            .build()?;
        let run = base().name(format!("pbt{seed}")).scheduler(pbt).reuse_actors(true).run()?;
        let best_pbt = best(&run);
        // PB2: the same population, interval and quantile; the bandit chooses both weights
        // in [0, 1] (their search-space bounds).
        let pb2 = Pb2::<H, Q>::builder(Q::Q, Mode::Max)
            .perturbation_interval(4.0)
            .quantile_fraction(0.5)
            .build()?;
        let run = base().name(format!("pb2_{seed}")).scheduler(pb2).reuse_actors(true).run()?;
        let best_pb2 = best(&run);
        println!(
            "| {seed} | {best_fixed:.4} | {best_pbt:.4} ({:.1e}) | {best_pb2:.4} ({:.1e}) |",
            1.2 - best_pbt,
            1.2 - best_pb2
        );
        fixed_q.push(best_fixed);
        pbt_q.push(best_pbt);
        pb2_q.push(best_pb2);
    }
    let wins = pbt_q.iter().zip(&fixed_q).filter(|(p, f)| p > f).count();
    let pb2_wins = pb2_q.iter().zip(&pbt_q).filter(|(b, p)| b > p).count();
    println!(
        "PBT toy: median best Q {:.4} (PBT) vs {:.4} (fixed h); PBT higher in {wins}/{SEEDS} seeds; optimum 1.2",
        median(pbt_q.clone()),
        median(fixed_q)
    );
    println!(
        "PB2 toy: median best Q {:.4} (PB2) vs {:.4} (PBT); median 1.2 - Q {:.1e} vs {:.1e}; PB2 higher in {pb2_wins}/{SEEDS} seeds",
        median(pb2_q.clone()),
        median(pbt_q.clone()),
        1.2 - median(pb2_q),
        1.2 - median(pbt_q)
    );
    Ok(())
}

// ---------------------------------------------------------------- driver overhead

#[derive(Metrics, Debug, Clone)]
pub struct Flat {
    score: f64,
}

/// A step that does nothing and always reports 1.0: no ASHA cutoff ever stops it, so both
/// schedulers see exactly the same results.
#[derive(Debug)]
#[trainable(config = Curve, metrics = Flat)]
pub struct Noop {
    t: u64,
}

impl Trainable for Noop {
    fn setup(_c: &Curve, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Noop { t: 0 })
    }
    fn step(&mut self) -> TrainResult<Flat> {
        self.t += 1;
        Ok(Flat { score: 1.0 })
    }
}

fn overhead() -> Result<(), Box<dyn std::error::Error>> {
    const TRIALS: usize = 200;
    const ITERS: u64 = 500;
    let results = (TRIALS as u64 * ITERS) as f64;
    // `batched`: iteration-only stop criterion, so the runner may run several steps per
    // task (FIFO always, ASHA up to the next rung). Otherwise a closure criterion that the
    // runner cannot see through: one step per task for both.
    let once = |asha: bool, batched: bool| -> Result<f64, Box<dyn std::error::Error>> {
        let stop = if batched {
            Stop::iterations(ITERS)
        } else {
            Stop::when(|r: &tune_runtime::TrialResult<Flat>| r.training_iteration >= ITERS)
        };
        let t = Tuner::<Noop>::new()
            .num_samples(TRIALS)
            .stop(stop)
            .total_cpus(2.0)
            .file_logging(false)
            .seed(1)
            .verbose(0);
        let t = if asha {
            t.scheduler(
                Asha::builder(Flat::SCORE, Mode::Max)
                    .max_t(ITERS as f64)
                    .grace_period(1.0)
                    .reduction_factor(2.0)
                    .brackets(3)
                    .build()?,
            )
        } else {
            t
        };
        let start = Instant::now();
        t.run()?;
        Ok(start.elapsed().as_secs_f64() * 1e9 / results)
    };
    // `batched`: an iteration-only stop criterion, so the runner may run several steps per
    // task (FIFO always, ASHA up to the next rung). Otherwise a closure criterion that the
    // runner cannot see through: one step per task for both. FIFO and ASHA runs alternate
    // so that load from other processes hits both alike; the best of 9 counts.
    for batched in [true, false] {
        let (mut fifo, mut asha) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..9 {
            fifo = fifo.min(once(false, batched)?);
            asha = asha.min(once(true, batched)?);
        }
        println!(
            "overhead ({}): {TRIALS} trials x {ITERS} results, best of 9: FIFO {fifo:.0} ns/result, ASHA {asha:.0} ns/result (ratio {:.2})",
            if batched { "batched steps" } else { "one step per task" },
            asha / fifo
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let all = which.is_empty();
    let want = |name: &str| all || which.iter().any(|w| w == name);
    if want("multifidelity") {
        multifidelity()?;
    }
    if want("pbt") {
        pbt()?;
    }
    if want("overhead") {
        overhead()?;
    }
    Ok(())
}
