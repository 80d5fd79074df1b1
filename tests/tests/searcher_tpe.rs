//! Model-based searchers through the real runner, with several trials at once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialStatus,
    searcher::{ConcurrencyLimiter, GpBo, RandomSearch, Searcher, Tpe},
};

search_space! {
    pub struct Quad {
        x: f64 = uniform(-5.0, 5.0),
        lr: f64 = loguniform(1e-4, 1.0),
        arch: Arch,
    }
    pub enum Arch {
        Small,
        Wide { width: u32 = randint(8, 64) },
    }
}

#[derive(Metrics, Debug, Clone)]
struct Out {
    loss: f64,
}

static RUNNING: AtomicUsize = AtomicUsize::new(0);
static MAX_RUNNING: AtomicUsize = AtomicUsize::new(0);

fn loss(c: &Quad) -> f64 {
    let arch = match c.arch {
        Arch::Small => 1.0,
        Arch::Wide { width } => ((f64::from(width) - 40.0) / 20.0).powi(2),
    };
    (c.x - 1.0).powi(2) + (c.lr.log10() + 2.0).powi(2) + arch
}

/// Reports the loss three times, a few milliseconds apart, so trials overlap.
#[trainable(test = false)]
fn quadratic(config: &Quad, session: &mut Session<Out>) -> TrainResult<()> {
    let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
    MAX_RUNNING.fetch_max(now, Ordering::SeqCst);
    let mut result = Ok(());
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(3));
        let noise = 0.01 * f64::from(2 - i);
        if let Err(e) = session.report(Out { loss: loss(config) + noise }) {
            result = Err(e);
            break;
        }
    }
    RUNNING.fetch_sub(1, Ordering::SeqCst);
    result.map_err(Into::into)
}

fn run(
    searcher: impl Searcher<Quad, Out> + 'static,
    n: usize,
    seed: u64,
) -> tune_runtime::Analysis<Quad, Out> {
    let dir = tempfile::tempdir().unwrap();
    Tuner::<Quadratic>::new()
        .local_dir(dir.path())
        .name("exp")
        .seed(seed)
        .verbose(0)
        .total_cpus(4.0)
        .num_samples(n)
        .metric(Out::LOSS, Mode::Min)
        .searcher(searcher)
        .run()
        .unwrap()
}

fn best(a: &tune_runtime::Analysis<Quad, Out>) -> f64 {
    a.best_result(Out::LOSS, Mode::Min, Scope::Last).unwrap().get(Out::LOSS)
}

/// Median final loss of the last `n` trials.
fn median_loss(a: &tune_runtime::Analysis<Quad, Out>, n: usize) -> f64 {
    let trials = a.trials();
    let mut v: Vec<f64> = trials[trials.len() - n..]
        .iter()
        .map(|t| t.last_result().unwrap().get(Out::LOSS))
        .collect();
    v.sort_by(f64::total_cmp);
    v[n / 2]
}

// One test function, so the global counters see one experiment at a time.
#[test]
fn tpe_and_gp_search_through_the_runner_with_concurrent_trials() {
    MAX_RUNNING.store(0, Ordering::SeqCst);
    let tpe = run(Tpe::new().n_startup(8), 48, 1);
    assert_eq!(tpe.count(TrialStatus::Terminated), 48);
    let max = MAX_RUNNING.load(Ordering::SeqCst);
    assert!(max > 1, "trials never overlapped (max {max})");
    assert!(max <= 4, "{max} trials at once on 4 CPUs");
    let configs: BTreeSet<String> =
        tpe.trials().iter().map(|t| format!("{:?}", t.config())).collect();
    assert_eq!(configs.len(), 48, "the constant liar should keep parallel configs apart");
    for t in tpe.trials() {
        t.config().validate().unwrap();
    }

    // The model's suggestions (the last 24 trials) are better than random ones.
    let random = run(RandomSearch::new(), 48, 1);
    let late = median_loss(&tpe, 24);
    assert!(late < median_loss(&random, 24), "TPE {late} vs random {}", median_loss(&random, 24));
    assert!(best(&tpe) < 1.0, "TPE best {}", best(&tpe));

    let gp = run(GpBo::new().n_startup(6).n_candidates(128), 24, 2);
    assert_eq!(gp.count(TrialStatus::Terminated), 24);

    MAX_RUNNING.store(0, Ordering::SeqCst);
    let limited = run(ConcurrencyLimiter::new(Tpe::new(), 2), 12, 3);
    assert_eq!(limited.count(TrialStatus::Terminated), 12);
    assert!(MAX_RUNNING.load(Ordering::SeqCst) <= 2);
}
