//! Stop criteria stop trials at the right iteration; the experiment's time budget.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use support::{ITER_SEEN, SCORE, Score, Toy, new_probe, overrides};
use tune_runtime::{RunError, Stop, TrialResult, TrialStatus, Tuner, trial::Auto};

fn tuner(extra: &str) -> (tempfile::TempDir, Tuner<Toy>) {
    let (tag, _) = new_probe();
    let dir = tempfile::tempdir().unwrap();
    let t = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .seed(5)
        .verbose(0)
        .total_cpus(2.0)
        .config_overrides_json(overrides(tag, extra));
    (dir, t)
}

fn iterations(a: &tune_runtime::Analysis<support::Cfg, Score>) -> Vec<usize> {
    a.trials().iter().map(|t| t.num_results()).collect()
}

#[test]
fn iterations_stop_at_exactly_n() {
    let (_d, t) = tuner("");
    let a = t.stop(Stop::iterations(7)).run().unwrap();
    assert_eq!(iterations(&a), vec![7, 7, 7]);
    for t in a.trials() {
        assert_eq!(t.last_result().unwrap().training_iteration(), 7);
        assert_eq!(t.status(), TrialStatus::Terminated);
    }
}

#[test]
fn metric_threshold_stops_at_the_first_result_reaching_it() {
    // score = x * k + iteration, x < 1: the score first reaches 5 at iteration 5 - floor(x*k)
    // or so; check against the recorded results instead of guessing.
    let (_d, t) = tuner("");
    let a = t.stop(Stop::at_least(SCORE, 5.0).or(Stop::iterations(100))).run().unwrap();
    for t in a.trials() {
        let scores: Vec<f64> = t.results().map(|r| r.get(SCORE)).collect();
        assert!(*scores.last().unwrap() >= 5.0, "{scores:?}");
        assert!(scores[..scores.len() - 1].iter().all(|s| *s < 5.0), "{scores:?}");
    }
    let (_d, t) = tuner("");
    let a = t
        .stop(Stop::at_most(ITER_SEEN, 0.0).or(Stop::at_least(Auto::TrainingIteration, 4.0)))
        .run()
        .unwrap();
    assert_eq!(iterations(&a), vec![4, 4, 4]);
}

#[test]
fn closures_and_combinations() {
    let (_d, t) = tuner("");
    let stop = Stop::when(|r: &TrialResult<Score>| {
        r.training_iteration == 3 && r.metrics.iter_seen == 3.0
    });
    assert_eq!(iterations(&t.stop(stop).run().unwrap()), vec![3, 3, 3]);
    // `and`: both must hold.
    let (_d, t) = tuner("");
    let stop = Stop::iterations(2).and(Stop::at_least(ITER_SEEN, 6.0));
    assert_eq!(iterations(&t.stop(stop).run().unwrap()), vec![6, 6, 6]);
    // `or`: the first that holds.
    let (_d, t) = tuner("");
    let stop = Stop::iterations(9).or(Stop::at_least(ITER_SEEN, 2.0));
    assert_eq!(iterations(&t.stop(stop).run().unwrap()), vec![2, 2, 2]);
    // Wall time per trial.
    let (_d, t) = tuner("\"sleep_ms\": 5");
    let stop = Stop::time_total(Duration::from_millis(12)).or(Stop::iterations(50));
    let analysis = t.stop(stop).run().unwrap();
    for trial in analysis.trials() {
        // The trial stops at the first result whose total time reaches 12 ms, however
        // long each 5 ms step really took on a loaded machine.
        let times: Vec<f64> = trial.results().map(|r| r.time_total_s()).collect();
        let (last, before) = times.split_last().unwrap();
        assert!(*last >= 0.012, "stopped at {last} s: {times:?}");
        assert!(before.iter().all(|t| *t < 0.012), "went on past 12 ms: {times:?}");
        assert!(times.len() < 50, "{times:?}");
    }
}

#[test]
fn named_criteria_are_checked_before_the_first_trial() {
    let (d, t) = tuner("");
    let err = t.stop(Stop::named_at_least("accuracy", 0.9)).run().unwrap_err();
    assert!(matches!(err, RunError::UnknownMetric(_)));
    let msg = err.to_string();
    assert!(msg.contains("`accuracy`") && msg.contains("score, iter_seen"), "{msg}");
    assert!(!d.path().join("exp").exists(), "nothing was written");
    let (_d, t) = tuner("");
    let a = t.stop(Stop::named_at_least("iter_seen", 2.0)).run().unwrap();
    assert_eq!(iterations(&a), vec![2, 2, 2]);
}

#[test]
fn time_budget_ends_the_experiment() {
    // The trials have no stop criterion and never end by themselves: only the budget can end
    // this run.
    let (_d, t) = tuner("\"sleep_ms\": 2");
    let t0 = Instant::now();
    let a = t.num_samples(50).time_budget(Duration::from_millis(60)).run().unwrap();
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(60), "ended before its budget: {took:?}");
    // A generous bound (a loaded 2-core CI machine): without the budget the run never ends.
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(a.trials().len() < 50, "the budget stopped trial creation: {}", a.trials().len());
    assert!(a.trials().iter().all(|t| t.status() == TrialStatus::Terminated));
    assert!(a.trials().iter().any(|t| t.num_results() > 3), "trials ran until the budget");
}
