//! Behaviour of `#[trainable]` and `#[derive(Metrics)]`: resources, names, checkpoint state,
//! and the function API's stepping, finishing, stopping, errors, panics and restore.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use support::config::GuessConfig;
use tune_runtime::prelude::*;
use tune_runtime::{
    Checkpointable, Metric, Resources, Session, Stopped, TrainableSpec,
    check::{
        SaveRestoreError, SaveRestoreOptions, validate_save_restore, validate_save_restore_with,
    },
};

#[derive(Metrics, Debug, Clone, PartialEq)]
struct GuessMetrics {
    diff: i64,
    accuracy: f64,
}

#[trainable(
    config = GuessConfig,
    metrics = GuessMetrics,
    resources(cpu = 1, gpu = 0.5, extra_gpu = 4, custom("tpu" = 1))
)]
struct Guesser {
    guess: i64,
    iter: u64,
    #[checkpoint(skip)]
    password: i64,
}

impl Trainable for Guesser {
    fn setup(config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Guesser { guess: config.guess, iter: 0, password: 1024 })
    }

    fn step(&mut self) -> TrainResult<GuessMetrics> {
        self.iter += 1;
        self.guess += 1;
        let diff = (self.guess - self.password).abs();
        Ok(GuessMetrics { diff, accuracy: 1.0 / (1.0 + diff as f64) })
    }

    fn reset_config(&mut self, config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<bool> {
        self.guess = config.guess;
        self.iter = 0;
        Ok(true)
    }
}

#[trainable(
    config = GuessConfig,
    metrics = GuessMetrics,
    resources(cpu = |c: &GuessConfig| c.workers, extra_cpu = |c: &GuessConfig| f64::from(c.workers) * 0.5),
    test = false
)]
struct Computed(u64, #[checkpoint(skip)] u64);

impl Trainable for Computed {
    fn setup(config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Computed(config.guess as u64, 7))
    }
    fn step(&mut self) -> TrainResult<GuessMetrics> {
        self.0 += self.1;
        Ok(GuessMetrics { diff: self.0 as i64, accuracy: 0.0 })
    }
}

fn config(guess: i64, workers: u32) -> GuessConfig {
    GuessConfig { guess, workers }
}

#[test]
fn metrics_derive_generates_names_and_typed_handles() {
    assert_eq!(<GuessMetrics as Metrics>::NAMES, &["diff", "accuracy"]);
    let m = GuessMetrics { diff: 3, accuracy: 0.25 };
    let diff: Metric<GuessMetrics> = GuessMetrics::DIFF;
    assert_eq!(diff.name(), "diff");
    assert_eq!(diff.index(), 0);
    assert_eq!(diff.get(&m), 3.0);
    assert_eq!(GuessMetrics::ACCURACY.get(&m), 0.25);
    assert!(m.value(2).is_nan());
}

#[test]
fn constant_resources_come_from_the_attribute() {
    let r = Guesser::resources(&config(1, 1));
    let expected =
        Resources { cpu: 1.0, gpu: 0.5, extra_cpu: 0.0, extra_gpu: 4.0, ..Resources::default() }
            .with_custom("tpu", 1.0);
    assert_eq!(r, expected);
    assert_eq!(r.total_gpu(), 4.5);
}

#[test]
fn computed_resources_read_the_config() {
    let r = Computed::resources(&config(1, 3));
    assert_eq!(r.cpu, 3.0);
    assert_eq!(r.extra_cpu, 1.5);
    assert_eq!(r.gpu, 0.0);
    assert!(r.validate().is_ok());
}

#[test]
fn name_is_the_struct_or_function_name() {
    assert_eq!(Guesser::NAME, "Guesser");
    assert_eq!(Computed::NAME, "Computed");
    assert_eq!(Counter::NAME, "counter");
    assert_eq!(Renamed::NAME, "renamed_fn");
}

#[test]
fn state_round_trips_and_skipped_fields_are_not_saved() {
    let ctx = TrialContext::detached("t", 1);
    let mut a = Guesser::setup(&config(10, 1), &ctx).unwrap();
    a.step().unwrap();
    a.password = 99;
    let bytes = a.save_state().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json, serde_json::json!({ "guess": 11, "iter": 1 }));

    let mut b = Guesser::setup(&config(500, 1), &ctx).unwrap();
    b.load_state(&bytes).unwrap();
    assert_eq!((b.guess, b.iter, b.password), (11, 1, 1024));
}

#[test]
fn tuple_struct_state_is_positional() {
    let ctx = TrialContext::detached("t", 1);
    let mut a = Computed::setup(&config(5, 1), &ctx).unwrap();
    a.step().unwrap();
    let bytes = a.save_state().unwrap();
    // The fields of a tuple struct are keyed by position.
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
        serde_json::json!({ "0": 12 })
    );
    let mut b = Computed::setup(&config(1, 1), &ctx).unwrap();
    b.load_state(&bytes).unwrap();
    assert_eq!((b.0, b.1), (12, 7));
}

#[test]
fn load_state_reports_a_missing_field() {
    let ctx = TrialContext::detached("t", 1);
    let mut b = Guesser::setup(&config(1, 1), &ctx).unwrap();
    let err = b.load_state(br#"{"guess": 3}"#).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`Guesser`") && message.contains("missing field `iter`"), "{message}");
}

#[test]
fn class_trainable_passes_validate_save_restore() {
    validate_save_restore::<Guesser>().unwrap();
    validate_save_restore_with::<Guesser>(
        SaveRestoreOptions::new().seed(9).steps(1, 5).config(config(1000, 2)),
    )
    .unwrap();
}

// --- function API ---

#[derive(Metrics, Debug, Clone, PartialEq)]
struct CountMetrics {
    count: u64,
}

/// Counts to `guess % 5 + 3`, checkpointing every report.
#[trainable]
fn counter(config: &GuessConfig, session: &mut Session<CountMetrics>) -> TrainResult<()> {
    let mut count: u64 = session.restored_state()?.unwrap_or(0);
    let end = (config.guess % 5 + 3) as u64;
    while count < end {
        count += 1;
        session.checkpoint(&count)?;
        session.report(CountMetrics { count })?;
    }
    Ok(())
}

#[trainable(name = Renamed, resources(cpu = 2))]
fn renamed_fn(_config: &GuessConfig, session: &mut Session<CountMetrics>) -> TrainResult<()> {
    for count in 1.. {
        session.report(CountMetrics { count })?;
    }
    Ok(())
}

#[trainable(test = false)]
fn failing(_config: &GuessConfig, session: &mut Session<CountMetrics>) -> TrainResult<()> {
    session.report(CountMetrics { count: 1 })?;
    Err(TrainError::msg("the data loader broke"))
}

#[trainable(test = false)]
fn panicking(_config: &GuessConfig, session: &mut Session<CountMetrics>) -> TrainResult<()> {
    session.report(CountMetrics { count: 1 })?;
    panic!("index out of range: {}", 7);
}

#[derive(Serialize, Deserialize, Default)]
struct Walk {
    position: i64,
    velocity: i64,
}

/// Checkpoints a struct every other report; a restore resumes from the latest one.
#[trainable(test_steps = 4)]
fn walker(config: &GuessConfig, session: &mut Session<GuessMetrics>) -> TrainResult<()> {
    let mut walk: Walk =
        session.restored_state()?.unwrap_or(Walk { position: config.guess, velocity: 1 });
    loop {
        walk.velocity += 1;
        walk.position += walk.velocity;
        if session.iteration() % 2 == 1 {
            session.checkpoint(&walk)?;
        }
        session.report(GuessMetrics { diff: walk.position, accuracy: walk.velocity as f64 })?;
    }
}

fn setup<T: Trainable<Config = GuessConfig>>(guess: i64) -> T {
    T::setup(&config(guess, 1), &TrialContext::detached("fn", 3)).unwrap()
}

#[test]
fn function_trainable_steps_and_finishes() {
    let mut t: Counter = setup(2); // counts to 5
    let counts: Vec<u64> = (0..5).map(|_| t.step().unwrap().count).collect();
    assert_eq!(counts, [1, 2, 3, 4, 5]);
    let end = t.step().unwrap_err();
    assert!(end.is_finished(), "{end}");
    assert!(t.step().unwrap_err().is_finished());
    t.cleanup();
}

#[test]
fn function_trainable_stops_promptly() {
    let mut t: Renamed = setup(1);
    for expected in 1..=3 {
        assert_eq!(t.step().unwrap().count, expected);
    }
    let start = Instant::now();
    t.cleanup();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(t.step().unwrap_err().is_finished());
    // Dropping a running trainable unblocks its thread too.
    let mut u: Renamed = setup(1);
    u.step().unwrap();
    drop(u);
}

#[test]
fn function_errors_and_panics_become_step_errors() {
    let mut t: Failing = setup(1);
    t.step().unwrap();
    let e = t.step().unwrap_err();
    assert!(!e.is_finished());
    assert_eq!(e.to_string(), "the data loader broke");

    let mut p: Panicking = setup(1);
    p.step().unwrap();
    let e = p.step().unwrap_err();
    assert_eq!(e.to_string(), "`panicking` panicked: index out of range: 7");
}

#[test]
fn function_without_checkpoint_has_no_state() {
    let mut t: Renamed = setup(1);
    t.step().unwrap();
    let e = t.save_state().unwrap_err();
    assert!(e.to_string().contains("has not made a checkpoint"), "{e}");
}

#[test]
fn restored_function_continues_the_sequence() {
    let mut a: Counter = setup(4); // counts to 7
    for _ in 0..3 {
        a.step().unwrap();
    }
    let bytes = a.save_state().unwrap();
    let rest: Vec<u64> = (0..4).map(|_| a.step().unwrap().count).collect();
    assert_eq!(rest, [4, 5, 6, 7]);

    let mut b: Counter = setup(4);
    b.load_state(&bytes).unwrap();
    let restored: Vec<u64> = (0..4).map(|_| b.step().unwrap().count).collect();
    assert_eq!(restored, rest);
    assert!(b.step().unwrap_err().is_finished());
}

#[test]
fn restore_resumes_from_the_latest_checkpoint() {
    // `walker` checkpoints after reports 2, 4, ...: saved after 3 reports, it resumes at 3.
    let mut a: Walker = setup(0);
    let first: Vec<GuessMetrics> = (0..6).map(|_| a.step().unwrap()).collect();
    let mut b: Walker = setup(0);
    for _ in 0..3 {
        b.step().unwrap();
    }
    let mut c: Walker = setup(0);
    c.load_state(&b.save_state().unwrap()).unwrap();
    let resumed: Vec<GuessMetrics> = (0..3).map(|_| c.step().unwrap()).collect();
    assert_eq!(resumed, first[2..5]);
    validate_save_restore::<Walker>().unwrap();
}

#[test]
fn report_after_stop_keeps_returning_stopped() {
    fn stubborn(_: &GuessConfig, session: &mut Session<CountMetrics>) -> TrainResult<()> {
        let first = session.report(CountMetrics { count: 1 });
        let second = session.report(CountMetrics { count: 2 });
        assert_eq!((first, second), (Err(Stopped), Err(Stopped)));
        Ok(())
    }
    let mut runner = tune_runtime::__private::FunctionRunner::new(
        "stubborn",
        stubborn,
        &config(1, 1),
        &TrialContext::detached("s", 1),
    );
    runner.step().unwrap();
    assert!(runner.stop(Duration::from_secs(2)));
}

#[test]
fn errors_name_the_problem() {
    let e = SaveRestoreError::FinishedEarly { trainable: "x", step: 1 };
    assert!(e.to_string().contains("test_steps"));
}

// --- checkpoint files of the trainable's own ---

/// Keeps its weights in a file of its own (`save_files`), not in `state.json`.
#[trainable(config = GuessConfig, metrics = GuessMetrics, test = false)]
struct FileNet {
    iter: u64,
    #[checkpoint(skip)]
    weights: Vec<f64>,
    #[checkpoint(skip)]
    restores_files: bool,
}

impl Trainable for FileNet {
    fn setup(config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(FileNet { iter: 0, weights: vec![config.guess as f64; 3], restores_files: true })
    }
    fn step(&mut self) -> TrainResult<GuessMetrics> {
        self.iter += 1;
        for w in &mut self.weights {
            *w *= 0.5;
        }
        Ok(GuessMetrics { diff: self.iter as i64, accuracy: self.weights.iter().sum() })
    }
    fn save_files(&self, dir: &std::path::Path) -> TrainResult<()> {
        std::fs::write(dir.join("weights.json"), serde_json::to_vec(&self.weights)?)?;
        Ok(())
    }
    fn restore_files(&mut self, dir: &std::path::Path) -> TrainResult<()> {
        if self.restores_files {
            self.weights = serde_json::from_slice(&std::fs::read(dir.join("weights.json"))?)?;
        }
        Ok(())
    }
}

#[test]
fn checkpoint_directories_hold_state_json_and_own_files() {
    let ctx = TrialContext::detached("f", 1);
    let mut a = FileNet::setup(&config(8, 1), &ctx).unwrap();
    a.step().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint_1");
    tune_runtime::storage::save_checkpoint(&a, &checkpoint).unwrap();
    let state =
        std::fs::read_to_string(checkpoint.join(tune_runtime::storage::STATE_FILE)).unwrap();
    assert_eq!(state, r#"{"iter":1}"#);
    assert!(checkpoint.join("weights.json").exists());

    let mut b = FileNet::setup(&config(8, 1), &ctx).unwrap();
    tune_runtime::storage::restore_checkpoint(&mut b, &checkpoint).unwrap();
    assert_eq!((b.iter, &b.weights), (1, &vec![4.0; 3]));

    let missing = tune_runtime::storage::restore_checkpoint(&mut b, dir.path()).unwrap_err();
    assert!(missing.to_string().contains("state.json"), "{missing}");

    validate_save_restore::<FileNet>().unwrap();
}
