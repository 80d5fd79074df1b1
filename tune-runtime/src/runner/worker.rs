//! The worker pool: threads that run trainable code. Workers own nothing of the
//! experiment: a task carries the (type-erased) instance in, the message carries it back.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::model::{AnyConfig, CheckpointRequest, Factory, Instance, Results};
use crate::checkpoint::{CheckpointStore, SaveError};
use crate::trainable::TrialContext;

/// The steps a task runs, and what follows them.
pub(crate) struct Work {
    /// How many steps to run (at least 1); a run of several reports back early once it
    /// has taken [`BATCH_TIME`].
    pub steps: u32,
    /// A checkpoint after the last step, when all ran.
    pub checkpoint: Option<CheckpointRequest>,
    /// The trial certainly ends after its last step (iteration criteria): end it in the
    /// same task, when all steps ran, which saves the driver a round trip per trial.
    pub then: Option<Ending>,
    /// Where the results go (lent by the driver, reused from task to task).
    pub results: Results,
}

/// How a trial ends on a worker.
pub(crate) struct Ending {
    pub checkpoint: Option<CheckpointRequest>,
    /// Keep the instance for another trial (`reuse_actors`) instead of cleaning it up.
    pub keep: bool,
}

pub(crate) enum Task {
    /// Build (or reset a reused) instance, restore it if asked, then do the work.
    Start {
        trial: u32,
        ticket: u64,
        config: AnyConfig,
        ctx: TrialContext,
        restore: Option<PathBuf>,
        reuse: Option<Box<dyn Instance>>,
        work: Work,
    },
    /// Run steps of a live instance.
    Run { trial: u32, ticket: u64, inst: Box<dyn Instance>, work: Work },
    /// End the trial.
    Finish { trial: u32, ticket: u64, inst: Box<dyn Instance>, ending: Ending },
    /// Pause to disk: checkpoint if asked, then `cleanup` and drop the instance.
    Suspend {
        trial: u32,
        ticket: u64,
        inst: Box<dyn Instance>,
        checkpoint: Option<CheckpointRequest>,
    },
    /// Release an idle reused instance.
    Cleanup { inst: Box<dyn Instance> },
}

impl Task {
    /// The trial the task is of ([`super::capture::NO_TRIAL`] for none), and its
    /// directory when the task carries it (a start).
    fn trial_and_dir(&self) -> (u32, Option<&std::path::Path>) {
        match self {
            Task::Start { trial, ctx, .. } => (*trial, ctx.trial_dir.as_deref()),
            Task::Run { trial, .. } | Task::Finish { trial, .. } | Task::Suspend { trial, .. } => {
                (*trial, None)
            }
            Task::Cleanup { .. } => (super::capture::NO_TRIAL, None),
        }
    }
}

/// Why a trial's code failed, as the worker saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// `setup` or `reset_config` failed or panicked.
    Setup(String),
    /// Restoring the checkpoint at `path` failed.
    Restore { path: PathBuf, message: String },
    /// `step` failed or panicked.
    Step(String),
    /// The trainable ended by itself (a function trainable returned, or stopped): not a
    /// failure, the trial is complete.
    Finished,
}

impl Failure {
    /// The message recorded for an errored trial.
    pub fn message(&self) -> String {
        match self {
            Failure::Setup(m) | Failure::Step(m) => m.clone(),
            Failure::Restore { path, message } => {
                format!("restoring `{}` failed: {message}", path.display())
            }
            Failure::Finished => "the trainable finished".into(),
        }
    }
}

pub(crate) enum Outcome {
    /// The results of a `Start`/`Run` task, in order; then how it failed (the instance
    /// is gone then), the checkpoint after the last step, and the ending when the work's
    /// `then` ran (the instance comes back only when kept for reuse).
    Stepped {
        results: Results,
        failure: Option<Failure>,
        checkpoint: Option<Result<(), SaveError>>,
        ended: Option<Option<Result<(), SaveError>>>,
    },
    Finished {
        checkpoint: Option<Result<(), SaveError>>,
    },
    /// A `Suspend` task ended; the instance is gone.
    Suspended {
        checkpoint: Option<Result<(), SaveError>>,
    },
    CleanedUp,
}

/// A run of steps reports back once it has taken this long, so that the driver sees
/// results (status, time budget) at least this often.
pub(crate) const BATCH_TIME: Duration = Duration::from_millis(5);

pub(crate) struct Done {
    /// The trial, `None` for a [`Task::Cleanup`].
    pub trial: Option<u32>,
    /// The ticket of the task this answers (see `Live::ticket`).
    pub ticket: u64,
    pub inst: Option<Box<dyn Instance>>,
    pub out: Outcome,
}

/// A task and the CPU budget of its trial: the threads of the rayon pool it runs in
/// (`None`: no budget, rayon's global pool).
pub(crate) struct Job {
    pub task: Task,
    pub threads: Option<usize>,
}

/// Worker threads. The pool grows to as many threads as tasks are in flight, so that
/// every admitted trial (fractional CPUs admit more trials than cores) has a thread.
/// Each task runs inside a rayon pool sized by its trial's CPU grant (`threads.rs`).
pub(crate) struct Pool {
    pub tasks: Sender<Job>,
    pub done: Receiver<Done>,
    task_rx: Receiver<Job>,
    done_tx: Sender<Done>,
    factory: Arc<dyn Factory>,
    store: Arc<dyn CheckpointStore>,
    handles: Vec<JoinHandle<()>>,
    output: Output,
}

/// What the workers do about trials' output (`Tuner::capture_output`).
#[derive(Clone, Default)]
pub(crate) struct Output {
    /// In-process capture: every task runs between its trial's markers.
    pub tagger: Option<Arc<super::capture::Tagger>>,
    /// Worker processes (isolated trials) write to their trial's files.
    pub child_files: bool,
}

impl Pool {
    pub fn start(
        workers: usize,
        factory: Arc<dyn Factory>,
        store: Arc<dyn CheckpointStore>,
        output: Output,
    ) -> std::io::Result<Self> {
        let (tasks, task_rx) = crossbeam_channel::unbounded::<Job>();
        let (done_tx, done) = crossbeam_channel::unbounded::<Done>();
        let mut pool =
            Self { tasks, done, task_rx, done_tx, factory, store, handles: Vec::new(), output };
        pool.grow(workers.max(1))?;
        Ok(pool)
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Starts threads until there are `n`.
    pub fn grow(&mut self, n: usize) -> std::io::Result<()> {
        while self.handles.len() < n {
            let rx = self.task_rx.clone();
            let tx = self.done_tx.clone();
            let store = Arc::clone(&self.store);
            let factory = Arc::clone(&self.factory);
            let output = self.output.clone();
            let name = format!("tune-worker-{}", self.handles.len());
            self.handles.push(std::thread::Builder::new().name(name).spawn(move || {
                while let Ok(Job { task, threads }) = rx.recv() {
                    let (factory, store, output) = (&*factory, &*store, &output);
                    let done = super::threads::run_within(threads, || {
                        // On the thread that runs the task (a lent pool's, maybe).
                        super::capture::set_child_files(output.child_files);
                        match &output.tagger {
                            Some(tagger) => {
                                let (trial, dir) = task.trial_and_dir();
                                if let Some(dir) = dir {
                                    tagger.register(trial, dir);
                                }
                                tagger.around(trial, || run_task(task, factory, store))
                            }
                            None => run_task(task, factory, store),
                        }
                    });
                    if tx.send(done).is_err() {
                        break;
                    }
                }
            })?);
        }
        Ok(())
    }

    /// Closes the task queue and waits for every worker that is not stuck in a task to
    /// return. `abandoned` workers (a step that never returned) are left behind.
    pub fn join(self, abandoned: bool) {
        let Pool { tasks, task_rx, done_tx, handles, .. } = self;
        drop((tasks, task_rx, done_tx));
        if abandoned {
            return;
        }
        for h in handles {
            let _ = h.join();
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn guard<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| format!("`{what}` panicked: {}", panic_message(&*p)))
}

fn save(
    store: &dyn CheckpointStore,
    inst: &dyn Instance,
    req: &CheckpointRequest,
    elapsed: f64,
) -> Result<(), SaveError> {
    guard("save", || inst.save(store, req, elapsed))
        .unwrap_or_else(|panic| Err(SaveError::Trial(panic)))
}

fn failed(trial: u32, ticket: u64, results: Results, failure: Failure) -> Done {
    let out = Outcome::Stepped { results, failure: Some(failure), checkpoint: None, ended: None };
    Done { trial: Some(trial), ticket, inst: None, out }
}

/// What ending a trial on a worker gives back: the instance when kept, and how its
/// checkpoint went when one was asked for.
type Ended = (Option<Box<dyn Instance>>, Option<Result<(), SaveError>>);

/// Ends a trial on the worker: checkpoint if asked, then `cleanup` unless kept.
fn end(
    store: &dyn CheckpointStore,
    mut inst: Box<dyn Instance>,
    ending: Ending,
    elapsed: f64,
) -> Ended {
    let checkpoint = ending.checkpoint.as_ref().map(|r| save(store, &*inst, r, elapsed));
    if ending.keep {
        return (Some(inst), checkpoint);
    }
    let _ = guard("cleanup", || inst.cleanup());
    (None, checkpoint)
}

fn steps(
    store: &dyn CheckpointStore,
    trial: u32,
    ticket: u64,
    mut inst: Box<dyn Instance>,
    work: Work,
) -> Done {
    let Work { steps, checkpoint, then, mut results } = work;
    results.dts.clear();
    let start = Instant::now();
    let mut t0 = start;
    for _ in 0..steps {
        match guard("step", || inst.step(&mut *results.metrics)) {
            Ok(Ok(())) => {
                let now = Instant::now();
                results.dts.push(now.duration_since(t0).as_secs_f64());
                t0 = now;
                if results.dts.len() < steps as usize && now.duration_since(start) >= BATCH_TIME {
                    break;
                }
            }
            Ok(Err(e)) => {
                let failure = if e.is_finished() || e.is_stop() {
                    Failure::Finished
                } else {
                    Failure::Step(e.to_string())
                };
                let _ = guard("cleanup", || inst.cleanup());
                let out = Outcome::Stepped {
                    results,
                    failure: Some(failure),
                    checkpoint: None,
                    ended: None,
                };
                return Done { trial: Some(trial), ticket, inst: None, out };
            }
            // The instance may be half-updated: drop it without calling into it again.
            Err(message) => {
                let out = Outcome::Stepped {
                    results,
                    failure: Some(Failure::Step(message)),
                    checkpoint: None,
                    ended: None,
                };
                return Done { trial: Some(trial), ticket, inst: None, out };
            }
        }
    }
    let all = results.dts.len() == steps as usize;
    let elapsed: f64 = results.dts.iter().sum();
    let checkpoint = checkpoint.filter(|_| all).map(|r| save(store, &*inst, &r, elapsed));
    let (inst, ended) = match then.filter(|_| all) {
        Some(ending) => {
            let (inst, c) = end(store, inst, ending, elapsed);
            (inst, Some(c))
        }
        None => (Some(inst), None),
    };
    let out = Outcome::Stepped { results, failure: None, checkpoint, ended };
    Done { trial: Some(trial), ticket, inst, out }
}

fn run_task(task: Task, factory: &dyn Factory, store: &dyn CheckpointStore) -> Done {
    match task {
        Task::Run { trial, ticket, inst, work } => steps(store, trial, ticket, inst, work),
        Task::Start { trial, ticket, config, ctx, restore, reuse, work } => {
            let setup = || {
                guard("setup", || factory.setup(&*config, &ctx))
                    .and_then(|r| r.map_err(|e| format!("`setup` failed: {e}")))
            };
            let inst = match reuse {
                Some(mut inst) => match guard("reset_config", || inst.reset_config(&*config, &ctx))
                {
                    Ok(Ok(true)) => Ok(inst),
                    Ok(Ok(false)) => {
                        let _ = guard("cleanup", || inst.cleanup());
                        drop(inst);
                        setup()
                    }
                    Ok(Err(e)) => Err(format!("`reset_config` failed: {e}")),
                    Err(m) => Err(m),
                },
                None => setup(),
            };
            let mut inst = match inst {
                Ok(inst) => inst,
                Err(message) => {
                    return failed(trial, ticket, work.results, Failure::Setup(message));
                }
            };
            if let Some(path) = restore {
                let restored = store
                    .open(&path)
                    .map_err(|e| format!("cannot read it: {e}"))
                    .and_then(|local| guard("restore", || inst.restore(&local)).and_then(|r| r));
                if let Err(message) = restored {
                    let _ = guard("cleanup", || inst.cleanup());
                    return failed(trial, ticket, work.results, Failure::Restore { path, message });
                }
            }
            steps(store, trial, ticket, inst, work)
        }
        Task::Finish { trial, ticket, inst, ending } => {
            let (inst, checkpoint) = end(store, inst, ending, 0.0);
            Done { trial: Some(trial), ticket, inst, out: Outcome::Finished { checkpoint } }
        }
        Task::Suspend { trial, ticket, mut inst, checkpoint } => {
            let checkpoint = checkpoint.map(|r| save(store, &*inst, &r, 0.0));
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial: Some(trial), ticket, inst: None, out: Outcome::Suspended { checkpoint } }
        }
        Task::Cleanup { mut inst } => {
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial: None, ticket: 0, inst: None, out: Outcome::CleanedUp }
        }
    }
}
