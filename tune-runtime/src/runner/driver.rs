//! The driver: one thread that owns all experiment state and reacts to worker messages.
//! This file holds the state, the start of a run, the event loop and the end of a run;
//! the files beside it hold the driver's other concerns (see `mod.rs`).

use std::any::Any;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::model::{Factory, Instance, Model};
use super::settings::Settings;
use super::shared::Follow;
use super::snapshot::Snapshot;
use super::state::{Phase, Trial};
use super::worker::{Done, Outcome, Pool};
use super::{capture, files, interrupt, resume, unix_now};
use crate::journal::{
    FileJournal, FlushError, JOURNAL_FILE, JOURNAL_VERSION, Journal, JournalStore, Record,
};
use crate::logger::LogError;
use crate::reporter::{Reporter, STATUSES};
use crate::resources::ResourcePool;
use crate::trial::{Auto, TrialId, TrialStatus};
use crate::tuner::RunError;

pub(crate) struct Driver {
    pub s: Settings,
    pub model: Box<dyn Model>,
    pub trials: Vec<Trial>,
    /// Trials waiting for resources, in the order the scheduler sees them.
    pub pending: Vec<TrialId>,
    /// Trials paused (in memory or on disk) that the scheduler may resume.
    pub paused: Vec<TrialId>,
    pub pool: ResourcePool,
    pub workers: Pool,
    pub journal: Option<Journal>,
    pub reporter: Reporter,
    /// Trials per status, in the order of [`STATUSES`].
    pub counts: [usize; 5],
    pub finished: usize,
    /// Tasks on workers, including abandoned ones and cleanups.
    pub in_flight: usize,
    /// Of those, `Cleanup` tasks (instances no trial holds any more).
    pub cleanups: usize,
    /// Trials holding resources.
    pub running: usize,
    pub searcher_done: bool,
    pub searcher_waiting: bool,
    /// Instances of finished trials kept for reuse (`reuse_actors`).
    pub idle: Vec<Box<dyn Instance>>,
    /// The first failed write: the run stops (resumably) and reports it.
    pub fatal: Option<LogError>,
    /// No new trials; running ones end after their current step.
    pub stopping: bool,
    /// Stopping because of Ctrl-C, SIGTERM or a failed write: unfinished trials are left
    /// resumable.
    pub interrupted: Option<Instant>,
    pub watch: interrupt::Watch,
    pub start: Instant,
    pub start_unix: u64,
    pub unix_now: u64,
    /// Scratch row of the result being applied.
    pub row: Vec<f64>,
    /// Values per result row.
    pub width: usize,
    pub snapshot: Snapshot,
    /// Workers stuck in a step the run gave up on.
    pub abandoned: usize,
    /// The lock on the experiment directory, held for the whole run.
    pub _lock: Option<files::DirLock>,
    /// Trials' output captured in process (`Tuner::capture_output`); ended in `shutdown`,
    /// or when dropped on any other way out of the run (an error, a panic).
    pub capture: Option<super::capture::Capture>,
    /// This process's view of a shared experiment (`None`: the experiment is ours alone).
    pub follow: Option<Follow>,
    /// This process lost its lease on the shared experiment.
    pub fenced: bool,
    /// The shared journal failed for good.
    pub shared_error: Option<RunError>,
    /// The built-in loggers (with file logging) and the user's callbacks.
    pub callbacks: crate::callback::Callbacks,
    /// Unix time the experiment first started (kept by resumes): trial ids derive from it.
    pub started_exp: u64,
}

/// Runs an experiment; see [`crate::Tuner::run`]. Returns the typed analysis, boxed.
pub(crate) fn run(
    mut s: Settings,
    mut model: Box<dyn Model>,
    factory: Arc<dyn Factory>,
) -> Result<Box<dyn Any>, RunError> {
    let dir_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::LocalDir { path, source }
    };
    s.checkpoint_store.attach(&s.experiment_dir).map_err(|source| {
        let experiment_dir = s.experiment_dir.clone();
        if crate::checkpoint::is_remote(&source) {
            RunError::CheckpointStore { source, experiment_dir }
        } else {
            RunError::LocalDir { path: experiment_dir, source }
        }
    })?;
    let mut lock = None;
    let mut journal = None;
    let mut log: Option<crate::journal::ExperimentLog<serde_json::Value>> = None;
    let mut follow = None;
    let mut started_exp = unix_now();
    let header = |s: &Settings| Record::Experiment {
        version: JOURNAL_VERSION,
        name: s.name.clone(),
        trainable: model.trainable().to_string(),
        metrics: model.metric_names().iter().map(|n| n.to_string()).collect(),
        seed: s.seed,
        started: unix_now(),
        space: Some(s.space.clone()),
    };
    if let Some(mut shared) = s.shared.take() {
        // A peer of a shared experiment: the log is the store's; local files are this
        // process's trials only.
        std::fs::create_dir_all(&s.experiment_dir).map_err(dir_err(&s.experiment_dir))?;
        let (f, seed, started) =
            super::shared::join(&mut *shared, &header(&s), s.lease, &s.experiment_dir)?;
        s.seed = seed;
        started_exp = started;
        follow = Some(f);
        journal = Some(Journal::shared(shared));
    } else if s.file_logging {
        std::fs::create_dir_all(&s.experiment_dir).map_err(dir_err(&s.experiment_dir))?;
        lock = Some(files::DirLock::take(&s.experiment_dir)?);
        let mut store: Box<dyn JournalStore> = match s.journal_store.take() {
            Some(store) => store,
            None => {
                let path = s.experiment_dir.join(JOURNAL_FILE);
                files::refuse_link(&s.experiment_dir, &path)?;
                Box::new(FileJournal::open(&path).map_err(dir_err(&path))?)
            }
        };
        let journal_path = s.experiment_dir.join(JOURNAL_FILE);
        if s.faults.resume.is_some() {
            log = resume::load(&mut *store, &s.experiment_dir, &*model)?;
        } else if !store.is_empty().map_err(dir_err(&journal_path))? {
            return Err(RunError::ExperimentExists { path: s.experiment_dir.clone() });
        }
        if log.is_none() {
            // A fresh start: the directory must not hold another experiment's trials.
            files::refuse_leftovers(&s.experiment_dir, s.faults.resume.is_some())?;
        }
        if let Some(h) = log.as_ref().and_then(|l| l.header.as_ref()) {
            s.seed = h.seed;
            started_exp = h.started;
        }
        let mut j = Journal::new(store);
        let first = match &log {
            Some(_) => Record::Resume { started: unix_now() },
            None => header(&s),
        };
        j.record(&first).map_err(dir_err(&journal_path))?;
        j.flush()
            .map_err(|e| RunError::LocalDir { path: journal_path.clone(), source: e.into_io() })?;
        journal = Some(j);
    }
    model.setup(s.num_samples, s.seed);
    let threads = (s.total_cpus.ceil().max(1.0) as usize).min(s.max_concurrent);
    // Trials' output: in process, descriptors 1 and 2 are captured from here to the end of
    // the run (by default only while the live table is drawn, for a run on the program's
    // main thread: a test harness runs tests on threads of their own and captures their
    // `println!` itself); isolated trials' processes write to their files.
    let in_process = !s.isolate
        && s.file_logging
        && s.capture.unwrap_or_else(|| {
            s.verbosity >= 2
                && std::io::stdout().is_terminal()
                && std::thread::current().name() == Some("main")
        });
    let (capture, capture_error) = match in_process.then(|| capture::start(&s.experiment_dir)) {
        Some(Ok(c)) => (c, None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    let output = super::worker::Output {
        tagger: capture.as_ref().map(capture::Capture::tagger),
        child_files: s.isolate && s.file_logging && s.capture != Some(false),
    };
    let workers = Pool::start(threads, factory, Arc::clone(&s.checkpoint_store), output)
        .map_err(RunError::Threads)?;
    let pool = ResourcePool::new(s.total_cpus, s.gpu_ids.clone(), s.custom_totals.clone());
    let reporter = Reporter::new(s.verbosity, model.total_trials());
    let width = model.metric_names().len() + Auto::ALL.len();
    let mut callbacks = if s.file_logging {
        crate::callback::Callbacks::builtin_loggers(s.results.tensorboard)
    } else {
        crate::callback::Callbacks::new()
    };
    callbacks.append(&mut s.results.callbacks);
    let mut d = Driver {
        s,
        model,
        trials: Vec::new(),
        pending: Vec::new(),
        paused: Vec::new(),
        pool,
        workers,
        journal,
        reporter,
        counts: [0; 5],
        finished: 0,
        in_flight: 0,
        cleanups: 0,
        running: 0,
        searcher_done: false,
        searcher_waiting: false,
        idle: Vec::new(),
        fatal: None,
        stopping: false,
        interrupted: None,
        watch: interrupt::Watch::start(false),
        start: Instant::now(),
        start_unix: unix_now(),
        unix_now: unix_now(),
        row: Vec::with_capacity(width),
        width,
        snapshot: Snapshot::default(),
        abandoned: 0,
        _lock: lock,
        capture,
        follow,
        fenced: false,
        shared_error: None,
        callbacks,
        started_exp,
    };
    if let Some(e) = capture_error {
        d.warn(&format!("trials' output is not captured (pipes for it could not be made: {e})"));
    }
    d.experiment_start(log.is_some())?;
    if let Some(log) = log {
        d.resume_from(log)?;
    }
    // A peer catches up with the experiment before it starts anything.
    d.sync()?;
    d.watch = interrupt::Watch::start(d.s.faults.handle_sigint);
    // A panic in driver-side user code (a stop closure, the searcher, the scheduler) ends
    // the run; flush what was recorded before passing it on.
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.event_loop())) {
        d.flush_files();
        std::panic::resume_unwind(panic);
    }
    d.shutdown()
}

pub(crate) fn status_slot(s: TrialStatus) -> usize {
    STATUSES.iter().position(|x| *x == s).unwrap_or(0)
}

impl Driver {
    fn event_loop(&mut self) {
        let mut next_tick = self.start + self.s.status_interval.min(Duration::from_secs(1));
        let deadline = self.s.time_budget.map(|b| self.start + b);
        // The first status block comes at once, not after a whole interval.
        let mut first = true;
        loop {
            let progressed = self.fill();
            if first {
                first = false;
                self.tick();
            }
            if self.in_flight == self.abandoned + self.cleanups {
                if progressed {
                    continue;
                }
                if self.is_shared() && !self.stopping && self.shared_work_left() {
                    // Other processes still run trials: follow them (and take over those
                    // whose process dies) until the experiment is over.
                    self.shared_wait();
                    self.shared_tick(Instant::now());
                    continue;
                }
                // No trial's task runs (only tasks the run gave up on, and cleanups, which
                // `shutdown` waits for) and nothing could start: the experiment is over
                // (or its searcher and scheduler hold nothing runnable).
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
                    if let Some(t) = self.next_step_deadline() {
                        wake = wake.min(t);
                    }
                    if let Some(t) = self.shared_wake() {
                        wake = wake.min(t);
                    }
                    if self.s.faults.handle_sigint || self.interrupted.is_some() {
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
            if self.interrupted.is_none() && self.watch.interrupted() {
                self.interrupt();
            }
            self.check_hung(now);
            self.shared_tick(now);
            if now >= next_tick {
                next_tick = now + self.s.status_interval;
                self.tick();
            }
        }
    }

    /// Periodic work: flush files, save the searcher's and scheduler's state when due,
    /// print the status.
    pub fn tick(&mut self) {
        self.flush_files();
        self.print_status();
    }

    pub fn flush_files(&mut self) {
        self.flush_callbacks();
        self.save_state(false);
        self.flush_journal();
    }

    pub fn flush_journal(&mut self) {
        loop {
            let Some(j) = &mut self.journal else { return };
            match j.flush() {
                Ok(()) => {
                    if let Some(f) = self.follow.as_mut() {
                        f.last_flush = Instant::now();
                    }
                    return;
                }
                // Another process took the trial over: its records were dropped, the rest
                // goes on.
                Err(FlushError::NotOwner(trial)) => self.lose_trial(TrialId(trial)),
                Err(FlushError::LeaseExpired) => return self.fenced(),
                Err(e) => {
                    let path = self.s.experiment_dir.join(JOURNAL_FILE);
                    self.fatal.get_or_insert(LogError { path, source: e.into_io() });
                    self.journal = None;
                    return;
                }
            }
        }
    }

    pub fn journal(&mut self, record: &Record) {
        if let Some(j) = &mut self.journal {
            match j.record(record) {
                Ok(n) => self.snapshot.appended(n),
                Err(source) => {
                    let path = self.s.experiment_dir.join(JOURNAL_FILE);
                    self.fatal.get_or_insert(LogError { path, source });
                    self.journal = None;
                }
            }
        }
    }

    /// Tells the callbacks the experiment starts (or resumes).
    fn experiment_start(&mut self, resumed: bool) -> Result<(), RunError> {
        let names: Vec<String> = self.model.metric_names().iter().map(|n| n.to_string()).collect();
        let view = crate::callback::ExperimentView::new(
            &self.s.name,
            &self.s.experiment_dir,
            self.model.trainable(),
            &names,
            self.started_exp,
        )
        .resumed(resumed);
        self.callbacks.on_experiment_start(&view).map_err(|e| RunError::LocalDir {
            path: e.path.clone(),
            source: std::io::Error::new(e.source.kind(), e.source.to_string()),
        })
    }

    pub fn set_status(&mut self, id: TrialId, status: TrialStatus, error: Option<String>) {
        let trial = &mut self.trials[id.index()];
        if let Some(before) = trial.counted {
            self.counts[status_slot(before)] -= 1;
        }
        self.counts[status_slot(status)] += 1;
        trial.counted = Some(status);
        let t = &mut trial.log;
        t.status = status;
        if error.is_some() {
            t.error.clone_from(&error);
        }
        self.journal(&Record::Status { trial: id.0, status, error });
    }

    pub fn warn(&mut self, message: &str) {
        if self.s.verbosity >= 1 {
            capture::print_err(&format!("tune: {message}"));
        }
    }

    fn handle(&mut self, msg: Done) {
        self.in_flight -= 1;
        let Some(trial) = msg.trial else {
            self.cleanups = self.cleanups.saturating_sub(1);
            return;
        };
        let id = TrialId(trial);
        let current = self.trials[id.index()].live.as_ref().is_some_and(|l| l.ticket == msg.ticket);
        if !current {
            // The answer to a task the run gave up on (a hung step that returned at last).
            self.abandoned = self.abandoned.saturating_sub(1);
            if let Some(inst) = msg.inst {
                self.send_cleanup(inst);
            }
            return;
        }
        if let Some(live) = self.trials[id.index()].live.as_mut() {
            live.sent = None;
        }
        match msg.out {
            Outcome::CleanedUp => {}
            Outcome::Suspended { checkpoint } => self.on_suspended(id, checkpoint),
            Outcome::Stepped { results, failure, checkpoint, ended } => {
                self.on_stepped(id, msg.inst, results, failure, checkpoint, ended);
            }
            Outcome::Finished { checkpoint } => self.on_finished(id, msg.inst, checkpoint),
        }
    }

    fn shutdown(mut self) -> Result<Box<dyn Any>, RunError> {
        for inst in std::mem::take(&mut self.idle) {
            self.send_cleanup(inst);
        }
        // Trials' tasks are bounded by `check_hung` (the step timeout, the grace period
        // after an interrupt); cleanups by the same limits, counted from here, or until a
        // Ctrl-C. Without either limit the run waits, as it would for a step.
        let cleanup_limit = self
            .s
            .faults
            .step_timeout
            .or_else(|| self.interrupted.is_some().then_some(self.s.faults.interrupt_grace));
        let cleanup_deadline = cleanup_limit.map(|limit| Instant::now() + limit);
        let watched = self.watch.interrupted();
        while self.in_flight > self.abandoned {
            let now = Instant::now();
            let only_cleanups = self.in_flight == self.abandoned + self.cleanups;
            let give_up = cleanup_deadline.is_some_and(|d| now >= d)
                || (!watched && self.watch.interrupted());
            if only_cleanups && give_up {
                self.warn(&format!(
                    "{} `cleanup` call(s) did not return; ending the run without them",
                    self.cleanups
                ));
                self.abandoned += self.cleanups;
                self.cleanups = 0;
                break;
            }
            let mut wake = now + interrupt::POLL;
            if let Some(d) = self.next_step_deadline() {
                wake = wake.min(d);
            }
            match self.workers.done.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => self.handle(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.check_hung(Instant::now());
            for inst in std::mem::take(&mut self.idle) {
                self.send_cleanup(inst);
            }
        }
        self.save_state(true);
        if self.interrupted.is_none() && !self.is_shared() {
            self.journal(&Record::End { ended: unix_now() });
        }
        self.flush_journal();
        self.leave_shared();
        self.flush_callbacks();
        let end = if self.interrupted.is_some() || self.fatal.is_some() {
            crate::callback::EndKind::Interrupted
        } else {
            crate::callback::EndKind::Finished
        };
        if let Err(e) = self.callbacks.on_experiment_end(end) {
            self.fatal.get_or_insert(e);
        }
        self.summary();
        let interrupted = self.interrupted.is_some();
        let abandoned = self.abandoned > 0;
        let fenced = self.fenced;
        let Driver { workers, trials, fatal, s, model, shared_error, capture, .. } = self;
        workers.join(abandoned);
        // After the workers: what a `cleanup` printed is in the files too.
        if let Some(why) = capture.and_then(capture::Capture::finish) {
            if s.verbosity >= 1 {
                capture::print_err(&format!("tune: {why}"));
            }
        }
        if fenced {
            return Err(RunError::Fenced { experiment_dir: s.experiment_dir });
        }
        if let Some(e) = shared_error {
            return Err(e);
        }
        if let Some(LogError { path, source }) = fatal {
            if crate::checkpoint::is_remote(&source) {
                return Err(RunError::CheckpointStore { source, experiment_dir: s.experiment_dir });
            }
            return Err(RunError::Logging { path, source, experiment_dir: s.experiment_dir });
        }
        if interrupted {
            let unfinished = trials.iter().filter(|t| !t.log.status.is_finished()).count();
            return Err(RunError::Interrupted { experiment_dir: s.experiment_dir, unfinished });
        }
        let logs = trials.into_iter().map(|t| t.log).collect();
        Ok(model.into_analysis(&s.experiment_dir, logs))
    }

    /// Whether any trial is in `phase` (by name).
    pub fn any_phase(&self, pred: impl Fn(&Phase) -> bool) -> bool {
        self.trials.iter().filter_map(|t| t.live.as_ref()).any(|l| pred(&l.phase))
    }
}
