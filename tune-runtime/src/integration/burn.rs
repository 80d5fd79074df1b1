//! A burn training run as a trial (feature `burn`): burn's `SupervisedTraining` reports
//! to the tune [`Session`], stops and pauses at epoch boundaries, and checkpoints burn's
//! own records.
//!
//! ```ignore
//! use tune_runtime::integration::burn::fit;
//!
//! #[trainable(data = Digits)]
//! fn mlp(config: &Cfg, session: &mut Session<Scores>) -> TrainResult<()> {
//!     let data = Mlp::data(session.context())?; // the struct `#[trainable]` generates
//!     let device = Device::flex().autodiff();
//!     let net = Net::new(config, &device);
//!     let learner = Learner::new(net, AdamConfig::new().init(), ConstantLr::new(config.lr));
//!     let training = SupervisedTraining::new(scratch_dir, train_loader(&data), valid_loader(&data))
//!         .metrics((AccuracyMetric::new(), LossMetric::new()))
//!         .num_epochs(30);
//!     fit(session, training, learner, |epoch| {
//!         Ok(Scores {
//!             accuracy: epoch.valid_fraction("Accuracy")?, // burn's percent, as a fraction
//!             loss: epoch.valid("Loss")?,
//!         })
//!     })?;
//!     Ok(())
//! }
//! ```
//!
//! A whole program is the `burn_digits` example (`examples/examples/burn_digits.rs`);
//! the guide is `docs/training.md`, section "burn".
//!
//! What [`fit`] does to the `SupervisedTraining` it is given, at every epoch boundary
//! (after burn's validation pass):
//!
//! - the closure maps burn's recorded metrics of the epoch ([`EpochMetrics`]) to the
//!   trainable's typed metrics struct, which is reported with
//!   [`Session::report_with`]: one report per epoch;
//! - when the runner keeps a checkpoint at that report (`checkpoint_freq`, a pause, a PBT
//!   exploit, the end), burn's model, optimizer and learning-rate scheduler records of that
//!   epoch are written by burn's own [`FileCheckpointer`] into the checkpoint's
//!   [`RECORDS_DIR`] (`burn/model-<epoch>.bpk`, `burn/optim-<epoch>.bpk`,
//!   `burn/scheduler-<epoch>.bpk`), which the manifest covers like any checkpoint file; at
//!   other epochs nothing is written;
//! - when the runner stops the trial (a scheduler, a stop criterion, a pause after its
//!   checkpoint), burn's early-stopping hook ends `fit` before the next epoch and [`fit`]
//!   returns [`Stopped`];
//! - a restored run (retry, resume, pause, PBT exploit) loads those records
//!   (`SupervisedTraining::checkpoint(epoch)`) and continues at the next epoch.
//!
//! It replaces, on that `SupervisedTraining`: the renderer (a quiet [`QuietRenderer`], so
//! the status table stays readable), the checkpointers and checkpointing strategy (burn
//! keeps one record set in memory, and tune decides when it goes to disk), the early-stopping
//! strategy (burn keeps one: use a tune scheduler or [`Stop`](crate::Stop) instead), and
//! burn's application logger (`experiment.log` installs a process-wide `tracing` subscriber,
//! which several trials in one process would fight over). It adds a metric logger that keeps
//! each epoch's values in memory; loggers registered before stay.
//!
//! Units: burn records accuracy-like metrics in percent (unit `"%"`).
//! [`EpochMetrics::valid_fraction`] divides them by 100 (and refuses a metric whose unit is
//! not `"%"`); [`EpochMetrics::valid`] returns burn's number as it is.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ::burn::optim::OptimizerRecord;
use ::burn::optim::lr_scheduler::LrSchedulerRecord;
use ::burn::store::ModuleRecord;
use ::burn::train::checkpoint::{
    Checkpoint, Checkpointer, CheckpointerError, CheckpointingAction, CheckpointingStrategy,
    FileCheckpointer,
};
use ::burn::train::logger::{EvaluationProgressLogger, MetricLogger, TrainingProgressLogger};
use ::burn::train::metric::store::{
    Aggregate, EpochSummary, EventStoreClient, MetricsUpdate, Split,
};
use ::burn::train::metric::{MetricAttributes, MetricDefinition, MetricId, NumericEntry};
use ::burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use ::burn::train::{
    EarlyStoppingStrategy, Learner, LearnerModel, LearnerSummary, SupervisedTraining,
};

use crate::error::{Stopped, TrainError, TrainResult};
use crate::metrics::Metrics;
use crate::session::Session;

/// The burn crate this integration is built on (the same version): name burn's types
/// through it, or depend on the same `burn` version.
pub use ::burn;

/// The subdirectory of a checkpoint that holds burn's records.
pub const RECORDS_DIR: &str = "burn";

/// How long writing a checkpoint waits for burn's checkpointer threads to hand over the
/// epoch's records (they are sent before the early-stopping hook runs; this only bounds a
/// checkpointer that died).
const RECORDS_WAIT: Duration = Duration::from_secs(120);

/// Runs `training` on `learner` as this trial: one [`Session::report_with`] per epoch with
/// the metrics `to_metrics` makes of burn's recorded values, burn's records in the
/// checkpoints, and a stop of the runner ending training at the epoch boundary. See the
/// [module documentation](self) for what it changes on `training`.
///
/// A restored trial ([`Session::restored_dir`] holds a checkpoint with burn's records)
/// continues from the records: the model, the optimizer's state and the scheduler's state
/// of the checkpoint's epoch, training from the next epoch up to `num_epochs` (the total,
/// counting the epochs before the checkpoint). The learner passed in gives the rest: the
/// learning rate of a constant schedule (which has no state to restore) comes from it, so
/// a PBT exploit continues the source's weights and optimizer moments with the exploited
/// config's learning rate.
///
/// # Errors
///
/// - [`Stopped`] when the runner stopped the trial: return it with `?`, the trial ends
///   normally;
/// - the error of `to_metrics` (training stops at that epoch);
/// - a restored checkpoint whose burn records are missing or incomplete (names the file);
/// - burn's own training error.
///
/// A panic inside burn's training propagates, after the session is put back.
pub fn fit<M, LM, F>(
    session: &mut Session<M>,
    training: SupervisedTraining<LM>,
    learner: Learner<LM>,
    to_metrics: F,
) -> TrainResult<LM>
where
    M: Metrics,
    LM: LearnerModel,
    F: FnMut(&EpochMetrics<'_>) -> TrainResult<M> + Send + 'static,
{
    let restored = match session.restored_dir() {
        Some(dir) => Some(restored_records(dir)?),
        None => None,
    };
    let restore_from = restored.as_ref().map(|(dir, _)| dir.clone());
    let latest = Arc::new(Latest::default());
    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let reporter = Arc::new(Mutex::new(Reporter {
        session: Some(session.lend()),
        to_metrics,
        latest: Arc::clone(&latest),
        recorded: Arc::clone(&recorded),
        outcome: Outcome::Running,
    }));

    let mut training = training
        .renderer(Box::new(QuietRenderer))
        .with_application_logger(None)
        .with_metric_logger(MemoryLogger { recorded })
        .with_custom_checkpointers(
            TuneCheckpointer::<ModuleRecord>::new(&latest, &restore_from),
            TuneCheckpointer::<OptimizerRecord>::new(&latest, &restore_from),
            TuneCheckpointer::<LrSchedulerRecord>::new(&latest, &restore_from),
        )
        .with_checkpointing_strategy(EveryEpoch)
        .early_stopping(TuneStop { reporter: Arc::clone(&reporter) });
    if let Some((_, epoch)) = restored {
        training = training.checkpoint(epoch);
    }

    let result = catch_unwind(AssertUnwindSafe(|| training.launch(learner)));

    // Put the session back, whatever happened to the training.
    let mut reporter = lock(&reporter);
    if let Some(lent) = reporter.session.take() {
        *session = lent;
    }
    let outcome = std::mem::replace(&mut reporter.outcome, Outcome::Running);
    drop(reporter);

    let result = match result {
        Ok(result) => result,
        Err(panic) => resume_unwind(panic),
    };
    match outcome {
        Outcome::Stopped => return Err(Stopped.into()),
        Outcome::Failed(e) => return Err(e),
        Outcome::Running => {}
    }
    if let Some(error) = result.error {
        return Err(TrainError::msg(format!("burn's training failed: {error}")));
    }
    Ok(result.model)
}

/// The epoch of a restored checkpoint's burn records, and their directory.
fn restored_records(checkpoint: &Path) -> TrainResult<(PathBuf, usize)> {
    let dir = checkpoint.join(RECORDS_DIR);
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        TrainError::msg(format!(
            "the restored checkpoint has no burn records (`{}`: {e}); was it written by \
             `integration::burn::fit`?",
            dir.display()
        ))
    })?;
    let mut epoch = None;
    for entry in entries {
        let name =
            entry.map_err(|e| TrainError::msg(format!("{}: {e}", dir.display())))?.file_name();
        let found = name
            .to_str()
            .and_then(|n| n.strip_prefix("model-"))
            .and_then(|n| n.strip_suffix(".bpk"))
            .and_then(|n| n.parse::<usize>().ok());
        epoch = epoch.max(found);
    }
    let epoch = epoch.ok_or_else(|| {
        TrainError::msg(format!(
            "no burn model record (`model-<epoch>.bpk`) in `{}`",
            dir.display()
        ))
    })?;
    for name in ["optim", "scheduler"] {
        let file = dir.join(format!("{name}-{epoch}.bpk"));
        if !file.is_file() {
            return Err(TrainError::msg(format!(
                "the burn records of epoch {epoch} are incomplete: `{}` is missing",
                file.display()
            )));
        }
    }
    Ok((dir, epoch))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The latest records burn's checkpointers handed over, one set, replaced every epoch.
#[derive(Default)]
struct Latest {
    slots: Mutex<Slots>,
    ready: Condvar,
}

#[derive(Default)]
struct Slots {
    model: Option<(usize, ModuleRecord)>,
    optim: Option<(usize, OptimizerRecord)>,
    scheduler: Option<(usize, LrSchedulerRecord)>,
}

impl Slots {
    fn holds(&self, epoch: usize) -> bool {
        self.model.as_ref().is_some_and(|(e, _)| *e == epoch)
            && self.optim.as_ref().is_some_and(|(e, _)| *e == epoch)
            && self.scheduler.as_ref().is_some_and(|(e, _)| *e == epoch)
    }
}

impl Latest {
    /// Writes the records of `epoch` with burn's file checkpointer into `checkpoint`'s
    /// [`RECORDS_DIR`], once the three checkpointer threads have handed them over.
    fn write(&self, epoch: usize, checkpoint: &Path) -> TrainResult<()> {
        let deadline = Instant::now() + RECORDS_WAIT;
        let mut slots = lock(&self.slots);
        while !slots.holds(epoch) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TrainError::msg(format!(
                    "burn's checkpointers did not hand over the records of epoch {epoch}"
                )));
            }
            slots = match self.ready.wait_timeout(slots, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let taken = (slots.model.take(), slots.optim.take(), slots.scheduler.take());
        drop(slots);
        let (Some((_, model)), Some((_, optim)), Some((_, scheduler))) = taken else {
            unreachable!("`holds` checked all three records");
        };
        let dir = checkpoint.join(RECORDS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| TrainError::msg(format!("creating `{}`: {e}", dir.display())))?;
        save(&dir, "model", epoch, model)?;
        save(&dir, "optim", epoch, optim)?;
        save(&dir, "scheduler", epoch, scheduler)
    }
}

fn save<R: Checkpoint>(dir: &Path, name: &str, epoch: usize, record: R) -> TrainResult<()> {
    Checkpointer::<R>::save(&FileCheckpointer::new(dir, name), epoch, record).map_err(|e| {
        TrainError::msg(format!(
            "writing burn's {name} record of epoch {epoch} in `{}`: {e}",
            dir.display()
        ))
    })
}

/// A record kind and its slot.
trait Slot: Checkpoint {
    const NAME: &'static str;
    fn slot(slots: &mut Slots) -> &mut Option<(usize, Self)>;
}

impl Slot for ModuleRecord {
    const NAME: &'static str = "model";
    fn slot(slots: &mut Slots) -> &mut Option<(usize, Self)> {
        &mut slots.model
    }
}

impl Slot for OptimizerRecord {
    const NAME: &'static str = "optim";
    fn slot(slots: &mut Slots) -> &mut Option<(usize, Self)> {
        &mut slots.optim
    }
}

impl Slot for LrSchedulerRecord {
    const NAME: &'static str = "scheduler";
    fn slot(slots: &mut Slots) -> &mut Option<(usize, Self)> {
        &mut slots.scheduler
    }
}

/// burn's checkpointer for one record kind: saving keeps the record in memory (the runner
/// decides whether it reaches the disk), restoring reads burn's file from the restored
/// checkpoint.
struct TuneCheckpointer<R> {
    latest: Arc<Latest>,
    restore_from: Option<PathBuf>,
    kind: PhantomData<fn() -> R>,
}

impl<R> TuneCheckpointer<R> {
    fn new(latest: &Arc<Latest>, restore_from: &Option<PathBuf>) -> Self {
        Self { latest: Arc::clone(latest), restore_from: restore_from.clone(), kind: PhantomData }
    }
}

impl<R: Slot> Checkpointer<R> for TuneCheckpointer<R> {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        *R::slot(&mut lock(&self.latest.slots)) = Some((epoch, record));
        self.latest.ready.notify_all();
        Ok(())
    }

    fn delete(&self, _epoch: usize) -> Result<(), CheckpointerError> {
        Ok(())
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        match &self.restore_from {
            Some(dir) => Checkpointer::<R>::restore(&FileCheckpointer::new(dir, R::NAME), epoch),
            None => Err(CheckpointerError::Unknown(format!(
                "no restored checkpoint to read burn's {} record of epoch {epoch} from",
                R::NAME
            ))),
        }
    }
}

/// Hands every epoch's records to the checkpointers.
struct EveryEpoch;

impl CheckpointingStrategy for EveryEpoch {
    fn checkpointing(
        &mut self,
        _epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        vec![CheckpointingAction::Save]
    }
}

/// burn's recorded metric values, by name, split and epoch (the serialized entries).
#[derive(Default)]
struct Recorded {
    names: HashMap<MetricId, String>,
    units: HashMap<String, Option<String>>,
    values: HashMap<(String, Split, usize), Vec<String>>,
}

/// A metric logger that keeps the values of the current and previous epoch in memory, so
/// that the event store can aggregate them (burn's in-memory logger counts epochs from the
/// first it sees, which a restored run does not start at).
struct MemoryLogger {
    recorded: Arc<Mutex<Recorded>>,
}

impl MetricLogger for MemoryLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let mut recorded = lock(&self.recorded);
        recorded.values.retain(|(_, s, e), _| s != split || *e + 1 >= epoch);
        let entries = update.entries.iter().chain(update.entries_numeric.iter().map(|n| &n.entry));
        for entry in entries {
            if entry.serialized_entry.is_not_available() {
                continue;
            }
            let Some(name) = recorded.names.get(&entry.metric_id).cloned() else { continue };
            let serialized = entry.serialized_entry.serialized.clone();
            recorded.values.entry((name, split.clone(), epoch)).or_default().push(serialized);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let recorded = lock(&self.recorded);
        let key = (name.to_owned(), split.clone(), epoch);
        Ok(recorded
            .values
            .get(&key)
            .map(|values| values.iter().filter_map(|v| NumericEntry::deserialize(v).ok()).collect())
            .unwrap_or_default())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        let mut recorded = lock(&self.recorded);
        let name = definition.name.to_string();
        let unit = match &definition.attributes {
            MetricAttributes::Numeric(attributes) => attributes.unit.clone(),
            MetricAttributes::None => None,
        };
        recorded.units.insert(name.clone(), unit);
        recorded.names.insert(definition.metric_id, name);
    }

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {}
}

/// burn's metrics of one epoch, as the closure of [`fit`] reads them. Names are burn's
/// ([`Metric::name`](burn::train::metric::Metric::name)): `"Accuracy"`, `"Loss"`, ...
pub struct EpochMetrics<'a> {
    epoch: usize,
    store: &'a EventStoreClient,
    recorded: &'a Mutex<Recorded>,
}

impl fmt::Debug for EpochMetrics<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochMetrics").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl EpochMetrics<'_> {
    /// burn's epoch number (from 1; a restored run continues the count).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The validation metric `name`, averaged over the epoch, in burn's unit (percent for
    /// accuracy-like metrics).
    ///
    /// # Errors
    ///
    /// When burn recorded no numeric validation metric of that name this epoch (the message
    /// lists those it recorded).
    pub fn valid(&self, name: &str) -> TrainResult<f64> {
        self.value(name, Split::Valid)
    }

    /// The training metric `name`, averaged over the epoch, in burn's unit.
    ///
    /// # Errors
    ///
    /// As [`EpochMetrics::valid`].
    pub fn train(&self, name: &str) -> TrainResult<f64> {
        self.value(name, Split::Train)
    }

    /// The validation metric `name`, which burn records in percent, as a fraction (divided
    /// by 100): burn's accuracy of 97.5 is 0.975.
    ///
    /// # Errors
    ///
    /// As [`EpochMetrics::valid`], and when burn's unit for the metric is not `"%"`.
    pub fn valid_fraction(&self, name: &str) -> TrainResult<f64> {
        self.fraction(name, Split::Valid)
    }

    /// The training metric `name`, which burn records in percent, as a fraction.
    ///
    /// # Errors
    ///
    /// As [`EpochMetrics::valid_fraction`].
    pub fn train_fraction(&self, name: &str) -> TrainResult<f64> {
        self.fraction(name, Split::Train)
    }

    /// burn's unit of the metric `name` (`Some("%")` for accuracy), `None` when it has none
    /// or is not registered.
    pub fn unit(&self, name: &str) -> Option<String> {
        lock(self.recorded).units.get(name).cloned().flatten()
    }

    fn value(&self, name: &str, split: Split) -> TrainResult<f64> {
        // The query goes through the event store's queue, after this epoch's events.
        match self.store.find_metric(name, self.epoch, Aggregate::Mean, &split) {
            Some(value) => Ok(value),
            None => {
                let recorded = lock(self.recorded);
                let mut names: Vec<&str> = recorded
                    .values
                    .keys()
                    .filter(|(_, s, e)| *s == split && *e == self.epoch)
                    .map(|(n, _, _)| n.as_str())
                    .collect();
                names.sort_unstable();
                names.dedup();
                Err(TrainError::msg(format!(
                    "burn recorded no numeric {split} metric `{name}` at epoch {} (recorded: \
                     {}); register it with `.metrics((AccuracyMetric::new(), LossMetric::new()))` \
                     or `.metric_{split}_numeric(..)`, and name it as burn does (`Metric::name`)",
                    self.epoch,
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") },
                )))
            }
        }
    }

    fn fraction(&self, name: &str, split: Split) -> TrainResult<f64> {
        let value = self.value(name, split)?;
        match self.unit(name).as_deref() {
            Some("%") => Ok(value / 100.0),
            unit => Err(TrainError::msg(format!(
                "burn's metric `{name}` is not in percent (unit {}): read it with `valid` or \
                 `train`, which return burn's number as it is",
                unit.map_or_else(|| "none".to_owned(), |u| format!("`{u}`"))
            ))),
        }
    }
}

/// What ended the reporting.
enum Outcome {
    Running,
    Stopped,
    Failed(TrainError),
}

/// The session lent to the early-stopping hook, and what it needs to report.
struct Reporter<M, F> {
    session: Option<Session<M>>,
    to_metrics: F,
    latest: Arc<Latest>,
    recorded: Arc<Mutex<Recorded>>,
    outcome: Outcome,
}

/// burn's early-stopping hook, called at every epoch boundary after validation and after
/// the checkpointers got the epoch's records: reports, and stops when the runner says so.
struct TuneStop<M, F> {
    reporter: Arc<Mutex<Reporter<M, F>>>,
}

impl<M, F> Clone for TuneStop<M, F> {
    fn clone(&self) -> Self {
        Self { reporter: Arc::clone(&self.reporter) }
    }
}

impl<M, F> EarlyStoppingStrategy for TuneStop<M, F>
where
    M: Metrics,
    F: FnMut(&EpochMetrics<'_>) -> TrainResult<M> + Send + 'static,
{
    fn should_stop(&mut self, epoch: usize, store: &EventStoreClient) -> bool {
        let mut guard = lock(&self.reporter);
        let reporter = &mut *guard;
        if !matches!(reporter.outcome, Outcome::Running) {
            return true;
        }
        let view = EpochMetrics { epoch, store, recorded: &reporter.recorded };
        let metrics = match (reporter.to_metrics)(&view) {
            Ok(metrics) => metrics,
            Err(e) => {
                reporter.outcome = Outcome::Failed(e);
                return true;
            }
        };
        let Some(session) = reporter.session.as_mut() else { return true };
        let latest = &reporter.latest;
        match session.report_with(metrics, |dir| latest.write(epoch, dir)) {
            Ok(()) => false,
            Err(Stopped) => {
                reporter.outcome = Outcome::Stopped;
                true
            }
        }
    }
}

/// A burn renderer that shows nothing: the tuner's status table owns the terminal. [`fit`]
/// installs it; burn's metrics still reach the loggers and the session.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _state: MetricState) {}
    fn update_valid(&mut self, _state: MetricState) {}
    fn on_train_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}
    fn on_test_end(
        &mut self,
        _summary: Option<LearnerSummary>,
    ) -> Result<(), Box<dyn core::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for QuietRenderer {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _epoch: usize) {}
    fn start_split(&mut self, _split: &str, _total_items: usize) {}
    fn update_split(&mut self, _items_processed: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _event: String) {}
}

impl EvaluationProgressLogger for QuietRenderer {
    fn start_global_progress(&mut self, _total_tests: usize) {}
    fn start_test(&mut self, _name: &str, _total_items: usize) {}
    fn update_test_progress(&mut self, _items_processed: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _event: String) {}
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
