//! Population based training end to end: checkpoint-based exploits with several trials at
//! once, the exploit log, instance reuse, and the replay of a logged schedule; PB2's
//! exploits through the same machinery.

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialStatus,
    scheduler::{Mutation, PBT_LOG_FILE, Pb2, Pbt, PbtLogEntry, PbtReplay, Scheduler},
    storage::{JOURNAL_FILE, Record, read_journal},
};

search_space! {
    /// A learning rate.
    pub struct Rate {
        rate: f64 = uniform(0.01, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Acc {
    accuracy: f64,
    /// The instance's own step count (part of the checkpointed state).
    steps: f64,
    /// How often `reset_config` switched this instance to another config.
    resets: f64,
}

// `resets` tells a reused instance from a fresh one on purpose, which the generated
// reset_config check would reject.
#[trainable(config = Rate, metrics = Acc, test = false)]
pub struct Learner {
    steps: u64,
    acc: f64,
    #[checkpoint(skip)]
    rate: f64,
    #[checkpoint(skip)]
    resets: u64,
}

impl Trainable for Learner {
    fn setup(config: &Rate, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Learner { steps: 0, acc: 0.0, rate: config.rate, resets: 0 })
    }

    fn step(&mut self) -> TrainResult<Acc> {
        self.steps += 1;
        self.acc += self.rate * (1.0 - self.acc) * 0.1;
        Ok(Acc { accuracy: self.acc, steps: self.steps as f64, resets: self.resets as f64 })
    }

    fn reset_config(&mut self, config: &Rate, _ctx: &TrialContext) -> TrainResult<bool> {
        self.rate = config.rate;
        self.steps = 0;
        self.acc = 0.0;
        self.resets += 1;
        Ok(true)
    }
}

fn pbt() -> Pbt<Rate, Acc> {
    Pbt::builder(Acc::ACCURACY, Mode::Max)
        .perturbation_interval(2.0)
        .quantile_fraction(0.25)
        .mutate("rate", Mutation::perturb())
        .build()
        .unwrap()
}

fn run(dir: &std::path::Path, reuse: bool) -> Analysis<Rate, Acc> {
    run_with(dir, reuse, pbt())
}

fn run_with(
    dir: &std::path::Path,
    reuse: bool,
    scheduler: impl Scheduler<Rate, Acc> + 'static,
) -> Analysis<Rate, Acc> {
    Tuner::<Learner>::new()
        .num_samples(4)
        .scheduler(scheduler)
        .stop(Stop::iterations(12))
        .total_cpus(4.0)
        // Two at a time: trials 2 and 3 reach their first perturbation after 0 and 1 have
        // ended, below them, so they exploit whatever the timing. (With all four at once,
        // a trial behind the others at every boundary is rarely the worst there yet, and
        // the run may have no exploit at all.)
        .max_concurrent_trials(2)
        .reuse_actors(reuse)
        .local_dir(dir)
        .name("pbt")
        .seed(21)
        .verbose(0)
        .run()
        .unwrap()
}

fn log(dir: &std::path::Path) -> Vec<PbtLogEntry> {
    std::fs::read_to_string(dir.join("pbt").join(PBT_LOG_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn exploits_copy_the_source_checkpoint_and_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), false);
    assert_eq!(a.count(TrialStatus::Terminated), 4);
    let entries = log(dir.path());
    assert!(!entries.is_empty(), "the worst trial exploits at the first boundaries");
    let journal = read_journal(&dir.path().join("pbt").join(JOURNAL_FILE)).unwrap();
    let exploits: Vec<&Record> =
        journal.iter().filter(|r| matches!(r, Record::Exploit { .. })).collect();
    assert_eq!(exploits.len(), entries.len(), "the journal holds every exploit too");
    for e in &entries {
        assert_ne!(e.target, e.source);
        assert_eq!(e.source_iteration % 2, 0, "sources are checkpointed at the boundaries");
        let rate = |v: &serde_json::Value| v["rate"].as_f64().unwrap();
        let ratio = rate(&e.new_config) / rate(&e.source_config);
        assert!(
            (ratio - 0.8).abs() < 1e-9 || (ratio - 1.2).abs() < 1e-9 || rate(&e.new_config) <= 1.0,
            "perturbed or resampled: {e:?}"
        );
        // The copied checkpoint is in the target's directory.
        let t = &a.trials()[e.target as usize];
        assert!(
            t.dir().unwrap().join(format!("checkpoint_{:06}", e.source_iteration)).is_dir(),
            "{e:?}"
        );
    }
    // After an exploit the target goes on from the copied state: its instance counts the
    // source's steps.
    for t in a.trials() {
        for r in t.results() {
            assert_eq!(r.get(Acc::STEPS), r.training_iteration() as f64, "trial {}", t.id());
            assert_eq!(r.get(Acc::RESETS), 0.0, "no reuse: fresh instances");
        }
    }
    // The analysis holds each trial's final config, in memory and from disk.
    let last = entries.last().unwrap();
    let target = &a.trials()[last.target as usize];
    assert_eq!(target.config().to_json_value(), last.new_config);
    let loaded = Analysis::<Rate, Acc>::from_dir(dir.path().join("pbt")).unwrap();
    assert_eq!(loaded.trials()[last.target as usize].config(), target.config());
}

#[test]
fn with_reuse_the_instance_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), true);
    let entries = log(dir.path());
    assert!(!entries.is_empty());
    let e = &entries[0];
    let t = &a.trials()[e.target as usize];
    // The first exploit of all is the target's first: its history up to then is 1..=n.
    let after: Vec<f64> =
        t.results().skip(e.target_iteration as usize).map(|r| r.get(Acc::RESETS)).collect();
    assert!(after[0] >= 1.0, "reset_config was called on the kept instance");
    for t in a.trials() {
        for r in t.results() {
            assert_eq!(r.get(Acc::STEPS), r.training_iteration() as f64, "state restored");
        }
    }
}

#[test]
fn a_logged_schedule_replays_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), false);
    let entries = log(dir.path());
    let target = a.trials()[entries.last().unwrap().target as usize].id();
    let original = a.trial(target).unwrap();
    let replay =
        PbtReplay::<Rate>::from_log(dir.path().join("pbt").join(PBT_LOG_FILE), target).unwrap();
    assert!(!replay.changes().is_empty());
    let overrides = replay.initial_config().to_json_value().to_string();
    let replayed = Tuner::<Learner>::new()
        .num_samples(1)
        .config_overrides_json(overrides)
        .scheduler(replay)
        .stop(Stop::iterations(original.last_result().unwrap().training_iteration()))
        .local_dir(dir.path())
        .name("replay")
        .verbose(0)
        .run()
        .unwrap();
    let r = replayed.trials()[0].last_result().unwrap();
    let o = original.last_result().unwrap();
    assert_eq!(r.training_iteration(), o.training_iteration());
    assert_eq!(r.get(Acc::ACCURACY), o.get(Acc::ACCURACY), "same rates at the same steps");
    assert_eq!(replayed.trials()[0].config(), original.config());
}

/// Checkpoints on a disk that refuses the `n`-th write (counted from 1) with ENOSPC.
#[derive(Debug)]
struct RefusesOnce {
    n: usize,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl tune_runtime::storage::CheckpointStore for RefusesOnce {
    fn begin(&self, dir: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
        let k = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if k == self.n {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        tune_runtime::storage::LocalCheckpoints.begin(dir)
    }
    fn commit(&self, scratch: &std::path::Path, dir: &std::path::Path) -> std::io::Result<()> {
        tune_runtime::storage::LocalCheckpoints.commit(scratch, dir)
    }
    fn delete(&self, dir: &std::path::Path) -> std::io::Result<()> {
        tune_runtime::storage::LocalCheckpoints.delete(dir)
    }
}

/// A checkpoint write the storage refuses stops the run (resumable), whether it is a
/// trial's own checkpoint or the copy of a source's checkpoint for an exploit: the copy
/// must not fail only the exploit and let the run go on as if nothing happened.
#[test]
fn a_refused_checkpoint_or_exploit_copy_stops_the_run_which_then_resumes() {
    for n in 1..=40 {
        let dir = tempfile::tempdir().unwrap();
        let tuner = || {
            Tuner::<Learner>::new()
                .num_samples(4)
                .scheduler(pbt())
                .stop(Stop::iterations(12))
                .total_cpus(4.0)
                .local_dir(dir.path())
                .name("pbt")
                .seed(21)
                .verbose(0)
        };
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let store = RefusesOnce { n, calls: calls.clone() };
        match tuner().checkpoint_store(store).run() {
            Err(RunError::Logging { path, .. }) => {
                assert!(path.to_string_lossy().contains("checkpoint_"), "{}", path.display());
            }
            Err(other) => panic!("write {n}: {other}"),
            Ok(a) => {
                // Only when the run made fewer than `n` writes.
                let made = calls.load(std::sync::atomic::Ordering::SeqCst);
                assert!(made < n, "write {n} of {made} was refused and the run went on");
                assert_eq!(a.count(TrialStatus::Terminated), 4);
                continue;
            }
        }
        let partial = Analysis::<Rate, Acc>::from_dir(dir.path().join("pbt")).unwrap();
        assert_eq!(partial.count(TrialStatus::Error), 0, "write {n}");
        let a = tuner().resume(true).run().unwrap();
        assert_eq!(a.count(TrialStatus::Terminated), 4, "write {n}");
        for t in a.trials() {
            // A trial that exploits a finished source goes on from the source's iteration,
            // so it may end past 12.
            assert!(t.last_result().unwrap().training_iteration() >= 12, "write {n}");
        }
    }
}

#[test]
fn pb2_exploits_copy_checkpoints_and_choose_rates_within_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let pb2 = Pb2::<Rate, Acc>::builder(Acc::ACCURACY, Mode::Max)
        .perturbation_interval(2.0)
        .quantile_fraction(0.25)
        .build()
        .unwrap();
    let a = run_with(dir.path(), false, pb2);
    assert_eq!(a.count(TrialStatus::Terminated), 4);
    let entries = log(dir.path());
    assert!(!entries.is_empty(), "the worst trial exploits at the first boundaries");
    let rate = |v: &serde_json::Value| v["rate"].as_f64().unwrap();
    for e in &entries {
        assert_eq!(e.source_iteration % 2, 0, "sources are checkpointed at the boundaries");
        let r = rate(&e.new_config);
        assert!((0.01..=1.0).contains(&r), "the space's bounds: {e:?}");
        let t = &a.trials()[e.target as usize];
        assert!(t.dir().unwrap().join(format!("checkpoint_{:06}", e.source_iteration)).is_dir());
    }
    // Not a copy, nor PBT's perturbation: the bandit picks new rates (not 1x, 0.8x or 1.2x
    // the source's). Not every exploit: when the source already sits at the bound the
    // bandit favours, the pick can equal the source's rate.
    assert!(
        entries.iter().any(|e| {
            let ratio = rate(&e.new_config) / rate(&e.source_config);
            [1.0, 0.8, 1.2].iter().all(|f| (ratio - f).abs() > 1e-9)
        }),
        "{entries:?}"
    );
    for t in a.trials() {
        for r in t.results() {
            assert_eq!(r.get(Acc::STEPS), r.training_iteration() as f64, "state restored");
        }
    }
}
