//! The trainable traits: what `#[trainable]` generates and what the user implements.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{CheckpointError, TrainError, TrainResult};
use crate::metrics::Metrics;
use crate::space::Space;

/// Resources one trial needs; the runner admits a trial only when they are free.
///
/// `cpu` and `gpu` are what the trainable itself uses; `extra_cpu` and `extra_gpu` are
/// reserved for workers the trainable starts on its own. `custom` names any other resource
/// (a licence, a TPU, ...) with an amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPUs for the trainable itself (fractions allowed). Default 1.
    pub cpu: f64,
    /// GPUs for the trainable itself (fractions allowed). Default 0.
    pub gpu: f64,
    /// Extra CPUs reserved for workers the trainable launches. Default 0.
    pub extra_cpu: f64,
    /// Extra GPUs reserved for workers the trainable launches. Default 0.
    pub extra_gpu: f64,
    /// Named custom resources and amounts.
    pub custom: BTreeMap<String, f64>,
}

impl Default for Resources {
    fn default() -> Self {
        Self { cpu: 1.0, gpu: 0.0, extra_cpu: 0.0, extra_gpu: 0.0, custom: BTreeMap::new() }
    }
}

impl Resources {
    /// Total CPUs: `cpu + extra_cpu`.
    pub fn total_cpu(&self) -> f64 {
        self.cpu + self.extra_cpu
    }

    /// Total GPUs: `gpu + extra_gpu`.
    pub fn total_gpu(&self) -> f64 {
        self.gpu + self.extra_gpu
    }

    /// Adds a custom resource.
    pub fn with_custom(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.custom.insert(name.into(), amount);
        self
    }

    /// Checks that every amount is a finite, non-negative number. Amounts computed from a
    /// config (`resources(cpu = |c: &Config| ..)`) can only be checked at run time.
    ///
    /// # Errors
    ///
    /// [`InvalidResources`] naming the first bad amount.
    pub fn validate(&self) -> Result<(), InvalidResources> {
        let named = [
            ("cpu", self.cpu),
            ("gpu", self.gpu),
            ("extra_cpu", self.extra_cpu),
            ("extra_gpu", self.extra_gpu),
        ];
        let custom = self.custom.iter().map(|(k, v)| (k.as_str(), *v));
        for (name, amount) in named.into_iter().chain(custom) {
            if !amount.is_finite() || amount < 0.0 {
                return Err(InvalidResources { resource: name.to_owned(), amount });
            }
        }
        Ok(())
    }
}

/// A resource amount that is negative, infinite or NaN.
#[derive(Clone, PartialEq, thiserror::Error)]
#[error(
    "resource `{resource}` is {amount}; amounts must be finite and non-negative \
     (check the expression given for `{resource}` in `#[trainable(resources(..))]`)"
)]
pub struct InvalidResources {
    /// The resource's name (`cpu`, `gpu`, `extra_cpu`, `extra_gpu` or a custom name).
    pub resource: String,
    /// The amount that was asked for.
    pub amount: f64,
}

/// A number that a resource amount computed from a config may have: the primitive numeric
/// types convert to `f64`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a resource amount must be a number, and `{Self}` is not",
    label = "make the closure return a number (f64, f32 or an integer)"
)]
pub trait ResourceAmount {
    /// The amount as `f64`.
    fn to_amount(self) -> f64;
}

macro_rules! resource_amount {
    ($($t:ty),*) => {$(
        impl ResourceAmount for $t {
            #[inline]
            #[allow(clippy::cast_lossless, clippy::cast_precision_loss)]
            fn to_amount(self) -> f64 { self as f64 }
        }
    )*};
}
resource_amount!(f64, f32, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Evaluates a resource amount computed from a config. Taking the closure as an
/// `impl FnOnce(&C) -> R` argument lets its parameter type be inferred.
#[doc(hidden)]
#[inline]
pub fn resource_from_config<C, R: ResourceAmount>(config: &C, f: impl FnOnce(&C) -> R) -> f64 {
    f(config).to_amount()
}

/// What a trial knows about itself: handed to [`Trainable::setup`].
#[derive(Debug, Clone)]
pub struct TrialContext {
    /// The trial's id, unique in its experiment.
    pub trial_id: String,
    /// The trial's directory, when results are written to disk.
    pub trial_dir: Option<PathBuf>,
    /// GPU ids assigned to this trial (from the experiment's GPU list).
    pub gpu_ids: Vec<usize>,
    /// The resources granted.
    pub resources: Resources,
    /// A seed derived from the experiment seed and the trial: use it for the trial's own
    /// randomness so that a seeded experiment is reproducible.
    pub seed: u64,
    /// The data shared by every trial of the run (`Tuner::with_data`); read it typed with
    /// [`TrainableSpec::data`].
    pub data: SharedData,
}

/// The data set shared by every trial of a run: loaded once, handed to every `setup`
/// behind an [`Arc`] (Ray Tune's `tune.with_parameters`). The runner fills it from
/// `Tuner::with_data`; a trainable reads it with [`TrainableSpec::data`], whose type is the
/// `data = Type` the trainable declares, so asking for another type does not compile.
#[derive(Clone, Default)]
pub struct SharedData {
    // One pointer: every trial's context (and every task that carries one) holds a copy.
    value: Option<Arc<Shared>>,
}

struct Shared {
    value: Arc<dyn Any + Send + Sync>,
    name: &'static str,
}

impl fmt::Debug for SharedData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(shared) => write!(f, "SharedData({})", shared.name),
            None => f.write_str("SharedData(none)"),
        }
    }
}

impl SharedData {
    /// No shared data: what a detached context holds.
    pub fn none() -> Self {
        Self::default()
    }

    /// Shares `data` (a value or an `Arc` of it).
    pub fn new<D: Send + Sync + 'static>(data: impl Into<Arc<D>>) -> Self {
        let value: Arc<D> = data.into();
        Self { value: Some(Arc::new(Shared { value, name: std::any::type_name::<D>() })) }
    }

    /// The data when it is a `D`.
    pub fn get<D: Send + Sync + 'static>(&self) -> Option<Arc<D>> {
        let shared = self.value.as_ref()?;
        Arc::clone(&shared.value).downcast::<D>().ok()
    }

    /// Whether any data is shared.
    pub fn is_some(&self) -> bool {
        self.value.is_some()
    }

    /// The type name of the shared data, if any.
    pub fn type_name(&self) -> Option<&'static str> {
        self.value.as_ref().map(|shared| shared.name)
    }

    /// The data of a trainable declaring `data = D`: what was shared, or `()` for a
    /// trainable that declares none.
    pub(crate) fn typed<D: Send + Sync + 'static>(&self) -> Option<Arc<D>> {
        self.get::<D>().or_else(|| {
            let unit: Arc<dyn Any + Send + Sync> = Arc::new(());
            unit.downcast::<D>().ok()
        })
    }
}

/// What [`Tuner::with_data`](crate::Tuner::with_data) (and `test_data = fn`) accepts for a
/// trainable declaring `#[trainable(data = D)]`: a `D`, or an `Arc<D>` already shared.
///
/// Any other type is a compile error that names the declared type and the given one.
#[diagnostic::on_unimplemented(
    message = "`with_data` was given `{Self}`, but the trainable declares `data = {D}`",
    label = "expected `{D}` or `Arc<{D}>`, found `{Self}`",
    note = "pass a `{D}` (or an `Arc<{D}>`), or change the trainable's `#[trainable(data = ..)]` to the type of this value (a trainable without `data = ..` takes `()`)"
)]
pub trait IntoSharedData<D> {
    /// The value behind the one `Arc` every trial shares.
    fn into_shared(self) -> Arc<D>;
}

impl<D> IntoSharedData<D> for D {
    fn into_shared(self) -> Arc<D> {
        Arc::new(self)
    }
}

impl<D> IntoSharedData<D> for Arc<D> {
    fn into_shared(self) -> Arc<D> {
        self
    }
}

impl TrialContext {
    /// A context for running a trainable outside an experiment (tests, benchmarks).
    pub fn detached(trial_id: impl Into<String>, seed: u64) -> Self {
        Self {
            trial_id: trial_id.into(),
            trial_dir: None,
            gpu_ids: Vec::new(),
            resources: Resources::default(),
            seed,
            data: SharedData::none(),
        }
    }

    /// The same context with `data` shared.
    pub fn with_data(mut self, data: SharedData) -> Self {
        self.data = data;
        self
    }

    /// A reproducible random generator seeded with [`TrialContext::seed`].
    pub fn rng(&self) -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(self.seed)
    }
}

/// What `#[trainable]` declares about a trainable: its config space, its metrics, its name
/// and its resources.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a trainable",
    label = "annotate the definition of `{Self}` with `#[trainable(config = .., metrics = ..)]`"
)]
pub trait TrainableSpec: Send + 'static {
    /// The config type, generated by `search_space!`.
    type Config: Space;
    /// The metrics type, deriving `Metrics`.
    type Metrics: Metrics;
    /// The data shared by every trial (`#[trainable(data = Type)]`, handed over with
    /// `Tuner::with_data`); `()` when the trainable declares none.
    type Data: Send + Sync + 'static;
    /// Display name: the struct or function name.
    const NAME: &'static str;

    /// The shared data of the run, typed: call it in `setup` (`Self::data(ctx)?`) or, in a
    /// function trainable, on the generated struct (`TrainMnist::data(session.context())?`).
    ///
    /// # Errors
    ///
    /// When the context holds no data of type [`TrainableSpec::Data`]: the trainable runs
    /// outside a run that shared it (a detached context, a save/restore check without
    /// `test_data`).
    fn data(ctx: &TrialContext) -> TrainResult<Arc<Self::Data>> {
        ctx.data.typed::<Self::Data>().ok_or_else(|| {
            let held = match ctx.data.type_name() {
                Some(name) => format!("data of type `{name}`"),
                None => "no shared data".to_owned(),
            };
            TrainError::msg(format!(
                "`{}` reads shared data of type `{}`, but its trial context holds {held}; \
                 give it with `Tuner::with_data(..)` (or `test_data = fn` in `#[trainable]` \
                 for the generated test, `SaveRestoreOptions::data` for the check)",
                Self::NAME,
                std::any::type_name::<Self::Data>()
            ))
        })
    }

    /// Resources one trial of this trainable needs with `config`.
    fn resources(config: &Self::Config) -> Resources {
        let _ = config;
        Resources::default()
    }

    /// The resources every trial needs whatever its config, when they do not depend on
    /// it (a literal `resources(..)` declaration): `Tuner::run` refuses an impossible
    /// request before the first trial. `None` when they depend on the config.
    fn static_resources() -> Option<Resources> {
        None
    }
}

/// Serialization of a trainable's state, generated by `#[trainable]` from the struct's
/// fields (except those marked `#[checkpoint(skip)]`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no generated checkpoint support",
    label = "annotate the definition of `{Self}` with `#[trainable(..)]`"
)]
pub trait Checkpointable {
    /// Whether the trainable has fields checkpointed in binary (`#[checkpoint(binary)]`):
    /// then [`Checkpointable::save_tensors`] writes `state.safetensors`, which every
    /// checkpoint of it must hold.
    const TENSORS: bool = false;

    /// The checkpointed fields as self-describing bytes (JSON), but for those marked
    /// `#[checkpoint(binary)]`.
    fn save_state(&self) -> Result<Vec<u8>, CheckpointError>;
    /// Overwrites the checkpointed fields from bytes made by [`Checkpointable::save_state`].
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError>;

    /// Writes the `#[checkpoint(binary)]` fields to `dir/state.safetensors`
    /// ([`TENSORS_FILE`](crate::storage::TENSORS_FILE)); nothing when there are none.
    fn save_tensors(&self, dir: &Path) -> Result<(), CheckpointError> {
        let _ = dir;
        Ok(())
    }

    /// Reads the `#[checkpoint(binary)]` fields back from `dir/state.safetensors`; they are
    /// assigned only once all of them were read.
    fn restore_tensors(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        let _ = dir;
        Ok(())
    }

    /// The number of steps the saved (or just loaded) state belongs to, when it can lag
    /// behind the steps taken: a function trainable's state is the one of its latest
    /// `session.checkpoint`, which may be older than its latest report, and a restored
    /// function resumes from there. `None` (the default, and what class trainables
    /// generate) means the state is always that of the latest step.
    fn state_iteration(&self) -> Option<u64> {
        None
    }
}

/// A training process that the runner steps, checkpoints and restores (the class API).
///
/// ```
/// # use tune_runtime::prelude::*;
/// # search_space! { pub struct GuessConfig { guess: i64 = randint(0, 2048) } }
/// # #[derive(Debug, Clone, Metrics)] pub struct GuessMetrics { diff: i64 }
/// #[trainable(config = GuessConfig, metrics = GuessMetrics)]
/// struct Guesser { guess: i64, iter: u64 }
///
/// impl Trainable for Guesser {
///     fn setup(config: &GuessConfig, _ctx: &TrialContext) -> TrainResult<Self> {
///         Ok(Guesser { guess: config.guess, iter: 0 })
///     }
///     fn step(&mut self) -> TrainResult<GuessMetrics> {
///         self.iter += 1;
///         self.guess += 1;
///         Ok(GuessMetrics { diff: (self.guess - 1024).abs() })
///     }
/// }
/// ```
pub trait Trainable: TrainableSpec + Checkpointable + Sized {
    /// Builds the trainable for a config. Called once per trial (or once per actor when
    /// actors are reused).
    fn setup(config: &Self::Config, ctx: &TrialContext) -> TrainResult<Self>;

    /// Runs one logical iteration of training and returns its metrics.
    fn step(&mut self) -> TrainResult<Self::Metrics>;

    /// Switches this instance to a new config, for `reuse_actors`. Return `Ok(true)` when
    /// the instance is now equivalent to a fresh `setup(config)`; the default returns
    /// `Ok(false)` (not supported) and the runner builds a new instance instead.
    fn reset_config(&mut self, config: &Self::Config, ctx: &TrialContext) -> TrainResult<bool> {
        let _ = (config, ctx);
        Ok(false)
    }

    /// Releases what the trainable holds when its trial ends.
    fn cleanup(&mut self) {}

    /// Writes files of its own (model weights, optimizer state) into a checkpoint
    /// directory, beside the generated state. Paths must be relative to `dir`.
    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        let _ = dir;
        Ok(())
    }

    /// Reads back what [`Trainable::save_files`] wrote.
    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        let _ = dir;
        Ok(())
    }
}
