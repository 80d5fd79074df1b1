//! The run API: [`Tuner`], a builder that validates everything in [`Tuner::run`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::analysis::Analysis;
use crate::checkpoint::{CheckpointStore, LocalCheckpoints};
use crate::journal::JournalStore;
use crate::objectives::Objectives;
use crate::runner::typed::TypedModel;
use crate::runner::{self, Column, Errored, FaultSettings, Settings};
use crate::scheduler::{FifoScheduler, Pausing, Scheduler};
use crate::searcher::{BasicVariantGenerator, Searcher};
use crate::space::Space;
use crate::stop::Stop;
use crate::trainable::{Resources, Trainable, TrainableSpec};
use crate::trial::{Key, Mode};

type Config<T> = <T as TrainableSpec>::Config;
type Mets<T> = <T as TrainableSpec>::Metrics;

/// Why an experiment could not run, or stopped early. Each message says what to change.
///
/// Its `Debug` form is its message, so that `fn main() -> Result<(), RunError>` prints the
/// advice (for example how to resume) rather than the variant's fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// `num_samples(0)`.
    #[error("`num_samples` is 0, so no trial would run; call `.num_samples(n)` with n >= 1")]
    NoSamples,
    /// An option has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The config override file or text is unreadable, names an unknown key or holds a
    /// value outside its domain.
    #[error("config overrides: {0}")]
    ConfigOverride(String),
    /// A stop criterion names a metric the trainable does not report.
    #[error("{0}")]
    UnknownMetric(String),
    /// The experiment directory cannot be created or written.
    #[error("cannot write to `{}`: {source}; pass a writable directory to `.local_dir(...)`", path.display())]
    LocalDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The experiment directory already holds an experiment.
    #[error(
        "`{}` already holds an experiment (it has a journal); to continue it, run with \
         `.resume(true)`; to start another, choose another `.name(...)` (or remove the \
         directory); to look at it, load it with `Analysis::from_dir`",
        path.display()
    )]
    ExperimentExists {
        /// The experiment directory.
        path: PathBuf,
    },
    /// Another run (this process or another one) holds the experiment directory.
    #[error(
        "`{}` is in use by another run of this experiment (it holds the lock on the \
         directory); wait for that run to end, or choose another `.name(...)`",
        experiment_dir.display()
    )]
    Locked {
        /// The experiment directory.
        experiment_dir: PathBuf,
    },
    /// A path inside the experiment directory is a symbolic link.
    #[error(
        "`{}` is a symbolic link inside the experiment directory; the runner writes and \
         reads only real files and directories of the experiment (a link could lead a \
         resume to write outside it or to restore another trial's state): replace it with \
         the directory or file itself",
        path.display()
    )]
    Link {
        /// The link.
        path: PathBuf,
    },
    /// The experiment directory holds files of another experiment but no journal.
    #[error(
        "`{}` holds files of an earlier experiment (such as `{}`) but no journal{}; \
         nothing was changed: move those files away, or choose another `.name(...)`",
        experiment_dir.display(),
        example.display(),
        if *resume { ", so it cannot be resumed (its journal was deleted or lost)" } else { "" }
    )]
    Leftovers {
        /// The experiment directory.
        experiment_dir: PathBuf,
        /// One of the files found.
        example: PathBuf,
        /// Whether the run was asked to resume.
        resume: bool,
    },
    /// The trainable's declared resources can never be granted.
    #[error("{0}")]
    Resources(String),
    /// The shared journal of an experiment that spans machines failed, or refused this
    /// process (another trainable or search space).
    #[error("shared experiment: {0}")]
    Shared(String),
    /// This process lost its lease on a shared experiment (it stopped answering for longer
    /// than the lease: a network partition, a SIGSTOP): the other processes took its trials
    /// over and nothing it reported afterwards was counted. Start it again to rejoin.
    #[error(
        "this process lost its lease on the shared experiment `{}`; its trials continue in \
         the other processes. Start the program again to rejoin the experiment",
        experiment_dir.display()
    )]
    Fenced {
        /// The experiment's local directory.
        experiment_dir: PathBuf,
    },
    /// The `restore` checkpoint cannot be used.
    #[error("cannot restore: {0}")]
    Restore(String),
    /// Writing results, the journal or a checkpoint failed during the run (a full disk, a
    /// read-only or removed directory). The run stopped as on Ctrl-C: results written
    /// before the failure stay in the experiment directory, and `.resume(true)` continues
    /// it once the cause is fixed.
    #[error(
        "writing `{}` failed: {source}; the run was stopped and nothing written was lost. \
         Free disk space (or make the directory writable), then run the experiment again \
         with the same `.name(..)` and `.resume(true)` to continue it; results so far are \
         in `{}` (load them with `Analysis::from_dir`)",
        path.display(), experiment_dir.display()
    )]
    Logging {
        /// The file that could not be written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
        /// The experiment directory.
        experiment_dir: PathBuf,
    },
    /// The checkpoint store (an object store) failed: it could not be reached, refused the
    /// credentials or has no such bucket when the run started, or refused a checkpoint
    /// during the run. A run it stopped stopped as on Ctrl-C: nothing written was lost, and
    /// `.resume(true)` continues it once the store works again.
    #[error(
        "{source}. The run was stopped (or did not start) and nothing written was lost; once \
         the store works, run the same program again (with `.resume(true)` to continue the \
         experiment in `{}`)",
        experiment_dir.display()
    )]
    CheckpointStore {
        /// The store's error (its message names the store and what to check).
        source: std::io::Error,
        /// The experiment directory.
        experiment_dir: PathBuf,
    },
    /// The worker threads could not be started.
    #[error("cannot start worker threads: {0}")]
    Threads(std::io::Error),
    /// The experiment cannot be resumed: its journal is unreadable or was written for
    /// another trainable, metrics or config type.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// Ctrl-C stopped the run: running trials were checkpointed and everything was
    /// flushed. Run the same program with `.resume(true)` to continue.
    #[error(
        "interrupted: {unfinished} unfinished trial(s) saved in `{}`; run the same program \
         with `.resume(true)` (same `.local_dir(..)` and `.name(..)`) to continue",
        experiment_dir.display()
    )]
    Interrupted {
        /// The experiment directory.
        experiment_dir: PathBuf,
        /// Trials not finished yet.
        unfinished: usize,
    },
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Config overrides: fixed values that replace sampled ones in every trial.
enum Overrides {
    None,
    Json(String),
    File(PathBuf),
}

/// Runs an experiment: `num_samples` trials of trainable `T`, configs from a searcher,
/// decisions from a scheduler, results written under `local_dir/name/`.
///
/// Every option has a default; nothing is checked until [`Tuner::run`], which validates
/// all options before the first trial starts.
///
/// ```no_run
/// # use tune_runtime::prelude::*;
/// # search_space! { pub struct MyConfig { lr: f64 = loguniform(1e-4, 1e-1) } }
/// # #[derive(Debug, Clone, Metrics)] pub struct MyMetrics { accuracy: f64, loss: f64 }
/// # #[trainable(config = MyConfig, metrics = MyMetrics)] pub struct MyTrainable { lr: f64 }
/// # impl Trainable for MyTrainable {
/// #     fn setup(c: &MyConfig, _: &TrialContext) -> TrainResult<Self> { Ok(Self { lr: c.lr }) }
/// #     fn step(&mut self) -> TrainResult<MyMetrics> { Ok(MyMetrics { accuracy: self.lr, loss: 1.0 - self.lr }) }
/// # }
/// # fn main() -> Result<(), RunError> {
/// let analysis = Tuner::<MyTrainable>::new()
///     .num_samples(20)
///     .stop(Stop::iterations(10).or(Stop::at_least(MyMetrics::ACCURACY, 0.95)))
///     .metric(MyMetrics::ACCURACY, Mode::Max)
///     .local_dir("./results")
///     .seed(42)
///     .run()?;
/// let best: Option<&MyConfig> = analysis.best_config(MyMetrics::ACCURACY, Mode::Max, Scope::Last);
/// # Ok(()) }
/// ```
pub struct Tuner<T: Trainable> {
    num_samples: usize,
    overrides: Overrides,
    stop: Stop<Mets<T>>,
    time_budget: Option<Duration>,
    max_concurrent: Option<usize>,
    resources: Option<Resources>,
    total_cpus: Option<f64>,
    gpu_ids: Option<Vec<usize>>,
    custom_totals: BTreeMap<String, f64>,
    reuse_actors: bool,
    cpu_budgets: bool,
    durability: crate::checkpoint::Durability,
    checkpoint_freq: u64,
    checkpoint_at_end: bool,
    keep_checkpoints_num: Option<usize>,
    checkpoint_score: Option<(Key<Mets<T>>, Mode)>,
    restore: Option<PathBuf>,
    local_dir: Option<PathBuf>,
    name: Option<String>,
    seed: Option<u64>,
    verbosity: u8,
    searcher: Box<dyn Searcher<Config<T>, Mets<T>>>,
    scheduler: Box<dyn Scheduler<Config<T>, Mets<T>>>,
    pausing: Pausing,
    metric: Option<(Key<Mets<T>>, Mode)>,
    file_logging: bool,
    status_interval: Duration,
    journal_store: Option<Box<dyn JournalStore>>,
    checkpoint_store: Arc<dyn CheckpointStore>,
    max_failures: u32,
    resume: bool,
    errored: Errored,
    handle_sigint: bool,
    isolate: bool,
    /// `capture_output`: `None` is the default (see the method).
    capture: Option<bool>,
    step_timeout: Option<Duration>,
    interrupt_grace: Duration,
    shared: Option<Box<dyn crate::journal::shared::SharedJournal>>,
    lease: Duration,
    // -- objectives and constraints (issue #14) --
    objectives: Option<Objectives<Mets<T>>>,
    // --- results (callbacks, TensorBoard files, status table columns) ---
    results: crate::callback::ResultOptions,
    /// `with_data`: shared by every trial.
    data: Option<crate::trainable::SharedData>,
}

impl<T: Trainable> fmt::Debug for Tuner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tuner")
            .field("trainable", &T::NAME)
            .field("num_samples", &self.num_samples)
            .field("stop", &self.stop)
            .field("local_dir", &self.local_dir)
            .field("name", &self.name)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl<T: Trainable> Default for Tuner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Trainable> Tuner<T> {
    /// A tuner with the defaults: one sample, no stop criterion, random/grid search, FIFO
    /// scheduling, every detected CPU, the GPUs of `CUDA_VISIBLE_DEVICES`, results in
    /// `~/tune_results/<Trainable>_<date>`, verbosity 2.
    pub fn new() -> Self {
        Self {
            num_samples: 1,
            overrides: Overrides::None,
            stop: Stop::never(),
            time_budget: None,
            max_concurrent: None,
            resources: None,
            total_cpus: None,
            gpu_ids: None,
            custom_totals: BTreeMap::new(),
            reuse_actors: false,
            cpu_budgets: true,
            durability: crate::checkpoint::Durability::Synced,
            checkpoint_freq: 0,
            checkpoint_at_end: false,
            keep_checkpoints_num: None,
            checkpoint_score: None,
            restore: None,
            local_dir: None,
            name: None,
            seed: None,
            verbosity: 2,
            searcher: Box::new(BasicVariantGenerator::new()),
            scheduler: Box::new(FifoScheduler::new()),
            pausing: Pausing::default(),
            metric: None,
            file_logging: true,
            status_interval: Duration::from_secs(5),
            journal_store: None,
            checkpoint_store: Arc::new(LocalCheckpoints),
            max_failures: 0,
            resume: false,
            errored: Errored::Keep,
            handle_sigint: true,
            isolate: false,
            capture: None,
            step_timeout: None,
            interrupt_grace: Duration::from_secs(30),
            shared: None,
            lease: Duration::from_secs(30),
            objectives: None,
            // --- results ---
            results: crate::callback::ResultOptions::default(),
            data: None,
        }
    }

    /// The data set every trial's `setup` gets (Ray Tune's `tune.with_parameters`): loaded
    /// once by the caller, shared behind an [`Arc`](std::sync::Arc), never copied or
    /// serialized. Its type is the trainable's `#[trainable(data = Type)]`: a `Type` or an
    /// `Arc<Type>` ([`IntoSharedData`](crate::IntoSharedData)); a value of another type
    /// does not compile, and the error names both types. `setup` reads it with
    /// `Self::data(ctx)?`.
    ///
    /// With [`Tuner::isolate_trials`] each worker process runs `main` again up to this
    /// `run()`, so it loads the data itself, with the same code.
    pub fn with_data(mut self, data: impl crate::IntoSharedData<T::Data>) -> Self {
        self.data = Some(crate::trainable::SharedData::new::<T::Data>(data.into_shared()));
        self
    }

    /// Number of times to sample the search space (each repetition covers the whole grid,
    /// as in Ray Tune). Default 1.
    pub fn num_samples(mut self, n: usize) -> Self {
        self.num_samples = n;
        self
    }

    /// Fixed values, as a JSON object, that replace the sampled values of those fields in
    /// every trial: `{"lr": 0.01}`. Unknown keys and out-of-domain values are errors.
    pub fn config_overrides_json(mut self, json: impl Into<String>) -> Self {
        self.overrides = Overrides::Json(json.into());
        self
    }

    /// Like [`Tuner::config_overrides_json`], read from a file when the run starts.
    pub fn config_overrides_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.overrides = Overrides::File(path.into());
        self
    }

    /// When each trial stops. Default: never (the trainable, the scheduler or the time
    /// budget ends it).
    pub fn stop(mut self, stop: Stop<Mets<T>>) -> Self {
        self.stop = stop;
        self
    }

    /// Wall time for the whole experiment: once spent, no trial starts and running trials
    /// are stopped after their current step.
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// At most this many trials run at once. Default: as many as resources allow.
    pub fn max_concurrent_trials(mut self, n: usize) -> Self {
        self.max_concurrent = Some(n);
        self
    }

    /// Resources of every trial, replacing the trainable's `resources(...)` declaration.
    pub fn resources_per_trial(mut self, resources: Resources) -> Self {
        self.resources = Some(resources);
        self
    }

    /// CPUs the experiment may use. Default: `std::thread::available_parallelism()`.
    pub fn total_cpus(mut self, cpus: f64) -> Self {
        self.total_cpus = Some(cpus);
        self
    }

    /// Number of GPUs the experiment may use, with ids `0..n`. Default: the ids listed in
    /// `CUDA_VISIBLE_DEVICES` (none when unset).
    pub fn total_gpus(mut self, n: usize) -> Self {
        self.gpu_ids = Some((0..n).collect());
        self
    }

    /// The ids of the GPUs the experiment may use; trials get theirs in
    /// [`TrialContext::gpu_ids`](crate::TrialContext::gpu_ids).
    pub fn gpu_ids(mut self, ids: Vec<usize>) -> Self {
        self.gpu_ids = Some(ids);
        self
    }

    /// Amount of a custom resource the experiment has (trials request it with
    /// [`Resources::with_custom`]).
    pub fn total_resource(mut self, name: impl Into<String>, amount: f64) -> Self {
        self.custom_totals.insert(name.into(), amount);
        self
    }

    /// Reuse the instance of a finished trial for the next one through
    /// [`Trainable::reset_config`] instead of building a new one. Default false.
    pub fn reuse_actors(mut self, reuse: bool) -> Self {
        self.reuse_actors = reuse;
        self
    }

    /// Run each trial's code within its CPU grant. Default true: a trial's `setup`, steps,
    /// checkpoints and `cleanup` (and a function trainable's own thread) run inside a rayon
    /// thread pool of `ceil(cpu)` threads (at least 1), so rayon-parallel code (`par_iter`,
    /// burn's and ndarray's CPU backends, linfa) uses the trial's CPUs instead of sharing
    /// rayon's global pool with every other trial. Isolated trials
    /// ([`isolate_trials`](Self::isolate_trials)) get `RAYON_NUM_THREADS` and
    /// `OMP_NUM_THREADS` set to the same number in their process. `false` leaves threads
    /// alone: trials use rayon's global pool (one thread per core, shared by all trials).
    pub fn cpu_budgets(mut self, yes: bool) -> Self {
        self.cpu_budgets = yes;
        self
    }

    /// Whether checkpoints are synced to the disk before they count. Default
    /// [`Durability::Synced`](crate::Durability::Synced) (two `fsync`s per checkpoint);
    /// [`Durability::Relaxed`](crate::Durability::Relaxed) skips them, for cheap experiments:
    /// a process crash still loses nothing, a machine crash may lose the checkpoints of the
    /// last seconds (a resume then repeats the steps since the latest one that survived).
    pub fn durability(mut self, durability: crate::checkpoint::Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Checkpoint every `n` iterations (0: never). Default 0.
    pub fn checkpoint_freq(mut self, n: u64) -> Self {
        self.checkpoint_freq = n;
        self
    }

    /// Checkpoint every trial when it stops. Default false.
    pub fn checkpoint_at_end(mut self, yes: bool) -> Self {
        self.checkpoint_at_end = yes;
        self
    }

    /// Keep at most `n` checkpoints per trial: the best by
    /// [`Tuner::checkpoint_score`], else the most recent.
    pub fn keep_checkpoints_num(mut self, n: usize) -> Self {
        self.keep_checkpoints_num = Some(n);
        self
    }

    /// The metric and mode that rank checkpoints for [`Tuner::keep_checkpoints_num`] and
    /// [`Analysis::best_checkpoint`].
    pub fn checkpoint_score(mut self, key: impl Into<Key<Mets<T>>>, mode: Mode) -> Self {
        self.checkpoint_score = Some((key.into(), mode));
        self
    }

    /// Start every trial from this checkpoint directory (a `checkpoint_<n>/` written by
    /// the runner); iterations continue from the checkpoint's.
    pub fn restore(mut self, checkpoint_dir: impl Into<PathBuf>) -> Self {
        self.restore = Some(checkpoint_dir.into());
        self
    }

    /// Directory holding experiment directories. Default `~/tune_results`.
    pub fn local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.local_dir = Some(dir.into());
        self
    }

    /// The experiment's name, its directory under `local_dir`. Default
    /// `<Trainable>_<YYYY-MM-DD_HH-MM-SS>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Seed of everything random in the experiment (configs, trial seeds): the same seed
    /// gives the same configs and [`TrialContext::seed`](crate::TrialContext::seed)s.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// 0: silent, 1: final summary, 2: status table (default), 3: every result.
    pub fn verbose(mut self, level: u8) -> Self {
        self.verbosity = level;
        self
    }

    /// The searcher. Default [`BasicVariantGenerator`].
    pub fn searcher(mut self, searcher: impl Searcher<Config<T>, Mets<T>> + 'static) -> Self {
        self.searcher = Box::new(searcher);
        self
    }

    /// The scheduler. Default [`FifoScheduler`].
    pub fn scheduler(mut self, scheduler: impl Scheduler<Config<T>, Mets<T>> + 'static) -> Self {
        self.scheduler = Box::new(scheduler);
        self
    }

    /// Where paused trials wait: in memory, on disk (checkpointed and dropped), or in
    /// memory up to a number of them (the default, [`Pausing::Auto`] with 8).
    pub fn pausing(mut self, pausing: Pausing) -> Self {
        self.pausing = pausing;
        self
    }

    /// The experiment's main metric: shown in the status table and used by the final
    /// summary. Default: the first field of the metrics, maximized.
    pub fn metric(mut self, key: impl Into<Key<Mets<T>>>, mode: Mode) -> Self {
        self.metric = Some((key.into(), mode));
        self
    }

    /// Write per-trial files and the journal (default true). With false nothing but
    /// checkpoints is written and the analysis lives in memory only.
    pub fn file_logging(mut self, yes: bool) -> Self {
        self.file_logging = yes;
        self
    }

    /// How often the status block is printed and files are flushed. Default 5 s.
    pub fn status_interval(mut self, every: Duration) -> Self {
        self.status_interval = every;
        self
    }

    /// Where journal records go, instead of `experiment_journal.jsonl`.
    pub fn journal_store(mut self, store: impl JournalStore + 'static) -> Self {
        self.journal_store = Some(Box::new(store));
        self
    }

    /// Where checkpoints are written. Default [`LocalCheckpoints`].
    pub fn checkpoint_store(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.checkpoint_store = Arc::new(store);
        self
    }

    /// Retry a trial that fails (an error or a panic in `setup`, `step`, `save`,
    /// `restore`, a failed checkpoint, NaN metrics) up to `n` times, each time from its
    /// latest checkpoint that verifies (from the start when it has none); its results after
    /// that checkpoint are dropped. Each failure is recorded in the journal, in the trial's
    /// `error.txt` and in [`TrialInfo::failures`](crate::analysis::TrialInfo::failures). Default 0.
    pub fn max_failures(mut self, n: u32) -> Self {
        self.max_failures = n;
        self
    }

    /// Continue the experiment `local_dir/name` from its journal when it exists (start it
    /// when it does not): finished trials keep their results, unfinished ones restart from
    /// their latest checkpoint, the searcher and scheduler continue from their saved
    /// state. Needs an explicit [`Tuner::name`]. Default false.
    ///
    /// ```no_run
    /// # use tune_runtime::prelude::*;
    /// # search_space! { pub struct MyConfig { lr: f64 = loguniform(1e-4, 1e-1) } }
    /// # #[derive(Debug, Clone, Metrics)] pub struct MyMetrics { accuracy: f64, loss: f64 }
    /// # #[trainable(config = MyConfig, metrics = MyMetrics)] pub struct MyTrainable { lr: f64 }
    /// # impl Trainable for MyTrainable {
    /// #     fn setup(c: &MyConfig, _: &TrialContext) -> TrainResult<Self> { Ok(Self { lr: c.lr }) }
    /// #     fn step(&mut self) -> TrainResult<MyMetrics> { Ok(MyMetrics { accuracy: self.lr, loss: 1.0 - self.lr }) }
    /// # }
    /// # fn main() -> Result<(), RunError> {
    /// // Safe to run again after a crash, a kill or Ctrl-C: it picks up where it stopped.
    /// let analysis = Tuner::<MyTrainable>::new().name("mnist").local_dir("./results").resume(true).run()?;
    /// # Ok(()) }
    /// ```
    pub fn resume(mut self, yes: bool) -> Self {
        self.resume = yes;
        self
    }

    /// With [`Tuner::resume`]: trials that ended in ERROR continue from their latest
    /// checkpoint too (with a fresh `max_failures` budget). Default false: they stay ERROR.
    pub fn resume_errored(mut self, yes: bool) -> Self {
        self.errored = if yes { Errored::Resume } else { Errored::Keep };
        self
    }

    /// With [`Tuner::resume`]: trials that ended in ERROR start again from scratch.
    /// Default false.
    pub fn restart_errored(mut self, yes: bool) -> Self {
        self.errored = if yes { Errored::Restart } else { Errored::Keep };
        self
    }

    /// Handle Ctrl-C (SIGINT) during the run, and SIGTERM and SIGHUP the same way (batch
    /// schedulers and container runtimes send SIGTERM before SIGKILL): the first stops
    /// gracefully (running trials are checkpointed after their current step, files
    /// flushed, and `run` returns [`RunError::Interrupted`] saying how to resume; steps
    /// still running after [`Tuner::interrupt_grace`] are given up on); the second exits
    /// the process at once (still resumable). Not installed when the program has its own
    /// handler. Default true.
    pub fn handle_sigint(mut self, yes: bool) -> Self {
        self.handle_sigint = yes;
        self
    }

    /// Run every trial in a child process of its own: the program is started again as a
    /// worker (same executable, same arguments, [`WORKER_ENV`](crate::WORKER_ENV) set),
    /// runs its `main` up to this `Tuner::<T>::run()` call, which then serves one trial and
    /// exits the process instead of returning. A trainable that aborts, segfaults, calls
    /// `exit` or is killed (the OOM killer) then ends only its own trial, in ERROR (or
    /// retried, see [`Tuner::max_failures`]); results are the same as in process. A worker
    /// exits when the program that started it dies (even by SIGKILL); one stopped
    /// (SIGSTOP) for 30 s is killed and its trial fails (the environment variable
    /// `TUNE_WORKER_STOPPED_LIMIT` sets the seconds, or `off`). Code
    /// before `run()` in `main` runs in every worker: keep it cheap, or skip it when
    /// [`is_worker`](crate::is_worker) is true. The metrics type must derive `Metrics`.
    /// Default false.
    pub fn isolate_trials(mut self, yes: bool) -> Self {
        self.isolate = yes;
        self
    }

    /// Whether trials' standard output and error go to `stdout` and `stderr` files in
    /// their trial directories (appended to across retries and resumes), so that a
    /// `println!` in `setup` or `step` does not tear the status table.
    ///
    /// By default, isolated trials ([`Tuner::isolate_trials`]) always write their files,
    /// and trials in process are captured only while the live status table is drawn
    /// (verbosity 2 or more and stdout a terminal). `true` captures in process whatever
    /// stdout is; `false` captures nothing (output goes where it would without the
    /// runner). In process the capture is of the whole process's file descriptors 1 and 2
    /// during `run()` (Unix only): a line reaches a trial's file when that trial's code was
    /// the only trial code running when it was written, and the experiment directory's
    /// `stdout`/`stderr` otherwise; see `docs/runner.md` (Output capture). Needs
    /// [`Tuner::file_logging`].
    pub fn capture_output(mut self, yes: bool) -> Self {
        self.capture = Some(yes);
        self
    }

    /// A task of a trial on a worker that runs longer than this is given up on: a trial's
    /// start (`setup`, the restore, the first step), a `step` with the checkpoint after it,
    /// or a pause to disk fails its trial, which is retried like any failure
    /// ([`Tuner::max_failures`]); a checkpoint at the end or a `cleanup` that hangs ends
    /// the trial without them, as it was ending. An isolated trial's process is killed; an
    /// in-process step that never returns keeps its thread until the program exits (the
    /// run goes on with another). Without a limit such a step blocks the run until Ctrl-C.
    /// Default: no limit.
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # search_space! { pub struct Cfg { x: f64 = uniform(0.0, 1.0) } }
    /// # #[derive(Metrics, Debug, Clone)] pub struct M { loss: f64 }
    /// # #[trainable(config = Cfg, metrics = M, test = false)]
    /// # pub struct Net { x: f64 }
    /// # impl Trainable for Net {
    /// #     fn setup(c: &Cfg, _: &TrialContext) -> TrainResult<Self> { Ok(Net { x: c.x }) }
    /// #     fn step(&mut self) -> TrainResult<M> { Ok(M { loss: self.x }) }
    /// # }
    /// use std::time::Duration;
    /// let tuner = Tuner::<Net>::new()
    ///     .step_timeout(Duration::from_secs(600)) // a step takes seconds; 10 min is a hang
    ///     .max_failures(2); // retried from its latest checkpoint
    /// # let _ = tuner;
    /// ```
    pub fn step_timeout(mut self, limit: Duration) -> Self {
        self.step_timeout = Some(limit);
        self
    }

    /// After Ctrl-C (or SIGTERM), how long running steps get to return before the run
    /// stops without them (they continue from their latest checkpoint on a resume; an
    /// isolated trial's process is killed). Keep it under the time the scheduler leaves
    /// between SIGTERM and SIGKILL (Kubernetes: 30 s by default; Slurm: `KillWait`).
    /// Default 30 s.
    pub fn interrupt_grace(mut self, grace: Duration) -> Self {
        self.interrupt_grace = grace;
        self
    }

    // -- objectives and constraints (issue #14) --

    /// Several objectives, or constraints, to optimize together: the searcher gets them
    /// (NSGA-II, TPE and GP-BO handle several objectives and constraints; one that cannot
    /// makes `run` fail before any trial with [`RunError::InvalidOption`]). The first
    /// objective is also the experiment's metric unless [`Tuner::metric`] names another.
    /// Pick the Pareto front from the analysis with
    /// [`Analysis::pareto_front`](crate::Analysis::pareto_front).
    ///
    /// ```
    /// # use tune_runtime::prelude::*;
    /// # #[derive(Debug, Clone, Metrics)] struct M { error: f64, latency_ms: f64 }
    /// # tune_runtime::search_space! { struct Cfg { lr: f64 = loguniform(1e-4, 1e-1) } }
    /// # #[trainable(config = Cfg, metrics = M)] struct Model { lr: f64 }
    /// # impl Trainable for Model {
    /// #     fn setup(c: &Cfg, _: &TrialContext) -> TrainResult<Self> { Ok(Model { lr: c.lr }) }
    /// #     fn step(&mut self) -> TrainResult<M> { Ok(M { error: self.lr, latency_ms: 1.0 / self.lr }) }
    /// # }
    /// use tune_runtime::{Objectives, searcher::Nsga2};
    /// let tuner = Tuner::<Model>::new()
    ///     .objectives(Objectives::new().minimize(M::ERROR).minimize(M::LATENCY_MS))
    ///     .searcher(Nsga2::new());
    /// ```
    pub fn objectives(mut self, objectives: Objectives<Mets<T>>) -> Self {
        self.objectives = Some(objectives);
        self
    }

    /// Runs this process as a peer of an experiment shared by several processes (on one or
    /// several machines), through a journal they all reach: a PostgreSQL database in
    /// production (`PostgresJournal`, feature `postgres`). Every process runs the same
    /// program with the same experiment; each runs trials on its own resources, and they
    /// share the searcher's history, the scheduler's data and `num_samples`. Checkpoints
    /// must be where every process reads them (`checkpoint_store`, an object store) for a
    /// trial to continue in another process when its own dies. See `docs/distributed.md`.
    pub fn shared_journal(
        mut self,
        journal: impl crate::journal::shared::SharedJournal + 'static,
    ) -> Self {
        self.shared = Some(Box::new(journal));
        self
    }

    /// In a shared experiment: how long this process may go without renewing its lease
    /// before the other processes take its trials over (it renews it every quarter of
    /// this). Default 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Validates every option, then runs the experiment on this thread (the driver) and
    /// a pool of worker threads. Returns the analysis, which lists errored trials; an
    /// `Err` means the experiment could not run or could not write its results.
    pub fn run(mut self) -> Result<Analysis<Config<T>, Mets<T>>, RunError> {
        let data = match self.data.take() {
            Some(data) => data,
            None if std::any::TypeId::of::<T::Data>() == std::any::TypeId::of::<()>() => {
                crate::trainable::SharedData::none()
            }
            None => {
                return Err(RunError::InvalidOption(format!(
                    "`{}` declares shared data of type `{}`: hand it over with \
                     `Tuner::with_data(data)` before `run()`",
                    T::NAME,
                    std::any::type_name::<T::Data>()
                )));
            }
        };
        runner::serve_if_worker::<T>(&data)?;
        if self.num_samples == 0 {
            return Err(RunError::NoSamples);
        }
        if self.verbosity > 3 {
            return Err(RunError::InvalidOption(format!(
                "verbosity {} is not one of 0, 1, 2, 3; use `.verbose(0..=3)`",
                self.verbosity
            )));
        }
        if self.max_concurrent == Some(0) {
            return Err(RunError::InvalidOption(
                "`max_concurrent_trials(0)` would run nothing; use at least 1".into(),
            ));
        }
        if self.keep_checkpoints_num == Some(0) {
            return Err(RunError::InvalidOption(
                "`keep_checkpoints_num(0)` would delete every checkpoint; use at least 1 or \
                 do not call it"
                    .into(),
            ));
        }
        let total_cpus = self.total_cpus.unwrap_or(crate::resources::detected_cpus() as f64);
        if !total_cpus.is_finite() || total_cpus <= 0.0 {
            return Err(RunError::InvalidOption(format!(
                "`total_cpus({total_cpus})` must be a positive number"
            )));
        }
        self.stop.resolve().map_err(RunError::UnknownMetric)?;
        let overrides = self.load_overrides()?;
        let restore = match &self.restore {
            Some(dir) => {
                let meta = crate::checkpoint::read_meta(dir).map_err(RunError::Restore)?;
                if meta.trainable != T::NAME {
                    return Err(RunError::Restore(format!(
                        "`{}` was written by `{}`, not `{}`; pass a checkpoint of this trainable",
                        dir.display(),
                        meta.trainable,
                        T::NAME
                    )));
                }
                Some((dir.clone(), meta))
            }
            None => None,
        };
        let seed = self.seed.unwrap_or_else(runner::entropy_seed);
        let name =
            self.name.clone().unwrap_or_else(|| format!("{}_{}", T::NAME, runner::date_stamp()));
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
            return Err(RunError::InvalidOption(format!(
                "experiment name `{name}` must be a plain directory name (no `/`, not `.` or `..`)"
            )));
        }
        if self.resume && self.name.is_none() {
            return Err(RunError::InvalidOption(
                "`resume(true)` needs the experiment's name: add `.name(\"...\")` (the \
                 default name holds the start time, so it never matches an earlier run)"
                    .into(),
            ));
        }
        let local_dir = self.local_dir.clone().unwrap_or_else(default_local_dir);
        if self.objectives.as_ref().is_some_and(Objectives::is_empty) {
            return Err(RunError::InvalidOption(
                "`objectives(..)` holds no objective; add one with `.minimize(..)` or \
                 `.maximize(..)`"
                    .into(),
            ));
        }
        if let Some(o) = &self.objectives {
            // Checked again by the runner after `setup`; here so that nothing is written.
            self.searcher.set_objectives(o).map_err(|e| RunError::InvalidOption(e.to_string()))?;
        }
        let first_goal = self.objectives.as_ref().and_then(|o| o.goals().first().copied());
        let metric = self.metric.or(first_goal).or_else(|| {
            (!<Mets<T> as crate::Metrics>::NAMES.is_empty()).then(|| {
                let m = crate::Metric::new(0, <Mets<T> as crate::Metrics>::NAMES[0]);
                (Key::Metric(m), Mode::Max)
            })
        });
        let gpu_ids = self.gpu_ids.take().unwrap_or_else(crate::resources::visible_gpus);
        let isolate = self.isolate;
        self.results
            .validate(<Mets<T> as crate::Metrics>::NAMES)
            .map_err(RunError::InvalidOption)?;
        let column = |(key, mode): (Key<Mets<T>>, Mode)| Column {
            index: key.column(),
            name: key.name(),
            mode,
        };
        if let Some(why) = self.impossible_resources(total_cpus, &gpu_ids) {
            return Err(RunError::Resources(why));
        }
        let settings = Settings {
            num_samples: self.num_samples,
            overrides,
            time_budget: self.time_budget,
            max_concurrent: self.max_concurrent.unwrap_or(usize::MAX),
            total_cpus,
            gpu_ids,
            custom_totals: self.custom_totals,
            reuse_actors: self.reuse_actors,
            cpu_budgets: self.cpu_budgets,
            durability: self.durability,
            checkpoint_freq: self.checkpoint_freq,
            checkpoint_at_end: self.checkpoint_at_end,
            keep_checkpoints_num: self.keep_checkpoints_num,
            checkpoint_score: self.checkpoint_score.map(column),
            restore,
            experiment_dir: local_dir.join(&name),
            name,
            seed,
            verbosity: self.verbosity,
            pausing: self.pausing,
            metric: metric.map(column),
            file_logging: self.file_logging,
            status_interval: self.status_interval,
            journal_store: self.journal_store,
            checkpoint_store: self.checkpoint_store,
            faults: FaultSettings {
                max_failures: self.max_failures,
                resume: self.resume.then_some(self.errored),
                handle_sigint: self.handle_sigint,
                step_timeout: self.step_timeout,
                interrupt_grace: self.interrupt_grace,
            },
            shared: self.shared,
            lease: self.lease,
            space: space_fingerprint::<Config<T>>(),
            results: self.results,
            data,
            capture: self.capture,
            isolate,
        };
        let model =
            TypedModel::<T>::new(self.searcher, self.scheduler, self.stop, metric, self.resources)
                .with_objectives(self.objectives);
        runner::run::<T>(settings, model, isolate)
    }

    /// Why the trainable's resources can never be granted here, when they are the same
    /// for every config (a literal declaration, or `resources_per_trial`): checked before
    /// the first trial, so that a run does not end with every trial in ERROR.
    fn impossible_resources(&self, total_cpus: f64, gpu_ids: &[usize]) -> Option<String> {
        let req = match &self.resources {
            Some(r) => r.clone(),
            None => T::static_resources()?,
        };
        let pool = crate::resources::ResourcePool::new(
            total_cpus,
            gpu_ids.to_vec(),
            self.custom_totals.clone(),
        );
        pool.never_fits(&req).map(|why| {
            format!(
                "{why}; every trial asks for this, so none could run: lower the request in \
                 `#[trainable(resources(..))]` (or `resources_per_trial`), or give the \
                 experiment more (`total_cpus`, `gpu_ids`, `total_resource`)"
            )
        })
    }

    fn load_overrides(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, RunError> {
        let text = match &self.overrides {
            Overrides::None => return Ok(None),
            Overrides::Json(s) => s.clone(),
            Overrides::File(p) => std::fs::read_to_string(p).map_err(|e| {
                RunError::ConfigOverride(format!(
                    "cannot read `{}`: {e}; check the path",
                    p.display()
                ))
            })?,
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            RunError::ConfigOverride(format!(
                "not valid JSON ({e}); write an object like {{\"lr\": 0.01}}"
            ))
        })?;
        let serde_json::Value::Object(map) = value else {
            return Err(RunError::ConfigOverride(
                "expected a JSON object of field values like {\"lr\": 0.01}".into(),
            ));
        };
        // Check keys and domains against a sampled config now, before any trial.
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let sample = <Config<T> as Space>::sample(&mut rng);
        apply_overrides(&sample, &map).map_err(RunError::ConfigOverride)?;
        Ok(Some(map))
    }
}

/// A fingerprint of a search space: a CRC-32 of its dimensions (names, kinds, bounds).
fn space_fingerprint<C: Space>() -> String {
    let mut dims = Vec::new();
    C::describe(&mut dims, "", None);
    let text = format!("{dims:?}");
    format!("{:08x}", crc32fast::hash(text.as_bytes()))
}
// --- results: callbacks, TensorBoard files and the status table's columns ---
// (stored here; the runner's `Settings` takes them when the driver calls the callbacks)
impl<T: Trainable> Tuner<T> {
    /// Adds a [`Callback`](crate::callback::Callback): code of yours called on every trial
    /// start, result, checkpoint and end, after the built-in loggers. Callbacks run on the
    /// driver thread, in the order they were added; a callback's error stops the run
    /// resumably, as a full disk does.
    pub fn callback(mut self, callback: impl crate::callback::Callback + 'static) -> Self {
        self.results.callbacks.push(callback);
        self
    }

    /// Write TensorBoard event files in each trial's directory (default true).
    pub fn tensorboard(mut self, yes: bool) -> Self {
        self.results.tensorboard = yes;
        self
    }

    /// The metrics the status table shows, in this order. Default: every metric.
    pub fn metric_columns<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.results.metric_columns = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The hyperparameters the status table shows, in this order, by name (`lr`; a field
    /// of a nested config as `model.layers`; an enum as its field's name). Default: every
    /// hyperparameter.
    pub fn parameter_columns<S: Into<String>>(
        mut self,
        names: impl IntoIterator<Item = S>,
    ) -> Self {
        self.results.parameter_columns = Some(names.into_iter().map(Into::into).collect());
        self
    }
}
// --- end results ---

fn default_local_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| Path::new(&h).join("tune_results"))
        .unwrap_or_else(|| PathBuf::from("tune_results"))
}

fn merge(
    target: &mut serde_json::Value,
    over: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Result<(), String> {
    let serde_json::Value::Object(obj) = target else {
        return Err(format!("`{prefix}` is not a nested config, so it has no fields to override"));
    };
    for (k, v) in over {
        let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        let Some(slot) = obj.get_mut(k) else {
            let known: Vec<&str> = obj.keys().map(String::as_str).collect();
            return Err(format!(
                "unknown key `{path}`; the config has: {}. Fix or remove the key",
                known.join(", ")
            ));
        };
        match (slot.is_object(), v) {
            (true, serde_json::Value::Object(sub)) => merge(slot, sub, &path)?,
            _ => *slot = v.clone(),
        }
    }
    Ok(())
}

/// `config` with the override values put in; errors name the key and the fix.
pub(crate) fn apply_overrides<C: Space>(
    config: &C,
    over: &serde_json::Map<String, serde_json::Value>,
) -> Result<C, String> {
    let mut json = config.to_json_value();
    merge(&mut json, over, "")?;
    C::from_json_value(json).map_err(|e| format!("{e}; change the value to one inside its domain"))
}
