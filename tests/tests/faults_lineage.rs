//! Rollbacks follow a trial's checkpoint lineage, not "the highest iteration": after a
//! trial exploits a source checkpoint at a *lower* iteration than its own (population
//! based training), a resume and a retry both continue from the exploit's checkpoint,
//! with the post-exploit config, and keep every row the trial had recorded.
//!
//! A scheduler of this file makes the exploit deterministic: trial 0 (slow) is
//! checkpointed at iterations 4 and 8 and exploits trial 1 (fast) at its iteration 8;
//! trial 1's only checkpoint is at iteration 3. So trial 0 owns `checkpoint_000004` and
//! `checkpoint_000008` and goes on from the copy `checkpoint_000003`: rows 1..=8 of its first config,
//! then 4..=12 of the second.
#![allow(clippy::unwrap_used)]

use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use tune_runtime::prelude::*;
use tune_runtime::{
    TrialId, TrialResult,
    scheduler::{Decision, Exploit, Scheduler},
    storage::{FileJournal, JOURNAL_FILE, JournalStore, Record, read_journal},
};

search_space! {
    pub struct Knob {
        x: f64 = uniform(0.0, 1.0),
        k: i64 = grid([1, 2]),
        /// 0 before the exploit (an override), 1 after.
        epoch: i64 = choice([0, 1]),
        /// Fail once, at the first step after the exploit (an override).
        fail_after_exploit: bool = choice([false, true]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Walk {
    value: f64,
    /// The instance's own step count: part of its checkpointed state.
    steps: f64,
    epoch: f64,
}

#[trainable(config = Knob, metrics = Walk, test = false)]
pub struct Walker {
    steps: u64,
    acc: f64,
    #[checkpoint(skip)]
    cfg: Knob,
    #[checkpoint(skip)]
    dir: Option<std::path::PathBuf>,
}

impl Trainable for Walker {
    fn setup(config: &Knob, ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Walker { steps: 0, acc: 0.0, cfg: config.clone(), dir: ctx.trial_dir.clone() })
    }

    fn step(&mut self) -> TrainResult<Walk> {
        if self.cfg.k == 1 {
            // Trial 0 is slow, so that trial 1 has its checkpoint when trial 0 exploits it.
            std::thread::sleep(Duration::from_millis(15));
        }
        if self.cfg.fail_after_exploit && self.cfg.epoch == 1 {
            let marker = self.dir.as_ref().unwrap().join("failed-once");
            if !marker.exists() {
                std::fs::write(&marker, "")?;
                return Err(TrainError::msg("injected failure after the exploit"));
            }
        }
        self.steps += 1;
        self.acc += self.cfg.x * (1 + self.cfg.epoch) as f64;
        Ok(Walk { value: self.acc, steps: self.steps as f64, epoch: self.cfg.epoch as f64 })
    }
}

/// Trial 0 exploits trial 1 at its iteration 8 (once trial 1 has reached its checkpoint at
/// iteration 3) with trial 1's config and `epoch = 1`.
#[derive(Default)]
struct ExploitOnce {
    configs: Vec<Knob>,
    source_ready: bool,
    done: bool,
}

impl Scheduler<Knob, Walk> for ExploitOnce {
    fn name(&self) -> &str {
        "ExploitOnce"
    }
    fn on_trial_add(&mut self, trial: TrialId, config: &Knob) {
        if self.configs.len() <= trial.index() {
            self.configs.resize(trial.index() + 1, config.clone());
        }
        self.configs[trial.index()] = config.clone();
    }
    fn on_trial_result(&mut self, trial: TrialId, r: &TrialResult<Walk>) -> Decision {
        let it = r.training_iteration;
        if trial == TrialId::new(1) && it >= 3 {
            self.source_ready = true;
        }
        if trial == TrialId::new(0) && it == 8 && !self.done && self.source_ready {
            self.done = true;
            return Decision::Exploit;
        }
        Decision::Continue
    }
    fn wants_checkpoint(&self, trial: TrialId, iteration: u64) -> bool {
        match trial.index() {
            0 => iteration == 4 || iteration == 8,
            // Asked before the step, as PBT asks at its perturbations: once the scheduler
            // has the result, it no longer wants it.
            _ => iteration == 3 && !self.source_ready,
        }
    }
    fn take_exploit(&mut self, trial: TrialId) -> Option<Exploit<Knob>> {
        let mut config = self.configs.get(1)?.clone();
        config.epoch = 1;
        (trial == TrialId::new(0)).then_some(Exploit { source: TrialId::new(1), config })
    }
    fn on_exploit_failed(&mut self, _trial: TrialId, _source: TrialId, _why: &str) {
        self.done = false;
    }
}

/// `fail`: whether trial 0 fails once after the exploit.
fn tuner(dir: &Path, fail: bool) -> Tuner<Walker> {
    Tuner::<Walker>::new()
        .num_samples(1)
        .scheduler(ExploitOnce::default())
        .stop(Stop::iterations(12))
        .total_cpus(2.0)
        .config_overrides_json(format!("{{\"epoch\": 0, \"fail_after_exploit\": {fail}}}"))
        .status_interval(Duration::from_secs(3600))
        .local_dir(dir)
        .name("exp")
        .seed(4)
        .verbose(0)
}

/// Per trial: the config, the status, and every (iteration, value, steps, epoch).
type Shape = Vec<(serde_json::Value, TrialStatus, Vec<(u64, f64, f64, f64)>)>;

fn shape(a: &Analysis<Knob, Walk>) -> Shape {
    a.trials()
        .iter()
        .map(|t| {
            let rows = t
                .results()
                .map(|r| {
                    (
                        r.training_iteration(),
                        r.get(Walk::VALUE),
                        r.get(Walk::STEPS),
                        r.get(Walk::EPOCH),
                    )
                })
                .collect();
            let mut config = t.config().to_json_value();
            config["fail_after_exploit"] = false.into();
            (config, t.status(), rows)
        })
        .collect()
}

/// The uninterrupted run, checked to hold the exploit this file is about.
fn reference() -> Shape {
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), false).run().unwrap();
    let records = read_journal(&dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
    let exploit = records.iter().find_map(|r| match r {
        Record::Exploit { trial, source, target_iteration, source_iteration, .. } => {
            Some((*trial, *source, *target_iteration, *source_iteration))
        }
        _ => None,
    });
    assert_eq!(exploit, Some((0, 1, 8, 3)), "trial 0 exploited trial 1's checkpoint_000003 at 8");
    let s = shape(&a);
    let iters: Vec<u64> = s[0].2.iter().map(|r| r.0).collect();
    assert_eq!(iters, [1, 2, 3, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    // After the exploit the instance holds trial 1's state: its own step count follows
    // the iterations.
    assert!(s[0].2.iter().all(|r| r.2 == r.0 as f64), "{:?}", s[0].2);
    s
}

/// A journal on a disk that fills up `skip` records after the first record `trigger`
/// accepts.
struct FullAfter {
    inner: FileJournal,
    trigger: fn(&[u8]) -> bool,
    skip: usize,
    after: Option<usize>,
}

fn exploit(record: &[u8]) -> bool {
    record.starts_with(b"{\"type\":\"exploit\"")
}

impl JournalStore for FullAfter {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        match &mut self.after {
            Some(0) => return Err(io::Error::from_raw_os_error(28)),
            Some(n) => *n -= 1,
            None => {}
        }
        self.inner.append(record)?;
        if self.after.is_none() && (self.trigger)(record) {
            self.after = Some(self.skip);
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
    fn read(&mut self, visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()> {
        self.inner.read(visit)
    }
}

/// A resume after the run stopped right after the exploit (or a few records later, before
/// the trial's next checkpoint) continues from the copied `checkpoint_000003` with the new
/// config, keeping rows 1..=8: the same rows as the uninterrupted run. (Before, the resume
/// rolled back to the trial's own `checkpoint_000008`, the highest iteration, under the new
/// config: a state no run can produce.)
#[test]
fn a_resume_after_an_exploit_to_a_lower_iteration_follows_the_lineage() {
    let reference = reference();
    for skip in [0, 1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let exp = dir.path().join("exp");
        std::fs::create_dir_all(&exp).unwrap();
        let inner = FileJournal::open(&exp.join(JOURNAL_FILE)).unwrap();
        let store = FullAfter { inner, trigger: exploit, skip, after: None };
        let err = tuner(dir.path(), false).journal_store(store).run().unwrap_err();
        assert!(matches!(err, RunError::Logging { .. }), "{skip}: {err}");
        let a = tuner(dir.path(), false).resume(true).run().unwrap();
        assert_eq!(shape(&a), reference, "resumed {skip} records after the exploit");
        if skip == 0 {
            // The copy is the runner's own, rewritten for trial 0: it is accepted.
            let records = read_journal(&exp.join(JOURNAL_FILE)).unwrap();
            let restored = records.iter().find_map(|r| match r {
                Record::Rollback { trial: 0, checkpoint, .. } => Some(checkpoint.clone()),
                _ => None,
            });
            let restored = restored.flatten().unwrap();
            assert!(restored.ends_with("/checkpoint_000003"), "{restored}");
        }
        let loaded = Analysis::<Knob, Walk>::from_dir(&exp).unwrap();
        assert_eq!(shape(&loaded), reference, "{skip}: from the journal");
    }
}

/// A retry (`max_failures`) of a failure right after the exploit continues from the
/// copied `checkpoint_000003` with the new config and keeps every row recorded before.
#[test]
fn a_retry_after_an_exploit_to_a_lower_iteration_keeps_every_row() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let a = tuner(dir.path(), true).max_failures(1).run().unwrap();
    assert_eq!(a.trials()[0].failures().len(), 1, "the injected failure was retried");
    assert_eq!(shape(&a), reference);
    let loaded = Analysis::<Knob, Walk>::from_dir(dir.path().join("exp")).unwrap();
    assert_eq!(shape(&loaded), reference, "from the journal");
}

/// The source's result at iteration 3, after which its scheduler wants a checkpoint:
/// trial 1's result row with the iteration (4th value) 3.
fn sources_third_result(record: &[u8]) -> bool {
    let Ok(r) = serde_json::from_slice::<serde_json::Value>(record) else { return false };
    r["type"] == "result" && r["trial"] == 1 && r["v"][3] == 3.0
}

/// The run stops right after the source reported the result its scheduler wanted a
/// checkpoint with, before the checkpoint is journaled. The resume gives that result back
/// to the scheduler, which then no longer wants the checkpoint (as PBT, whose state moved
/// on); the source, reporting it again, is checkpointed there as it was then, so the
/// exploit finds it and the results equal the uninterrupted run's.
#[test]
fn a_result_reported_again_is_checkpointed_where_the_scheduler_wanted_it_then() {
    let reference = reference();
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    std::fs::create_dir_all(&exp).unwrap();
    let inner = FileJournal::open(&exp.join(JOURNAL_FILE)).unwrap();
    let store = FullAfter { inner, trigger: sources_third_result, skip: 0, after: None };
    let err = tuner(dir.path(), false).journal_store(store).run().unwrap_err();
    assert!(matches!(err, RunError::Logging { .. }), "{err}");
    let a = tuner(dir.path(), false).resume(true).run().unwrap();
    assert_eq!(shape(&a), reference);
}
