//! The worker pool: threads that run trainable code. Workers own nothing of the
//! experiment: a task carries the trainable instance in, the message carries it back.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::checkpoint::{self, CheckpointMeta, CheckpointStore, SaveError};
use crate::trainable::{Trainable, TrialContext};

/// Where and what to checkpoint after a step (or at the end).
pub(crate) struct CheckpointRequest {
    pub dir: PathBuf,
    pub iteration: u64,
    /// Total training time before the step; the worker adds the step's time.
    pub time_total_s: f64,
}

pub(crate) enum Task<T: Trainable> {
    /// Build (or reset a reused) instance, restore it if asked, then run the first step.
    Start {
        trial: u32,
        config: T::Config,
        ctx: TrialContext,
        restore: Option<PathBuf>,
        reuse: Option<Box<T>>,
        checkpoint: Option<CheckpointRequest>,
    },
    /// Run one step.
    Step { trial: u32, inst: Box<T>, checkpoint: Option<CheckpointRequest> },
    /// Run up to `steps` steps (stopping early after [`BATCH_TIME`]), collecting the
    /// results into `buf`.
    Steps { trial: u32, inst: Box<T>, steps: u32, buf: Vec<(T::Metrics, f64)> },
    /// End the trial: checkpoint if asked, then `cleanup` unless the instance is kept for
    /// reuse.
    Finish { trial: u32, inst: Box<T>, checkpoint: Option<CheckpointRequest>, keep: bool },
    /// Release an idle reused instance.
    Cleanup { inst: Box<T> },
    /// Pause to disk: checkpoint if asked, then `cleanup` and drop the instance.
    Suspend { trial: u32, inst: Box<T>, checkpoint: Option<CheckpointRequest> },
}

pub(crate) enum Outcome<M> {
    Stepped {
        metrics: M,
        dt: f64,
        checkpoint: Option<Result<(), SaveError>>,
    },
    /// The results of [`Task::Steps`], then how it failed if a step failed (the instance
    /// is gone then).
    Batch {
        results: Vec<(M, f64)>,
        failure: Option<(String, bool)>,
    },
    /// `setup`/`step` failed or panicked (`finished == false`), or the trainable ended by
    /// itself (`finished == true`: a function trainable whose function returned).
    Failed {
        message: String,
        finished: bool,
    },
    Finished {
        checkpoint: Option<Result<(), SaveError>>,
    },
    CleanedUp,
    /// A `Suspend` task ended; the instance is gone.
    Suspended {
        checkpoint: Option<Result<(), SaveError>>,
    },
}

/// A run of steps reports back once it has taken this long, so that the driver sees
/// results (status, time budget) at least this often.
pub(crate) const BATCH_TIME: Duration = Duration::from_millis(5);

pub(crate) struct Done<T: Trainable> {
    pub trial: u32,
    pub inst: Option<Box<T>>,
    pub out: Outcome<T::Metrics>,
}

pub(crate) struct Pool<T: Trainable> {
    pub tasks: Sender<Task<T>>,
    pub done: Receiver<Done<T>>,
    handles: Vec<JoinHandle<()>>,
}

impl<T: Trainable> Pool<T> {
    pub fn start(workers: usize, store: Arc<dyn CheckpointStore>) -> std::io::Result<Self> {
        let (tasks, task_rx) = crossbeam_channel::unbounded::<Task<T>>();
        let (done_tx, done) = crossbeam_channel::unbounded::<Done<T>>();
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let rx = task_rx.clone();
            let tx = done_tx.clone();
            let store = Arc::clone(&store);
            handles.push(std::thread::Builder::new().name(format!("tune-worker-{i}")).spawn(
                move || {
                    while let Ok(task) = rx.recv() {
                        if tx.send(run_task(task, &*store)).is_err() {
                            break;
                        }
                    }
                },
            )?);
        }
        Ok(Self { tasks, done, handles })
    }

    /// Closes the task queue and waits for every worker to return.
    pub fn join(self) {
        drop(self.tasks);
        for h in self.handles {
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

fn failed<T: Trainable>(trial: u32, message: String) -> Done<T> {
    Done { trial, inst: None, out: Outcome::Failed { message, finished: false } }
}

fn checkpoint<T: Trainable>(
    store: &dyn CheckpointStore,
    inst: &T,
    req: &CheckpointRequest,
    dt: f64,
) -> Result<(), SaveError> {
    let meta = CheckpointMeta {
        trainable: T::NAME.to_string(),
        iteration: req.iteration,
        time_total_s: req.time_total_s + dt,
    };
    guard("save", || checkpoint::save(store, inst, &req.dir, &meta))
        .unwrap_or_else(|panic| Err(SaveError::Trial(panic)))
}

fn step<T: Trainable>(
    store: &dyn CheckpointStore,
    trial: u32,
    mut inst: Box<T>,
    req: Option<CheckpointRequest>,
) -> Done<T> {
    let t0 = Instant::now();
    match guard("step", || inst.step()) {
        Ok(Ok(metrics)) => {
            let dt = t0.elapsed().as_secs_f64();
            let checkpoint = req.map(|r| checkpoint(store, &*inst, &r, dt));
            Done { trial, inst: Some(inst), out: Outcome::Stepped { metrics, dt, checkpoint } }
        }
        Ok(Err(e)) => {
            let finished = e.is_finished() || e.is_stop();
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial, inst: None, out: Outcome::Failed { message: e.to_string(), finished } }
        }
        // The instance may be half-updated: drop it without calling into it again.
        Err(message) => failed(trial, message),
    }
}

fn steps<T: Trainable>(
    trial: u32,
    mut inst: Box<T>,
    steps: u32,
    mut buf: Vec<(T::Metrics, f64)>,
) -> Done<T> {
    buf.clear();
    let start = Instant::now();
    let mut t0 = start;
    for _ in 0..steps {
        match guard("step", || inst.step()) {
            Ok(Ok(metrics)) => {
                let now = Instant::now();
                buf.push((metrics, now.duration_since(t0).as_secs_f64()));
                t0 = now;
                if now.duration_since(start) >= BATCH_TIME {
                    break;
                }
            }
            Ok(Err(e)) => {
                let finished = e.is_finished() || e.is_stop();
                let _ = guard("cleanup", || inst.cleanup());
                let failure = Some((e.to_string(), finished));
                return Done { trial, inst: None, out: Outcome::Batch { results: buf, failure } };
            }
            Err(message) => {
                return Done {
                    trial,
                    inst: None,
                    out: Outcome::Batch { results: buf, failure: Some((message, false)) },
                };
            }
        }
    }
    Done { trial, inst: Some(inst), out: Outcome::Batch { results: buf, failure: None } }
}

fn run_task<T: Trainable>(task: Task<T>, store: &dyn CheckpointStore) -> Done<T> {
    match task {
        Task::Steps { trial, inst, steps: n, buf } => steps(trial, inst, n, buf),
        Task::Start { trial, config, ctx, restore, reuse, checkpoint } => {
            let inst = match reuse {
                Some(mut inst) => {
                    match guard("reset_config", || inst.reset_config(&config, &ctx)) {
                        Ok(Ok(true)) => Ok(inst),
                        Ok(Ok(false)) => {
                            let _ = guard("cleanup", || inst.cleanup());
                            drop(inst);
                            guard("setup", || T::setup(&config, &ctx).map(Box::new))
                                .and_then(|r| r.map_err(|e| format!("`setup` failed: {e}")))
                        }
                        Ok(Err(e)) => Err(format!("`reset_config` failed: {e}")),
                        Err(m) => Err(m),
                    }
                }
                None => guard("setup", || T::setup(&config, &ctx).map(Box::new))
                    .and_then(|r| r.map_err(|e| format!("`setup` failed: {e}"))),
            };
            let mut inst = match inst {
                Ok(inst) => inst,
                Err(message) => return failed(trial, message),
            };
            if let Some(dir) = restore {
                match guard("restore", || checkpoint::restore(&mut *inst, &dir)).and_then(|r| r) {
                    Ok(()) => {}
                    Err(message) => {
                        let _ = guard("cleanup", || inst.cleanup());
                        return failed(
                            trial,
                            format!("restoring `{}` failed: {message}", dir.display()),
                        );
                    }
                }
            }
            step(store, trial, inst, checkpoint)
        }
        Task::Step { trial, inst, checkpoint } => step(store, trial, inst, checkpoint),
        Task::Finish { trial, mut inst, checkpoint, keep } => {
            let checkpoint = checkpoint.map(|r| self::checkpoint(store, &*inst, &r, 0.0));
            if keep {
                return Done { trial, inst: Some(inst), out: Outcome::Finished { checkpoint } };
            }
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial, inst: None, out: Outcome::Finished { checkpoint } }
        }
        Task::Suspend { trial, mut inst, checkpoint } => {
            let checkpoint = checkpoint.map(|r| self::checkpoint(store, &*inst, &r, 0.0));
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial, inst: None, out: Outcome::Suspended { checkpoint } }
        }
        Task::Cleanup { mut inst } => {
            let _ = guard("cleanup", || inst.cleanup());
            Done { trial: u32::MAX, inst: None, out: Outcome::CleanedUp }
        }
    }
}
