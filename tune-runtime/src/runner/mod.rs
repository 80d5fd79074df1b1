//! The driver: one thread that owns all experiment state and reacts to worker messages.

mod interrupt;
mod isolation;
mod pausing;
mod recovery;
mod worker;

pub(crate) use isolation::{Isolated, serve_if_worker};
pub use isolation::{WORKER_ENV, is_worker};
pub(crate) use recovery::{Errored, FaultSettings};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::RecvTimeoutError;

use crate::analysis::{Analysis, CheckpointInfo, TrialInfo};
use crate::checkpoint::{CheckpointMeta, CheckpointStore, SaveError};
use crate::journal::{FileJournal, JOURNAL_FILE, JOURNAL_VERSION, Journal, JournalStore, Record};
use crate::logger::{self, LogError, TrialLogger};
use crate::metrics::Metrics;
use crate::reporter::{MAX_ROWS, Reporter, STATUSES, StatusRow, StatusView};
use crate::resources::{Grant, ResourcePool};
use crate::scheduler::{Decision, Pausing, Scheduler};
use crate::searcher::{Searcher, Suggestion};
use crate::space::Space;
use crate::stop::Stop;
use crate::trainable::{Resources, Trainable, TrainableSpec, TrialContext};
use crate::trial::{Key, Mode, Scope, TrialId, TrialResult, TrialStatus};
use crate::tuner::RunError;

use worker::{CheckpointRequest, Done, Outcome, Pool, Task};

type C<T> = <T as TrainableSpec>::Config;
type M<T> = <T as TrainableSpec>::Metrics;

/// Everything [`crate::Tuner::run`] validated.
pub(crate) struct Settings<T: Trainable> {
    pub num_samples: usize,
    pub overrides: Option<serde_json::Map<String, serde_json::Value>>,
    pub stop: Stop<M<T>>,
    pub time_budget: Option<Duration>,
    pub max_concurrent: usize,
    pub resources: Option<Resources>,
    pub total_cpus: f64,
    pub gpu_ids: Vec<usize>,
    pub custom_totals: BTreeMap<String, f64>,
    pub reuse_actors: bool,
    pub checkpoint_freq: u64,
    pub checkpoint_at_end: bool,
    pub keep_checkpoints_num: Option<usize>,
    pub checkpoint_score: Option<(Key<M<T>>, Mode)>,
    pub restore: Option<(PathBuf, CheckpointMeta)>,
    pub experiment_dir: PathBuf,
    pub name: String,
    pub seed: u64,
    pub verbosity: u8,
    pub searcher: Box<dyn Searcher<C<T>, M<T>>>,
    pub scheduler: Box<dyn Scheduler<C<T>, M<T>>>,
    pub pausing: Pausing,
    pub metric: Option<(Key<M<T>>, Mode)>,
    pub file_logging: bool,
    pub status_interval: Duration,
    pub journal_store: Option<Box<dyn JournalStore>>,
    pub checkpoint_store: Arc<dyn CheckpointStore>,
    pub faults: FaultSettings,
    /// Several objectives or constraints, for the searcher (issue #14).
    pub objectives: Option<crate::objectives::Objectives<M<T>>>,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for unseeded experiments (recorded in the journal).
pub(crate) fn entropy_seed() -> u64 {
    let nanos =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD_HH-MM-SS` in UTC.
pub(crate) fn date_stamp() -> String {
    let secs = unix_now() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A config value for the status table: floats with 6 significant digits.
fn short_value(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => {
            if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e6) {
                format!("{f:.4e}")
            } else {
                let s = format!("{f:.6}");
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            }
        }
        _ => v.to_string(),
    }
}

/// Driver-side state of a trial that has not ended.
struct Live<T: Trainable> {
    resources: Resources,
    grant: Option<Grant>,
    logger: Option<TrialLogger>,
    dir: PathBuf,
    rel_dir: String,
    iteration: u64,
    time_total: f64,
    last: Option<TrialResult<M<T>>>,
    paused: Option<Box<T>>,
    /// (iteration, score, directory) of existing checkpoints.
    checkpoints: Vec<(u64, f64, PathBuf)>,
    last_checkpoint: Option<u64>,
    /// Why the trial will end in ERROR once its `Finish` task returns.
    error: Option<String>,
    /// Result buffer lent to [`Task::Steps`], reused from batch to batch.
    batch: Vec<(M<T>, f64)>,
    /// The checkpoint a trial paused to disk resumes from.
    resume_from: Option<PathBuf>,
    /// The scheduler ended the trial while its pause checkpoint was being written.
    stop_when_paused: bool,
    /// Failed attempts that were retried (`max_failures`).
    failures: u32,
    /// The checkpoint the next start restores (a retry or a resume).
    restore_from: Option<PathBuf>,
    /// Stopped by Ctrl-C: the trial ends resumable instead of TERMINATED.
    suspend: bool,
    /// After a resume rolled the trial back: its results up to this iteration are already
    /// in the scheduler's restored state, so when the trial reports them again the
    /// scheduler is not asked a second time; the decision is the one the run made then,
    /// Stop at `stop_at` (the journal's `done`), Continue before.
    seen_upto: u64,
    stop_at: Option<u64>,
}

impl<T: Trainable> Live<T> {
    /// A trial that has not run yet (or is about to be rebuilt on a resume), at
    /// `iteration` with `failures` retried failures behind it.
    fn new(
        resources: Resources,
        dir: PathBuf,
        rel_dir: String,
        iteration: u64,
        time_total: f64,
        failures: u32,
    ) -> Self {
        Live {
            resources,
            grant: None,
            logger: None,
            dir,
            rel_dir,
            iteration,
            time_total,
            last: None,
            paused: None,
            checkpoints: Vec::new(),
            last_checkpoint: None,
            error: None,
            batch: Vec::new(),
            resume_from: None,
            stop_when_paused: false,
            failures,
            restore_from: None,
            suspend: false,
            seen_upto: 0,
            stop_at: None,
        }
    }
}

/// Most steps a worker runs before reporting back (see `Driver::batch_len`).
const MAX_BATCH: u64 = 64;

struct Driver<T: Trainable> {
    s: Settings<T>,
    trials: Vec<TrialInfo<C<T>, M<T>>>,
    live: Vec<Option<Box<Live<T>>>>,
    pending: Vec<TrialId>,
    paused: Vec<TrialId>,
    pool: ResourcePool,
    workers: Pool<T>,
    journal: Option<Journal>,
    reporter: Reporter,
    counts: [usize; 5],
    finished: usize,
    in_flight: usize,
    running: usize,
    searcher_done: bool,
    searcher_waiting: bool,
    idle: Vec<Box<T>>,
    fatal: Option<LogError>,
    stopping: bool,
    start: Instant,
    /// Unix seconds at `start`, and now (updated once per loop turn).
    start_unix: u64,
    unix_now: u64,
    row: Vec<f64>,
    /// Stopping because of Ctrl-C (see `recovery.rs`).
    interrupted: bool,
    watch: interrupt::Watch,
    /// The searcher and scheduler state last written to the journal.
    saved_state: Option<(serde_json::Value, serde_json::Value)>,
}

fn status_slot(s: TrialStatus) -> usize {
    STATUSES.iter().position(|x| *x == s).unwrap_or(0)
}

/// Runs an experiment; see [`crate::Tuner::run`].
pub(crate) fn run<T: Trainable>(mut s: Settings<T>) -> Result<Analysis<C<T>, M<T>>, RunError> {
    let dir_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::LocalDir { path, source }
    };
    let mut journal = None;
    let replay = match s.faults.resume {
        Some(_) if s.file_logging => recovery::load::<T>(&s.experiment_dir)?,
        _ => None,
    };
    if let Some(r) = &replay {
        s.seed = r.seed;
    }
    if s.file_logging {
        // Trial directories are named by creation index: a second run in the same
        // directory would overwrite the first one's files (a resume continues them).
        let existing = s.experiment_dir.join(JOURNAL_FILE);
        if replay.is_none()
            && std::fs::metadata(&existing).is_ok_and(|m| m.is_file() && m.len() > 0)
        {
            return Err(RunError::ExperimentExists { path: s.experiment_dir.clone() });
        }
        std::fs::create_dir_all(&s.experiment_dir).map_err(dir_err(&s.experiment_dir))?;
        let store: Box<dyn JournalStore> = match s.journal_store.take() {
            Some(store) => store,
            None => {
                let path = s.experiment_dir.join(JOURNAL_FILE);
                Box::new(FileJournal::open(&path).map_err(dir_err(&path))?)
            }
        };
        let mut j = Journal::new(store);
        let first = match &replay {
            Some(_) => Driver::<T>::resume_record(),
            None => Record::Experiment {
                version: JOURNAL_VERSION,
                name: s.name.clone(),
                trainable: T::NAME.to_string(),
                metrics: <M<T> as Metrics>::NAMES.iter().map(|n| n.to_string()).collect(),
                seed: s.seed,
                started: unix_now(),
            },
        };
        j.record(&first)
            .and_then(|()| j.flush())
            .map_err(dir_err(&s.experiment_dir.join(JOURNAL_FILE)))?;
        journal = Some(j);
    }
    s.searcher.setup(s.num_samples, s.seed);
    s.scheduler.setup(s.seed);
    if let Some((key, mode)) = s.metric {
        s.searcher.set_objective(key, mode);
    }
    if let Some(objectives) = &s.objectives {
        s.searcher
            .set_objectives(objectives)
            .map_err(|e| RunError::InvalidOption(e.to_string()))?;
    }
    let workers = s.total_cpus.ceil().max(1.0) as usize;
    let workers = Pool::start(workers.min(s.max_concurrent), Arc::clone(&s.checkpoint_store))
        .map_err(RunError::Threads)?;
    let pool = ResourcePool::new(s.total_cpus, s.gpu_ids.clone(), s.custom_totals.clone());
    let reporter = Reporter::new(s.verbosity, s.searcher.total_trials());
    let mut d = Driver {
        s,
        trials: Vec::new(),
        live: Vec::new(),
        pending: Vec::new(),
        paused: Vec::new(),
        pool,
        workers,
        journal,
        reporter,
        counts: [0; 5],
        finished: 0,
        in_flight: 0,
        running: 0,
        searcher_done: false,
        searcher_waiting: false,
        idle: Vec::new(),
        fatal: None,
        stopping: false,
        start: Instant::now(),
        start_unix: unix_now(),
        unix_now: unix_now(),
        row: Vec::with_capacity(crate::trial::row_len::<M<T>>()),
        interrupted: false,
        watch: interrupt::Watch::start(false),
        saved_state: None,
    };
    if let Some(replay) = replay {
        d.resume_from(replay)?;
    }
    d.watch = interrupt::Watch::start(d.s.faults.handle_sigint);
    // A panic in driver-side user code (a stop closure, the searcher, the scheduler) ends
    // the run; flush what was recorded before passing it on.
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.event_loop())) {
        d.flush_files();
        std::panic::resume_unwind(panic);
    }
    d.shutdown()
}

impl<T: Trainable> Driver<T> {
    fn event_loop(&mut self) {
        let mut next_tick = self.start + self.s.status_interval;
        let deadline = self.s.time_budget.map(|b| self.start + b);
        loop {
            let progressed = self.fill();
            if self.in_flight == 0 {
                if progressed {
                    continue;
                }
                // Nothing runs and nothing could start: the experiment is over (or its
                // searcher and scheduler hold nothing runnable).
                break;
            }
            // A ready message is taken without reading the clock first.
            let msg = match self.workers.done.try_recv() {
                Ok(msg) => Some(msg),
                Err(_) => {
                    let mut wake = next_tick;
                    if let Some(d) = deadline {
                        wake = wake.min(d);
                    }
                    if self.s.faults.handle_sigint {
                        wake = wake.min(Instant::now() + interrupt::POLL);
                    }
                    match self
                        .workers
                        .done
                        .recv_timeout(wake.saturating_duration_since(Instant::now()))
                    {
                        Ok(msg) => Some(msg),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let now = Instant::now();
            self.unix_now = self.start_unix + now.saturating_duration_since(self.start).as_secs();
            if let Some(msg) = msg {
                self.handle(msg);
            }
            if deadline.is_some_and(|d| now >= d) && !self.stopping {
                self.stop_all();
            }
            if !self.interrupted && self.watch.interrupted() {
                self.interrupt();
            }
            if now >= next_tick {
                next_tick = now + self.s.status_interval;
                self.tick();
            }
        }
    }

    /// Periodic work: flush files and print the status.
    fn tick(&mut self) {
        self.flush_files();
        if self.reporter.wants_status() {
            let view = self.view();
            self.reporter.status(&view);
        }
    }

    fn flush_files(&mut self) {
        for live in self.live.iter_mut().flatten() {
            if let Some(l) = &mut live.logger {
                if let Err(e) = l.flush() {
                    self.fatal.get_or_insert(e);
                }
            }
        }
        self.save_state();
        self.flush_journal();
    }

    fn flush_journal(&mut self) {
        if let Some(j) = &mut self.journal {
            if let Err(source) = j.flush() {
                let path = self.s.experiment_dir.join(JOURNAL_FILE);
                self.fatal.get_or_insert(LogError { path, source });
                self.journal = None;
            }
        }
    }

    fn journal(&mut self, record: &Record) {
        if let Some(j) = &mut self.journal {
            if let Err(source) = j.record(record) {
                let path = self.s.experiment_dir.join(JOURNAL_FILE);
                self.fatal.get_or_insert(LogError { path, source });
                self.journal = None;
            }
        }
    }

    fn set_status(&mut self, id: TrialId, status: TrialStatus, error: Option<String>) {
        let t = &mut self.trials[id.index()];
        self.counts[status_slot(t.status)] -= 1;
        self.counts[status_slot(status)] += 1;
        t.status = status;
        if error.is_some() {
            t.error.clone_from(&error);
        }
        self.journal(&Record::Status { trial: id.0, status, error });
    }

    /// No new trials; running ones stop after their current step.
    fn stop_all(&mut self) {
        self.stopping = true;
        for id in std::mem::take(&mut self.pending) {
            self.end_trial(id, None);
        }
        for id in std::mem::take(&mut self.paused) {
            let inst = self.live[id.index()].as_mut().and_then(|l| l.paused.take());
            match inst {
                Some(inst) => self.finish(id, inst),
                None => self.end_trial(id, None),
            }
        }
    }

    /// Creates and starts trials while resources, concurrency and the searcher allow.
    /// Returns whether anything was started.
    fn fill(&mut self) -> bool {
        if self.fatal.is_some() {
            self.halt();
        }
        let mut started = self.apply_scheduler_stops();
        loop {
            if self.stopping || self.running >= self.s.max_concurrent {
                return started;
            }
            if self.pending.is_empty() && !self.searcher_done && !self.searcher_waiting {
                let id = TrialId(self.trials.len() as u32);
                match self.s.searcher.suggest(id) {
                    Suggestion::Config(config) => {
                        self.create(id, config);
                        started = true;
                        continue;
                    }
                    Suggestion::NotNow => self.searcher_waiting = true,
                    Suggestion::Finished => {
                        self.searcher_done = true;
                        self.s.scheduler.on_no_more_trials();
                        started |= self.apply_scheduler_stops();
                    }
                }
            }
            if self.pending.is_empty() && self.paused.is_empty() {
                return started;
            }
            let Some(id) = self.s.scheduler.choose_trial_to_run(&self.pending, &self.paused) else {
                return started;
            };
            let Some(live) = self.live.get(id.index()).and_then(|l| l.as_ref()) else {
                return started;
            };
            let Some(grant) = self.pool.try_acquire(&live.resources) else { return started };
            self.pending.retain(|p| *p != id);
            self.paused.retain(|p| *p != id);
            self.launch(id, grant);
            started = true;
        }
    }

    fn create(&mut self, id: TrialId, config: C<T>) {
        let config = match &self.s.overrides {
            Some(over) => match crate::tuner::apply_overrides(&config, over) {
                Ok(c) => c,
                Err(e) => {
                    self.push_trial(id, config, Resources::default());
                    self.end_trial(id, Some(format!("config overrides: {e}")));
                    return;
                }
            },
            None => config,
        };
        let resources = self.s.resources.clone().unwrap_or_else(|| T::resources(&config));
        self.push_trial(id, config, resources);
        self.s.scheduler.on_trial_add(id, &self.trials[id.index()].config);
        let why = self.live[id.index()].as_ref().and_then(|l| self.pool.never_fits(&l.resources));
        match why {
            Some(why) => self.end_trial(id, Some(why)),
            None => self.pending.push(id),
        }
    }

    fn push_trial(&mut self, id: TrialId, config: C<T>, resources: Resources) {
        let json = config.to_json_value();
        let rel_dir = logger::trial_dir_name(T::NAME, id, &json);
        let dir = self.s.experiment_dir.join(&rel_dir);
        self.journal(&Record::Trial {
            trial: id.0,
            id: id.to_string(),
            dir: Some(rel_dir.clone()),
            config: json,
            searcher: Some(self.s.searcher.save_state()).filter(|v| !v.is_null()),
        });
        let info_dir = self.s.file_logging.then(|| dir.clone());
        self.trials.push(TrialInfo::new(id, info_dir, config));
        self.counts[status_slot(TrialStatus::Pending)] += 1;
        let (iteration, time_total) =
            self.s.restore.as_ref().map(|(_, m)| (m.iteration, m.time_total_s)).unwrap_or((0, 0.0));
        self.live
            .push(Some(Box::new(Live::new(resources, dir, rel_dir, iteration, time_total, 0))));
    }

    fn checkpoint_request(&self, id: TrialId, live: &Live<T>) -> Option<CheckpointRequest> {
        let next = live.iteration + 1;
        let due = self.s.checkpoint_freq > 0 && next % self.s.checkpoint_freq == 0;
        (due || self.s.scheduler.wants_checkpoint(id, next)).then(|| CheckpointRequest {
            dir: live.dir.join(format!("checkpoint_{next}")),
            iteration: next,
            time_total_s: live.time_total,
        })
    }

    fn launch(&mut self, id: TrialId, grant: Grant) {
        let i = id.index();
        let Some(mut live) = self.live[i].take() else { return };
        // Paused by the scheduler, in memory or to disk. A trial a resume found PAUSED in the
        // journal has neither and starts from its latest checkpoint (`restore_from`).
        let resumed = self.trials[i].status == TrialStatus::Paused
            && (live.paused.is_some() || live.resume_from.is_some());
        if !resumed && self.s.file_logging && live.logger.is_none() {
            match TrialLogger::create::<M<T>>(&live.dir, &self.trials[i].config.to_json_value()) {
                Ok(l) => live.logger = Some(l),
                Err(e) => {
                    self.fatal.get_or_insert(e);
                }
            }
        }
        let checkpoint = self.checkpoint_request(id, &live);
        let gpu_ids = grant.gpu_ids.clone();
        let task = if resumed {
            match live.paused.take() {
                Some(inst) => Task::Step { trial: id.0, inst, checkpoint },
                None if live.resume_from.is_some() => {
                    self.resume_task(id, &mut live, gpu_ids, checkpoint)
                }
                None => {
                    live.grant = Some(grant);
                    self.running += 1;
                    self.live[i] = Some(live);
                    self.end_trial(id, Some("the paused trial's instance was lost".into()));
                    return;
                }
            }
        } else {
            let ctx = TrialContext {
                trial_id: id.to_string(),
                trial_dir: self.s.file_logging.then(|| live.dir.clone()),
                gpu_ids,
                resources: live.resources.clone(),
                seed: splitmix64(self.s.seed ^ splitmix64(u64::from(id.0))),
            };
            Task::Start {
                trial: id.0,
                config: self.trials[i].config.clone(),
                ctx,
                restore: live
                    .restore_from
                    .clone()
                    .or_else(|| self.s.restore.as_ref().map(|(d, _)| d.clone())),
                reuse: if self.s.reuse_actors { self.idle.pop() } else { None },
                checkpoint,
            }
        };
        live.grant = Some(grant);
        self.running += 1;
        self.live[i] = Some(live);
        self.send(task);
        self.set_status(id, TrialStatus::Running, None);
    }

    fn pool_release(&mut self, id: TrialId) {
        if let Some(live) = self.live[id.index()].as_mut() {
            if let Some(grant) = live.grant.take() {
                self.pool.release(&live.resources, &grant);
                self.running -= 1;
            }
        }
    }

    fn send(&mut self, task: Task<T>) {
        self.in_flight += 1;
        if self.workers.tasks.send(task).is_err() {
            // Workers only exit when the queue closes, which happens after the loop.
            self.in_flight -= 1;
        }
    }

    fn handle(&mut self, msg: Done<T>) {
        self.in_flight -= 1;
        let id = TrialId(msg.trial);
        match msg.out {
            Outcome::CleanedUp => {}
            Outcome::Suspended { checkpoint } => self.on_suspended(id, checkpoint),
            Outcome::Stepped { metrics, dt, checkpoint } => match msg.inst {
                Some(inst) => self.on_result(id, inst, metrics, dt, checkpoint),
                None => self.end_trial(id, Some("the worker lost the trial's instance".into())),
            },
            Outcome::Batch { results, failure } => self.on_batch(id, msg.inst, results, failure),
            Outcome::Failed { message, finished } => {
                self.end_trial(id, (!finished).then_some(message));
            }
            Outcome::Finished { checkpoint } => {
                let mut error = self.live[id.index()].as_mut().and_then(|l| l.error.take());
                match checkpoint {
                    Some(Ok(())) => {
                        let iteration = self.live[id.index()].as_ref().map_or(0, |l| l.iteration);
                        let score = self.score_of_last(id);
                        self.register_checkpoint(id, iteration, score);
                    }
                    Some(Err(SaveError::Trial(e))) => {
                        error.get_or_insert(e);
                    }
                    Some(Err(e)) => self.checkpoint_failed(id, e),
                    None => {}
                }
                if let Some(inst) = msg.inst {
                    self.idle.push(inst);
                }
                self.end_trial(id, error);
            }
        }
    }

    fn score_of_last(&self, id: TrialId) -> f64 {
        let last = self.live[id.index()].as_ref().and_then(|l| l.last.as_ref());
        match (&self.s.checkpoint_score, last) {
            (Some((key, _)), Some(r)) => r.get(*key),
            _ => f64::NAN,
        }
    }

    fn on_result(
        &mut self,
        id: TrialId,
        inst: Box<T>,
        metrics: M<T>,
        dt: f64,
        checkpoint: Option<Result<(), SaveError>>,
    ) {
        let Some((decision, iteration, score)) = self.apply(id, metrics, dt) else {
            return self.finish(id, inst);
        };
        match checkpoint {
            Some(Ok(())) => self.register_checkpoint(id, iteration, score),
            Some(Err(e)) => {
                self.checkpoint_failed(id, e);
                return self.finish(id, inst);
            }
            None => {}
        }
        self.dispatch(id, inst, decision);
    }

    /// The results of a run of steps ([`Task::Steps`]), applied in order.
    fn on_batch(
        &mut self,
        id: TrialId,
        inst: Option<Box<T>>,
        mut results: Vec<(M<T>, f64)>,
        failure: Option<(String, bool)>,
    ) {
        let mut decision = Decision::Continue;
        let mut failed = false;
        for (metrics, dt) in results.drain(..) {
            match self.apply(id, metrics, dt) {
                Some((d, _, _)) => decision = d,
                None => failed = true,
            }
            // The batch was sized so that only its last result can end the trial; an
            // earlier end (the time budget, an error) drops the rest.
            if failed || decision != Decision::Continue {
                break;
            }
        }
        if let Some(live) = self.live[id.index()].as_mut() {
            live.batch = results;
        }
        match (inst, failure) {
            (_, Some((message, finished))) if !failed => {
                self.end_trial(id, (!finished).then_some(message));
            }
            (Some(inst), _) if failed => self.finish(id, inst),
            (Some(inst), _) => self.dispatch(id, inst, decision),
            (None, _) => {
                let error = self.live[id.index()].as_mut().and_then(|l| l.error.take());
                self.end_trial(id, error);
            }
        }
    }

    /// Records one result; returns the decision, the iteration and the checkpoint score,
    /// or `None` when the result is invalid (the trial must end in ERROR).
    fn apply(&mut self, id: TrialId, metrics: M<T>, dt: f64) -> Option<(Decision, u64, f64)> {
        let i = id.index();
        let live = self.live[i].as_mut()?;
        live.iteration += 1;
        live.time_total += dt;
        let mut result = TrialResult {
            metrics,
            trial_id: id,
            training_iteration: live.iteration,
            time_this_iter_s: dt,
            time_total_s: live.time_total,
            timestamp: self.unix_now,
            done: false,
        };
        let names = <M<T> as Metrics>::NAMES;
        if let Some(k) = (0..names.len()).find(|&k| !result.metrics.value(k).is_finite()) {
            let message = format!(
                "metric `{}` is {} at iteration {}: return finite values from `step` (NaN and \
                 infinities cannot be compared, ranked or written as JSON)",
                names[k],
                result.metrics.value(k),
                result.training_iteration
            );
            live.error = Some(message);
            live.iteration -= 1;
            return None;
        }
        let natural = self.s.stop.should_stop(&result);
        let stop = self.stopping || natural;
        if self.interrupted && !natural {
            live.suspend = true;
        }
        let it = result.training_iteration;
        let decision = if stop {
            Decision::Stop
        } else if it <= live.seen_upto {
            if live.stop_at == Some(it) { Decision::Stop } else { Decision::Continue }
        } else {
            self.s.scheduler.on_trial_result(id, &result)
        };
        self.s.searcher.on_trial_result(id, &result);
        self.searcher_waiting = false;
        result.done = decision == Decision::Stop;
        self.row.clear();
        result.write_row(&mut self.row);
        self.trials[i].history.extend_from_slice(&self.row);
        if let Some(l) = live.logger.as_mut() {
            if let Err(e) = l.result::<M<T>>(&self.row, id, result.done) {
                self.fatal.get_or_insert(e);
                live.logger = None;
            }
        }
        if let Some(j) = &mut self.journal {
            // Ended by its own criteria or its scheduler, not by a stop of the whole run.
            let ended = natural || (!self.stopping && decision == Decision::Stop);
            if let Err(source) = j.result(id.0, &self.row, ended) {
                self.fatal.get_or_insert(LogError {
                    path: self.s.experiment_dir.join(JOURNAL_FILE),
                    source,
                });
                self.journal = None;
            }
        }
        if self.reporter.wants_results() {
            let fields: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(k, n)| format!("{n}={}", result.metrics.value(k)))
                .collect();
            self.reporter.result_line(&format!(
                "Result for {}_{id}: training_iteration={} {} time_total_s={:.4} done={}",
                T::NAME,
                result.training_iteration,
                fields.join(" "),
                result.time_total_s,
                result.done
            ));
        }
        let iteration = result.training_iteration;
        let score = self.s.checkpoint_score.map_or(f64::NAN, |(k, _)| result.get(k));
        if let Some(live) = self.live[i].as_mut() {
            live.last = Some(result);
        }
        Some((decision, iteration, score))
    }

    /// How many steps the trial may run before the driver must see a result: more than
    /// one only when no decision can come earlier (the scheduler's `safe_steps`, the stop
    /// criteria depend on the iteration alone, no checkpoint is due).
    fn batch_len(&self, id: TrialId, live: &Live<T>) -> u32 {
        if self.stopping || self.s.checkpoint_freq > 0 {
            return 1;
        }
        let scheduler = self.s.scheduler.safe_steps(id, live.iteration);
        match (scheduler, self.s.stop.safe_steps(live.iteration)) {
            (Some(a), Some(b)) => a.min(b).clamp(1, MAX_BATCH) as u32,
            _ => 1,
        }
    }

    fn dispatch(&mut self, id: TrialId, inst: Box<T>, decision: Decision) {
        let i = id.index();
        match decision {
            Decision::Continue => {
                let Some(live) = self.live[i].as_deref() else { return };
                let steps = self.batch_len(id, live);
                let task = if steps > 1 {
                    let live = self.live[i].as_mut().map(|l| std::mem::take(&mut l.batch));
                    Task::Steps { trial: id.0, inst, steps, buf: live.unwrap_or_default() }
                } else {
                    let checkpoint =
                        self.live[i].as_ref().and_then(|l| self.checkpoint_request(id, l));
                    Task::Step { trial: id.0, inst, checkpoint }
                };
                self.send(task);
            }
            Decision::Pause => self.pause(id, inst),
            Decision::Stop => self.finish(id, inst),
            Decision::Exploit => self.exploit(id, inst),
        }
    }

    fn register_checkpoint(&mut self, id: TrialId, iteration: u64, score: f64) {
        let i = id.index();
        let Some(live) = self.live[i].as_mut() else { return };
        let dir = live.dir.join(format!("checkpoint_{iteration}"));
        let rel = format!("{}/checkpoint_{iteration}", live.rel_dir);
        live.last_checkpoint = Some(iteration);
        live.checkpoints.retain(|c| c.0 != iteration);
        live.checkpoints.push((iteration, score, dir.clone()));
        self.trials[i].checkpoints.retain(|c| c.iteration != iteration);
        self.trials[i].checkpoints.push(CheckpointInfo { iteration, path: dir });
        self.journal(&Record::Checkpoint { trial: id.0, iteration, path: rel });
        let Some(keep) = self.s.keep_checkpoints_num else { return };
        while let Some(live) = self.live[i].as_mut() {
            if live.checkpoints.len() <= keep {
                break;
            }
            // The worst by score (NaN counts as worst), else the oldest.
            let victim = match self.s.checkpoint_score {
                Some((_, mode)) => (0..live.checkpoints.len())
                    .reduce(|a, b| {
                        let (sa, sb) = (live.checkpoints[a].1, live.checkpoints[b].1);
                        if sb.is_nan() || (!sa.is_nan() && mode.better(sa, sb)) { b } else { a }
                    })
                    .unwrap_or(0),
                None => 0,
            };
            let (it, _, path) = live.checkpoints.remove(victim);
            let rel = format!("{}/checkpoint_{it}", live.rel_dir);
            // A checkpoint that cannot be deleted only costs disk space.
            let _ = self.s.checkpoint_store.delete(&path);
            self.trials[i].checkpoints.retain(|c| c.path != path);
            self.journal(&Record::CheckpointDeleted { trial: id.0, path: rel });
        }
    }

    /// A checkpoint of a running trial could not be written. A trial problem fails the
    /// trial (retried with `max_failures`); a storage problem (full, read-only, not
    /// permitted) stops the run like Ctrl-C, with this trial suspended, so that nothing is
    /// marked ERROR or TERMINATED for it and the experiment resumes once it is fixed.
    fn checkpoint_failed(&mut self, id: TrialId, e: SaveError) {
        let Some(live) = self.live[id.index()].as_mut() else { return };
        match e {
            SaveError::Trial(message) => live.error = Some(message),
            SaveError::Storage { path, source } => {
                live.suspend = true;
                self.fatal.get_or_insert(LogError { path, source });
                self.halt();
            }
        }
    }

    /// A write failed (`fatal`): stop as on Ctrl-C (running trials suspended after their
    /// current step, nothing new started), so the experiment stays resumable, and report
    /// the failure from `run`.
    pub(super) fn halt(&mut self) {
        if !self.interrupted {
            self.interrupt();
        }
    }

    /// Ends a trial that has an instance: checkpoint at end, cleanup or keep for reuse.
    fn finish(&mut self, id: TrialId, inst: Box<T>) {
        let Some(live) = self.live[id.index()].as_ref() else { return };
        // After a failed write (`fatal`) no checkpoint is tried: the resume rolls back to
        // the latest one written before.
        let checkpoint = ((self.s.checkpoint_at_end || live.suspend)
            && self.fatal.is_none()
            && live.error.is_none()
            && live.iteration > 0
            && live.last_checkpoint != Some(live.iteration))
        .then(|| CheckpointRequest {
            dir: live.dir.join(format!("checkpoint_{}", live.iteration)),
            iteration: live.iteration,
            // Finish runs no step: the total is already complete.
            time_total_s: live.time_total,
        });
        let more = !self.searcher_done || !self.pending.is_empty();
        let keep = self.s.reuse_actors && live.error.is_none() && more && !self.stopping;
        self.send(Task::Finish { trial: id.0, inst, checkpoint, keep });
    }

    /// Marks a trial TERMINATED (`error == None`) or ERROR and releases what it holds.
    fn end_trial(&mut self, id: TrialId, error: Option<String>) {
        let i = id.index();
        if error.is_none() && self.live[i].as_ref().is_some_and(|l| l.suspend) {
            return self.suspend(id);
        }
        if error.as_ref().is_some_and(|e| self.retry(id, e)) {
            return;
        }
        self.pool_release(id);
        self.pending.retain(|p| *p != id);
        self.paused.retain(|p| *p != id);
        let Some(mut live) = self.live[i].take() else { return };
        if let Some(mut l) = live.logger.take() {
            if let Err(e) = l.flush() {
                self.fatal.get_or_insert(e);
            }
        }
        if let (Some(msg), true) = (&error, self.s.file_logging) {
            // A trial that never started has no params.json yet: write it beside the error.
            let params = (self.trials[i].status == TrialStatus::Pending)
                .then(|| self.trials[i].config.to_json_value());
            let failures = &self.trials[i].failures;
            if let Err(e) = logger::write_errors(&live.dir, failures, Some(msg), params.as_ref()) {
                self.fatal.get_or_insert(e);
            }
        }
        let status = if error.is_some() { TrialStatus::Error } else { TrialStatus::Terminated };
        let failed = error.is_some();
        self.set_status(id, status, error);
        self.flush_journal();
        let last = live.last.take();
        self.s.scheduler.on_trial_complete(id, last.as_ref(), failed);
        self.s.searcher.on_trial_complete(id, last.as_ref(), failed);
        self.searcher_waiting = false;
        self.finished += 1;
        self.reporter.finished(self.finished);
        self.save_state();
    }

    fn view(&self) -> StatusView<'_> {
        let metric = self.s.metric;
        let mut rows = Vec::new();
        let mut best: Option<(String, f64)> = None;
        let row_of = |t: &TrialInfo<C<T>, M<T>>| {
            let last = t.last_result();
            let params = match t.config.to_json_value() {
                serde_json::Value::Object(map) => map
                    .into_iter()
                    .filter(|(_, v)| !v.is_object() && !v.is_array())
                    .take(6)
                    .map(|(k, v)| (k, short_value(&v)))
                    .collect(),
                _ => Vec::new(),
            };
            StatusRow {
                name: format!("{}_{}", T::NAME, t.id),
                status: t.status,
                params,
                metric: metric.and_then(|(k, _)| last.map(|r| r.get(k))),
                time_total_s: last.map_or(0.0, |r| r.time_total_s()),
                iteration: last.map_or(0, |r| r.training_iteration()),
            }
        };
        for t in &self.trials {
            if let Some((k, mode)) = metric {
                if let Some(v) = t.score(k, mode, Scope::Last) {
                    if best.as_ref().is_none_or(|(_, b)| mode.better(v, *b)) {
                        best = Some((format!("{}_{}", T::NAME, t.id), v));
                    }
                }
            }
            if rows.len() < MAX_ROWS && !t.status.is_finished() {
                rows.push(row_of(t));
            }
        }
        // Fill up with the most recently created finished trials, shown in creation order.
        let mut done: Vec<usize> = Vec::new();
        for (i, t) in self.trials.iter().enumerate().rev() {
            if rows.len() + done.len() >= MAX_ROWS {
                break;
            }
            if t.status.is_finished() {
                done.push(i);
            }
        }
        rows.extend(done.into_iter().rev().map(|i| row_of(&self.trials[i])));
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        StatusView {
            scheduler: self.s.scheduler.name(),
            cpu: (self.pool.used_cpu(), self.pool.total_cpu()),
            gpu: (self.pool.used_gpu(), self.pool.total_gpu()),
            dir: &self.s.experiment_dir,
            counts: self.counts,
            metric_name: metric.map(|(k, _)| k.name()),
            rows,
            elapsed: self.start.elapsed(),
            best,
        }
    }

    fn shutdown(mut self) -> Result<Analysis<C<T>, M<T>>, RunError> {
        for inst in std::mem::take(&mut self.idle) {
            self.send(Task::Cleanup { inst });
        }
        while self.in_flight > 0 {
            match self.workers.done.recv() {
                Ok(msg) => self.handle(msg),
                Err(_) => break,
            }
            for inst in std::mem::take(&mut self.idle) {
                self.send(Task::Cleanup { inst });
            }
        }
        self.save_state();
        if !self.interrupted {
            self.journal(&Record::End { ended: unix_now() });
        }
        self.flush_journal();
        let summary = self.reporter.wants_status() || self.s.verbosity >= 1;
        if summary {
            let view = self.view();
            let best = self.s.metric.and_then(|(key, mode)| {
                let analysis_best = self
                    .trials
                    .iter()
                    .filter_map(|t| t.score(key, mode, Scope::Last).map(|s| (t, s)))
                    .reduce(|a, b| if mode.better(b.1, a.1) { b } else { a });
                analysis_best.map(|(t, s)| {
                    format!(
                        "Best trial: {}_{} with {}={s} and config {}",
                        T::NAME,
                        t.id,
                        key.name(),
                        t.config.to_json_value()
                    )
                })
            });
            self.reporter.summary(&view, best);
        }
        let interrupted = self.interrupted;
        let Driver { workers, trials, fatal, s, .. } = self;
        workers.join();
        if let Some(LogError { path, source }) = fatal {
            return Err(RunError::Logging { path, source, experiment_dir: s.experiment_dir });
        }
        if interrupted {
            let unfinished = trials.iter().filter(|t| !t.status.is_finished()).count();
            return Err(RunError::Interrupted { experiment_dir: s.experiment_dir, unfinished });
        }
        Ok(Analysis { experiment_dir: s.experiment_dir, trials })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::testing::{Counter, SCORE};
    use crate::{Mode, Scope, Stop, TrialStatus, Tuner};

    #[test]
    fn runs_the_grid_and_stops_each_trial_at_its_iteration() {
        let dir = tempfile::tempdir().unwrap();
        let analysis = Tuner::<Counter>::new()
            .num_samples(2)
            .stop(Stop::iterations(4))
            .local_dir(dir.path())
            .name("exp")
            .seed(1)
            .verbose(0)
            .run()
            .unwrap();
        assert_eq!(analysis.trials().len(), 6);
        for t in analysis.trials() {
            assert_eq!(t.status(), TrialStatus::Terminated);
            assert_eq!(t.num_results(), 4);
        }
        let best = analysis.best_config(SCORE, Mode::Max, Scope::Last).unwrap();
        assert_eq!(best.k, 3);
        let loaded = crate::Analysis::<crate::testing::Cfg, crate::testing::Score>::from_dir(
            dir.path().join("exp"),
        )
        .unwrap();
        assert_eq!(loaded.trials().len(), 6);
        assert_eq!(loaded.trials()[5].config(), analysis.trials()[5].config());
    }
}
