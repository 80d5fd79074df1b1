//! `validate_save_restore`: the check behind the `#[test]` that `#[trainable]` generates.
//!
//! The check samples a config from a seeded generator, sets up an instance, steps it, saves
//! it (to a checkpoint directory and to bytes), restores two fresh instances from the two
//! copies, steps all three and requires bit-identical metrics. Where the trainable supports
//! `reset_config`, it also requires that an instance reset to a second config behaves like a
//! fresh `setup` of that config.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;

use crate::checkpoint::{restore_checkpoint, save_checkpoint};
use crate::error::{CheckpointError, TrainError};
use crate::metrics::Metrics;
use crate::session::FunctionTrainable;
use crate::space::Space;
use crate::tensors::TENSORS_FILE;
use crate::trainable::{InvalidResources, SharedData, Trainable, TrialContext};

/// How long a function trainable may take to return after a stop in
/// `check_function_trainable`.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a restored instance came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoredFrom {
    /// Restored with `restore_checkpoint` from a checkpoint directory (`state.json` and the
    /// trainable's own files).
    Directory,
    /// Restored with `load_state` from the bytes of `save_state`, in memory (plus
    /// `restore_files` from the checkpoint directory when `save_files` wrote files).
    Memory,
}

impl fmt::Display for RestoredFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RestoredFrom::Directory => "the instance restored from the checkpoint directory",
            RestoredFrom::Memory => "the instance restored from the in-memory state",
        })
    }
}

/// Why a trainable failed the save/restore check. Each message says what went wrong and
/// what to look at.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum SaveRestoreError {
    /// `setup` failed.
    #[error("`{trainable}`: setup failed during the save/restore check: {message}")]
    Setup {
        /// Name of the trainable.
        trainable: &'static str,
        /// The error of `setup`.
        message: String,
    },
    /// `step` failed.
    #[error("`{trainable}`: step {step} failed on {instance}: {message}")]
    Step {
        /// Name of the trainable.
        trainable: &'static str,
        /// Which instance (the original, a restored one, a reset one).
        instance: String,
        /// 1-based step number, counted from setup.
        step: usize,
        /// The error of `step`.
        message: String,
    },
    /// The trainable finished before the check could save it.
    #[error(
        "`{trainable}` finished after {step} steps, before the check could save it; \
         check it with fewer steps (`test_steps = N` in `#[trainable]`, or \
         `validate_save_restore_with` with `SaveRestoreOptions::steps`)"
    )]
    FinishedEarly {
        /// Name of the trainable.
        trainable: &'static str,
        /// Steps completed.
        step: usize,
    },
    /// Saving the checkpoint failed.
    #[error("`{trainable}`: saving the checkpoint failed: {source}")]
    Save {
        /// Name of the trainable.
        trainable: &'static str,
        /// The error.
        source: CheckpointError,
    },
    /// Restoring the checkpoint failed.
    #[error(
        "`{trainable}`: restoring the checkpoint failed for {from}: {source}; \
         the state written by save_state must be readable by load_state"
    )]
    Restore {
        /// Name of the trainable.
        trainable: &'static str,
        /// Which copy of the checkpoint.
        from: RestoredFrom,
        /// The error.
        source: CheckpointError,
    },
    /// A restored instance saves a state that differs from the checkpoint it was loaded
    /// from.
    #[error(
        "`{trainable}`: the state saved right after restoring differs from the checkpoint \
         ({from}){}: load_state does not restore everything save_state writes",
        .field.as_ref().map(|f| format!(" in `{f}`")).unwrap_or_default()
    )]
    StateDiffers {
        /// Name of the trainable.
        trainable: &'static str,
        /// Which copy of the checkpoint.
        from: RestoredFrom,
        /// The first top-level key whose value differs, when the state is a JSON object.
        field: Option<String>,
    },
    /// A restored instance reported different metrics from the original.
    #[error(
        "`{trainable}`: metrics after restore differ at step {step}: `{metric}` was {original}, \
         {from} gave {restored}; a field that step() depends on is not checkpointed — is it \
         marked #[checkpoint(skip)] or rebuilt wrongly in setup?"
    )]
    MetricsDiffer {
        /// Name of the trainable.
        trainable: &'static str,
        /// 1-based step number, counted from setup.
        step: usize,
        /// Name of the first differing metric.
        metric: &'static str,
        /// Its value on the original instance.
        original: f64,
        /// Its value on the restored instance.
        restored: f64,
        /// Which restored instance.
        from: RestoredFrom,
    },
    /// One instance finished while the other went on.
    #[error(
        "`{trainable}`: at step {step} {} finished but {} went on; a restored trainable must \
         continue exactly like the original",
        if *.original_finished { "the original" } else { "the restored one" },
        if *.original_finished { "the restored one" } else { "the original" }
    )]
    FinishDiffers {
        /// Name of the trainable.
        trainable: &'static str,
        /// 1-based step number, counted from setup.
        step: usize,
        /// Whether it was the original instance that finished.
        original_finished: bool,
    },
    /// `reset_config` failed.
    #[error("`{trainable}`: reset_config failed: {message}")]
    ResetConfig {
        /// Name of the trainable.
        trainable: &'static str,
        /// The error of `reset_config`.
        message: String,
    },
    /// An instance reset to a config reported different metrics from a fresh setup of it.
    #[error(
        "`{trainable}`: after reset_config, metrics differ from a fresh setup of the same config \
         at step {step}: `{metric}` was {fresh} after setup, {reset} after reset_config; \
         reset_config returned true, so it must reset every field that setup initializes \
         (or return false to let the runner build a new instance)"
    )]
    ResetDiffers {
        /// Name of the trainable.
        trainable: &'static str,
        /// 1-based step number after the reset.
        step: usize,
        /// Name of the first differing metric.
        metric: &'static str,
        /// Its value on the freshly set up instance.
        fresh: f64,
        /// Its value on the reset instance.
        reset: f64,
    },
    /// The declared resources of the sampled config are invalid.
    #[error("`{trainable}`: {source}")]
    Resources {
        /// Name of the trainable.
        trainable: &'static str,
        /// What is wrong.
        source: InvalidResources,
    },
    /// A function trainable did not return after it was asked to stop.
    #[error(
        "`{trainable}` did not return within {waited:?} after it was stopped: return when \
         `session.report(..)` gives `Err(Stopped)` (propagate it with `?`)"
    )]
    DidNotStop {
        /// Name of the trainable.
        trainable: &'static str,
        /// How long the check waited.
        waited: Duration,
    },
    /// The temporary checkpoint directory could not be created.
    #[error("could not create a temporary checkpoint directory: {0}")]
    TempDir(std::io::Error),
}

/// Options of [`validate_save_restore_with`].
#[derive(Debug, Clone)]
pub struct SaveRestoreOptions<C> {
    seed: u64,
    steps_before: usize,
    steps_after: usize,
    config: Option<C>,
    data: SharedData,
}

impl<C> Default for SaveRestoreOptions<C> {
    fn default() -> Self {
        Self {
            seed: 0x5EED,
            steps_before: 3,
            steps_after: 3,
            config: None,
            data: SharedData::none(),
        }
    }
}

impl<C> SaveRestoreOptions<C> {
    /// The defaults: seed `0x5EED`, 3 steps before the save and 3 after.
    pub fn new() -> Self {
        Self::default()
    }

    /// The seed of the config sampler and of the trial context.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Steps before the save and after the restore.
    pub fn steps(mut self, before: usize, after: usize) -> Self {
        self.steps_before = before;
        self.steps_after = after;
        self
    }

    /// Checks this config instead of one sampled from the space.
    pub fn config(mut self, config: C) -> Self {
        self.config = Some(config);
        self
    }

    /// Shares `data` with every instance the check sets up (what `Tuner::with_data` does
    /// in a run); it must be of the trainable's `data = Type`.
    pub fn data<D: Send + Sync + 'static>(mut self, data: Arc<D>) -> Self {
        self.data = SharedData::new::<D>(data);
        self
    }
}

/// `#[trainable(test_config = f)]`: the generated test checks `f()`'s config (typed: a
/// function returning another type does not compile).
#[doc(hidden)]
pub fn test_config<T: Trainable>(
    options: SaveRestoreOptions<T::Config>,
    config: T::Config,
) -> SaveRestoreOptions<T::Config> {
    options.config(config)
}

/// `#[trainable(test_data = f)]`: the generated test shares `f()`'s data (typed).
#[doc(hidden)]
pub fn test_data<T: Trainable>(
    options: SaveRestoreOptions<T::Config>,
    data: impl crate::trainable::IntoSharedData<T::Data>,
) -> SaveRestoreOptions<T::Config> {
    options.data::<T::Data>(data.into_shared())
}

/// Panicking form of [`validate_save_restore_with`], called by the generated test when
/// `#[trainable]` names a test config or test data.
///
/// # Panics
///
/// When the check fails, with the error's message.
#[doc(hidden)]
#[track_caller]
pub fn check_save_restore_with<T: Trainable>(options: SaveRestoreOptions<T::Config>) {
    if let Err(e) = validate_save_restore_with::<T>(options) {
        panic!("{e}");
    }
}

/// Panicking form of [`validate_function_trainable`] with options.
///
/// # Panics
///
/// When the check fails, with the error's message.
#[doc(hidden)]
#[track_caller]
pub fn check_function_trainable_with<T: FunctionTrainable>(options: SaveRestoreOptions<T::Config>) {
    if let Err(e) = validate_function_trainable::<T>(options) {
        panic!("{e}");
    }
}

/// Checks that a trainable restored from a checkpoint continues exactly like the original,
/// with the default [`SaveRestoreOptions`].
///
/// # Errors
///
/// A [`SaveRestoreError`] saying what differs and what to fix.
pub fn validate_save_restore<T: Trainable>() -> Result<(), SaveRestoreError> {
    validate_save_restore_with::<T>(SaveRestoreOptions::default())
}

/// Like [`validate_save_restore`] with options.
///
/// # Errors
///
/// A [`SaveRestoreError`] saying what differs and what to fix.
pub fn validate_save_restore_with<T: Trainable>(
    options: SaveRestoreOptions<T::Config>,
) -> Result<(), SaveRestoreError> {
    Check::<T>::new(options).run(false)
}

/// Panicking form of [`validate_save_restore`], called by the test `#[trainable]` generates.
///
/// # Panics
///
/// When the check fails, with the error's message.
#[track_caller]
#[doc(hidden)]
pub fn check_save_restore<T: Trainable>() {
    check_save_restore_steps::<T>(SaveRestoreOptions::<T::Config>::default().steps_before);
}

/// Like [`check_save_restore`] with `steps` steps before the save and after the restore
/// (`#[trainable(test_steps = N)]`).
///
/// # Panics
///
/// When the check fails, with the error's message.
#[track_caller]
#[doc(hidden)]
pub fn check_save_restore_steps<T: Trainable>(steps: usize) {
    if let Err(e) = validate_save_restore_with::<T>(SaveRestoreOptions::new().steps(steps, steps)) {
        panic!("{e}");
    }
}

/// Checks a function trainable, called by the test `#[trainable]` generates on a function:
/// it must step, return promptly once stopped, and, when it checkpoints, pass the
/// save/restore check. A function that finishes early or never checkpoints passes.
///
/// # Panics
///
/// When the check fails, with the error's message.
#[track_caller]
#[doc(hidden)]
pub fn check_function_trainable<T: FunctionTrainable>() {
    check_function_trainable_steps::<T>(SaveRestoreOptions::<T::Config>::default().steps_before);
}

/// Like [`check_function_trainable`] with `steps` steps before the save and after the
/// restore.
///
/// # Panics
///
/// When the check fails, with the error's message.
#[track_caller]
#[doc(hidden)]
pub fn check_function_trainable_steps<T: FunctionTrainable>(steps: usize) {
    if let Err(e) = validate_function_trainable::<T>(SaveRestoreOptions::new().steps(steps, steps))
    {
        panic!("{e}");
    }
}

/// The checks of [`check_function_trainable`], returning the error.
///
/// # Errors
///
/// A [`SaveRestoreError`] saying what went wrong.
pub fn validate_function_trainable<T: FunctionTrainable>(
    options: SaveRestoreOptions<T::Config>,
) -> Result<(), SaveRestoreError> {
    let check = Check::<T>::new(options);
    let mut t = check.setup(&check.config)?;
    let mut checkpoints = false;
    for step in 1..=check.steps_before.max(1) {
        match check.step(&mut t, "the original instance", step)? {
            Outcome::Metrics(_) => {}
            Outcome::Finished => break,
        }
        checkpoints = t.save_state().is_ok();
    }
    if !t.runner().stop(STOP_GRACE) {
        return Err(SaveRestoreError::DidNotStop { trainable: T::NAME, waited: STOP_GRACE });
    }
    if checkpoints { check.run(true) } else { Ok(()) }
}

enum Outcome<M> {
    Metrics(M),
    Finished,
}

struct Check<T: Trainable> {
    config: T::Config,
    rng: rand_chacha::ChaCha8Rng,
    ctx: TrialContext,
    steps_before: usize,
    steps_after: usize,
}

impl<T: Trainable> Check<T> {
    fn new(options: SaveRestoreOptions<T::Config>) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
        let config = match options.config {
            Some(config) => config,
            None => T::Config::sample(&mut rng),
        };
        let ctx =
            TrialContext::detached("validate_save_restore", options.seed).with_data(options.data);
        Self {
            config,
            rng,
            ctx,
            steps_before: options.steps_before,
            steps_after: options.steps_after,
        }
    }

    fn setup(&self, config: &T::Config) -> Result<T, SaveRestoreError> {
        T::setup(config, &self.ctx)
            .map_err(|e| SaveRestoreError::Setup { trainable: T::NAME, message: e.to_string() })
    }

    fn step(
        &self,
        t: &mut T,
        instance: &str,
        step: usize,
    ) -> Result<Outcome<T::Metrics>, SaveRestoreError> {
        match t.step() {
            Ok(m) => Ok(Outcome::Metrics(m)),
            Err(e) if e.is_finished() || e.is_stop() => Ok(Outcome::Finished),
            Err(e) => Err(step_error::<T>(instance, step, &e)),
        }
    }

    /// `allow_short`: a trainable that finishes before the save passes (function
    /// trainables end when their function returns).
    fn run(mut self, allow_short: bool) -> Result<(), SaveRestoreError> {
        T::resources(&self.config)
            .validate()
            .map_err(|source| SaveRestoreError::Resources { trainable: T::NAME, source })?;

        let mut original = self.setup(&self.config)?;
        let mut history = Vec::with_capacity(self.steps_before + self.steps_after);
        for step in 1..=self.steps_before {
            let outcome = self.step(&mut original, "the original instance", step)?;
            if let Outcome::Finished = outcome {
                original.cleanup();
                return if allow_short {
                    Ok(())
                } else {
                    Err(SaveRestoreError::FinishedEarly { trainable: T::NAME, step: step - 1 })
                };
            }
            history.push(outcome);
        }

        let dir = tempfile::tempdir().map_err(SaveRestoreError::TempDir)?;
        let save = |source| SaveRestoreError::Save { trainable: T::NAME, source };
        save_checkpoint(&original, dir.path()).map_err(save)?;
        let bytes = original.save_state().map_err(save)?;

        let mut from_dir = self.setup(&self.config)?;
        restore_checkpoint(&mut from_dir, dir.path()).map_err(|source| {
            SaveRestoreError::Restore { trainable: T::NAME, from: RestoredFrom::Directory, source }
        })?;
        let mut from_bytes = self.setup(&self.config)?;
        from_bytes.load_state(&bytes).map_err(|source| SaveRestoreError::Restore {
            trainable: T::NAME,
            from: RestoredFrom::Memory,
            source,
        })?;
        // The `#[checkpoint(binary)]` fields are in `state.safetensors`, and a trainable
        // that keeps part of its state in files of its own needs them: the in-memory copy
        // is the bytes of `save_state` plus the same files.
        from_bytes.restore_tensors(dir.path()).map_err(|source| SaveRestoreError::Restore {
            trainable: T::NAME,
            from: RestoredFrom::Memory,
            source,
        })?;
        if writes_files(dir.path()) {
            from_bytes.restore_files(dir.path()).map_err(|e| SaveRestoreError::Restore {
                trainable: T::NAME,
                from: RestoredFrom::Memory,
                source: CheckpointError::Hook { trainable: T::NAME, message: e.to_string() },
            })?;
        }

        for (t, from) in [(&from_dir, RestoredFrom::Directory), (&from_bytes, RestoredFrom::Memory)]
        {
            let resaved = t.save_state().map_err(save)?;
            if let Some(field) = state_difference(&bytes, &resaved) {
                return Err(SaveRestoreError::StateDiffers { trainable: T::NAME, from, field });
            }
            if T::TENSORS {
                let again = tempfile::tempdir().map_err(SaveRestoreError::TempDir)?;
                t.save_tensors(again.path()).map_err(save)?;
                let read = |d: &std::path::Path| std::fs::read(d.join(TENSORS_FILE)).ok();
                if read(dir.path()) != read(again.path()) {
                    let field = Some(TENSORS_FILE.to_owned());
                    return Err(SaveRestoreError::StateDiffers { trainable: T::NAME, from, field });
                }
            }
        }

        for k in 1..=self.steps_after {
            let step = self.steps_before + k;
            let outcome = self.step(&mut original, "the original instance", step)?;
            let finished = matches!(outcome, Outcome::Finished);
            history.push(outcome);
            if finished {
                break;
            }
        }
        original.cleanup();

        for (mut t, from) in
            [(from_dir, RestoredFrom::Directory), (from_bytes, RestoredFrom::Memory)]
        {
            // A function trainable resumes from its latest `session.checkpoint`, which may
            // be older than the save.
            let resume = t
                .state_iteration()
                .and_then(|i| usize::try_from(i).ok())
                .unwrap_or(self.steps_before)
                .min(self.steps_before);
            let instance = from.to_string();
            for step in resume + 1..=history.len() {
                let outcome = self.step(&mut t, &instance, step)?;
                compare::<T>(&history[step - 1], &outcome, step, from)?;
            }
            t.cleanup();
        }

        self.check_reset_config()
    }

    fn check_reset_config(&mut self) -> Result<(), SaveRestoreError> {
        let second = T::Config::sample(&mut self.rng);
        let mut reused = self.setup(&self.config)?;
        for step in 1..=self.steps_before {
            if let Outcome::Finished = self.step(&mut reused, "the instance to reset", step)? {
                break;
            }
        }
        let reset = reused.reset_config(&second, &self.ctx).map_err(|e| {
            SaveRestoreError::ResetConfig { trainable: T::NAME, message: e.to_string() }
        })?;
        if !reset {
            reused.cleanup();
            return Ok(());
        }
        let mut fresh = self.setup(&second)?;
        for step in 1..=self.steps_before + self.steps_after {
            let a = self.step(&mut fresh, "the instance set up with the second config", step)?;
            let b = self.step(&mut reused, "the instance reset to the second config", step)?;
            match (&a, &b) {
                (Outcome::Metrics(a), Outcome::Metrics(b)) => {
                    if let Some((metric, fresh, reset)) = first_difference(a, b) {
                        return Err(SaveRestoreError::ResetDiffers {
                            trainable: T::NAME,
                            step,
                            metric,
                            fresh,
                            reset,
                        });
                    }
                }
                (Outcome::Finished, Outcome::Finished) => break,
                (a, _) => {
                    return Err(SaveRestoreError::ResetConfig {
                        trainable: T::NAME,
                        message: format!(
                            "at step {step} after the reset, {} finished and the other did not",
                            if matches!(a, Outcome::Finished) {
                                "the fresh instance"
                            } else {
                                "the reset instance"
                            }
                        ),
                    });
                }
            }
        }
        fresh.cleanup();
        reused.cleanup();
        Ok(())
    }
}

/// Whether `save_files` wrote anything beside `state.json`.
fn writes_files(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name() != crate::checkpoint::STATE_FILE && e.file_name() != TENSORS_FILE
        })
    })
}

fn step_error<T: Trainable>(instance: &str, step: usize, e: &TrainError) -> SaveRestoreError {
    SaveRestoreError::Step {
        trainable: T::NAME,
        instance: instance.to_owned(),
        step,
        message: e.to_string(),
    }
}

fn compare<T: Trainable>(
    original: &Outcome<T::Metrics>,
    restored: &Outcome<T::Metrics>,
    step: usize,
    from: RestoredFrom,
) -> Result<(), SaveRestoreError> {
    match (original, restored) {
        (Outcome::Metrics(a), Outcome::Metrics(b)) => match first_difference(a, b) {
            None => Ok(()),
            Some((metric, original, restored)) => Err(SaveRestoreError::MetricsDiffer {
                trainable: T::NAME,
                step,
                metric,
                original,
                restored,
                from,
            }),
        },
        (Outcome::Finished, Outcome::Finished) => Ok(()),
        (a, _) => Err(SaveRestoreError::FinishDiffers {
            trainable: T::NAME,
            step,
            original_finished: matches!(a, Outcome::Finished),
        }),
    }
}

/// The first metric whose values differ, compared bit for bit (any NaN equals any NaN).
fn first_difference<M: Metrics>(a: &M, b: &M) -> Option<(&'static str, f64, f64)> {
    M::NAMES.iter().enumerate().find_map(|(i, name)| {
        let (x, y) = (a.value(i), b.value(i));
        let same = x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
        (!same).then_some((*name, x, y))
    })
}

/// `None` when two saved states are the same; otherwise `Some(key)` with the first
/// top-level key that differs when both are JSON objects. JSON is compared as values so
/// that map ordering does not matter.
fn state_difference(saved: &[u8], resaved: &[u8]) -> Option<Option<String>> {
    if saved == resaved {
        return None;
    }
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<serde_json::Value>(saved),
        serde_json::from_slice::<serde_json::Value>(resaved),
    ) else {
        return Some(None);
    };
    if a == b {
        return None;
    }
    match (&a, &b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            let key = a.keys().chain(b.keys()).find(|k| a.get(*k) != b.get(*k)).cloned();
            Some(key)
        }
        _ => Some(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::error::{DomainViolation, SpaceError, TrainResult};
    use crate::space::{Condition, Dim};
    use crate::trainable::{Checkpointable, TrainableSpec};
    use rand::Rng;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub(crate) struct Cfg {
        pub(crate) start: u64,
    }

    impl Space for Cfg {
        fn grid_size() -> usize {
            1
        }
        fn sample_at<R: Rng + ?Sized>(rng: &mut R, _: usize) -> Self {
            Cfg { start: rng.random_range(0..100) }
        }
        fn num_dims() -> usize {
            0
        }
        fn describe(_: &mut Vec<Dim>, _: &str, _: Option<Condition>) {}
        fn encode_into(&self, _: &mut [f64]) {}
        fn decode_from(_: &[f64]) -> Result<Self, SpaceError> {
            Ok(Cfg { start: 0 })
        }
        fn check_domains(&self, _: &str, _: &mut Vec<DomainViolation>) {}
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Loss {
        pub(crate) loss: f64,
        pub(crate) count: u64,
    }

    impl Metrics for Loss {
        const NAMES: &'static [&'static str] = &["loss", "count"];
        fn value(&self, index: usize) -> f64 {
            match index {
                0 => self.loss,
                1 => self.count as f64,
                _ => f64::NAN,
            }
        }
    }

    /// Which bug a [`Counter`] has.
    trait Variant: Send + 'static {
        /// `load_state` forgets `count`.
        const FORGETS_COUNT: bool = false;
        /// `reset_config` forgets to reset `count`.
        const RESET_FORGETS_COUNT: bool = false;
        /// `reset_config` is supported.
        const RESETS: bool = false;
        /// `save_state` leaves `count` out (saves 0), like a `#[checkpoint(skip)]` field.
        const SKIPS_COUNT: bool = false;
    }

    struct Good;
    impl Variant for Good {
        const RESETS: bool = true;
    }
    struct ForgetfulLoad;
    impl Variant for ForgetfulLoad {
        const FORGETS_COUNT: bool = true;
    }
    struct ForgetfulReset;
    impl Variant for ForgetfulReset {
        const RESETS: bool = true;
        const RESET_FORGETS_COUNT: bool = true;
    }

    struct SkipsCount;
    impl Variant for SkipsCount {
        const SKIPS_COUNT: bool = true;
    }

    struct Counter<V> {
        count: u64,
        start: u64,
        _v: std::marker::PhantomData<V>,
    }

    impl<V: Variant> TrainableSpec for Counter<V> {
        type Config = Cfg;
        type Metrics = Loss;
        type Data = ();
        const NAME: &'static str = "Counter";
    }

    #[derive(Serialize, Deserialize)]
    struct State {
        count: u64,
        start: u64,
    }

    impl<V: Variant> Checkpointable for Counter<V> {
        fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
            crate::checkpoint::save_json(
                Self::NAME,
                &State { count: if V::SKIPS_COUNT { 0 } else { self.count }, start: self.start },
            )
        }
        fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
            let state: State = crate::checkpoint::load_json(Self::NAME, bytes)?;
            if !V::FORGETS_COUNT {
                self.count = state.count;
            }
            self.start = state.start;
            Ok(())
        }
    }

    impl<V: Variant> Trainable for Counter<V> {
        fn setup(config: &Cfg, _: &TrialContext) -> TrainResult<Self> {
            Ok(Counter { count: 0, start: config.start, _v: std::marker::PhantomData })
        }
        fn step(&mut self) -> TrainResult<Loss> {
            self.count += 1;
            Ok(Loss { loss: 1.0 / (self.start + self.count) as f64, count: self.count })
        }
        fn reset_config(&mut self, config: &Cfg, _: &TrialContext) -> TrainResult<bool> {
            if !V::RESETS {
                return Ok(false);
            }
            self.start = config.start;
            if !V::RESET_FORGETS_COUNT {
                self.count = 0;
            }
            Ok(true)
        }
    }

    #[test]
    fn a_good_trainable_passes() {
        validate_save_restore::<Counter<Good>>().unwrap();
        validate_save_restore_with::<Counter<Good>>(
            SaveRestoreOptions::new().seed(1).steps(1, 7).config(Cfg { start: 5 }),
        )
        .unwrap();
    }

    #[test]
    fn a_load_state_that_forgets_a_field_fails() {
        let err = validate_save_restore::<Counter<ForgetfulLoad>>().unwrap_err();
        match &err {
            SaveRestoreError::StateDiffers { field, from, .. } => {
                assert_eq!(field.as_deref(), Some("count"));
                assert_eq!(*from, RestoredFrom::Directory);
            }
            other => panic!("unexpected error: {other}"),
        }
        let message = err.to_string();
        assert!(message.contains("in `count`"), "{message}");
        assert!(message.contains("load_state does not restore"), "{message}");
    }

    #[test]
    fn a_field_left_out_of_the_state_fails_on_metrics() {
        let err = validate_save_restore::<Counter<SkipsCount>>().unwrap_err();
        match &err {
            SaveRestoreError::MetricsDiffer { step, metric, original, restored, .. } => {
                assert_eq!((*step, *metric), (4, "loss"));
                assert_ne!(original, restored);
            }
            other => panic!("unexpected error: {other}"),
        }
        assert!(err.to_string().contains("#[checkpoint(skip)]"), "{err}");
    }

    #[test]
    fn a_reset_config_that_forgets_a_field_fails() {
        let err = validate_save_restore::<Counter<ForgetfulReset>>().unwrap_err();
        assert!(matches!(err, SaveRestoreError::ResetDiffers { step: 1, .. }), "{err}");
        assert!(err.to_string().contains("reset_config returned true"), "{err}");
    }

    #[test]
    fn metrics_are_compared_bitwise_and_nan_aware() {
        let a = Loss { loss: f64::NAN, count: 1 };
        let b = Loss { loss: f64::NAN, count: 1 };
        assert!(first_difference(&a, &b).is_none());
        let c = Loss { loss: 0.0, count: 1 };
        let d = Loss { loss: -0.0, count: 1 };
        assert_eq!(first_difference(&c, &d).map(|d| d.0), Some("loss"));
    }

    #[test]
    fn metric_mismatch_message_names_the_problem() {
        let err = SaveRestoreError::MetricsDiffer {
            trainable: "Net",
            step: 4,
            metric: "loss",
            original: 0.25,
            restored: 0.5,
            from: RestoredFrom::Memory,
        };
        assert_eq!(
            err.to_string(),
            "`Net`: metrics after restore differ at step 4: `loss` was 0.25, the instance \
             restored from the in-memory state gave 0.5; a field that step() depends on is not \
             checkpointed — is it marked #[checkpoint(skip)] or rebuilt wrongly in setup?"
        );
    }

    #[test]
    fn state_difference_ignores_key_order() {
        assert_eq!(state_difference(br#"{"a":1,"b":2}"#, br#"{"b":2,"a":1}"#), None);
        assert_eq!(
            state_difference(br#"{"a":1,"b":2}"#, br#"{"a":1,"b":3}"#),
            Some(Some("b".into()))
        );
        assert_eq!(state_difference(b"\x01", b"\x02"), Some(None));
    }
}
