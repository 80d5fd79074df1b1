//! The function API: a training function reports each step through a [`Session`].
//!
//! `#[trainable]` on a function generates a struct that holds a [`FunctionRunner`]. The
//! runner starts the function on a thread of its own at the first `step` (so that a
//! checkpoint loaded right after `setup` is visible to the function through
//! [`Session::restored_state`]), and each `step` is a rendezvous: the function runs until
//! its next [`Session::report`], which hands the metrics over and blocks until the runner
//! asks for the next step or for a stop.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{CheckpointError, TrainError, TrainResult};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trainable::{Trainable, TrialContext};

pub use crate::error::{Finished, Stopped};

/// The closure of [`Session::report_with`], borrowed for one report.
type SaveFiles<'a> = &'a mut dyn FnMut(&Path) -> TrainResult<()>;

/// The type of a training function: what `#[trainable]` accepts on a `fn`.
pub type TrainFn<C, M> = fn(&C, &mut Session<M>) -> TrainResult<()>;

/// How long [`FunctionRunner::cleanup`] waits for the function to return after a stop.
const CLEANUP_GRACE: Duration = Duration::from_secs(10);

/// What the runner tells a function blocked in `report`.
enum Command {
    Continue,
    Stop,
    /// The runner keeps a checkpoint at this report: write its files into `dir` (the
    /// closure of `report_with`) and answer on `reply`; then wait for the next command.
    Save {
        dir: PathBuf,
        reply: Sender<Result<(), String>>,
    },
}

/// What the function's thread tells the runner.
enum Event<M> {
    /// A `report`, with the state passed to `checkpoint` since the previous one; `files`
    /// when it was `report_with`, which writes files on demand.
    Report { metrics: M, checkpoint: Option<serde_json::Value>, files: bool },
    /// The function returned (or panicked); a checkpoint made after the last report comes
    /// along.
    Done { result: TrainResult<()>, checkpoint: Option<serde_json::Value> },
}

/// The handle a function trainable reports through.
///
/// ```
/// use tune_runtime::{Metrics, Session, TrainResult};
/// # #[derive(Metrics, Debug, Clone)] struct LossMetrics { loss: f64 }
/// # #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)] struct Cfg;
/// fn train(_config: &Cfg, session: &mut Session<LossMetrics>) -> TrainResult<()> {
///     // Continue from a checkpoint when the trial was restored.
///     let mut loss: f64 = session.restored_state()?.unwrap_or(1.0);
///     loop {
///         loss *= 0.9;
///         session.checkpoint(&loss)?;
///         session.report(LossMetrics { loss })?; // `Err(Stopped)` ends the loop
///     }
/// }
/// ```
pub struct Session<M> {
    name: &'static str,
    ctx: TrialContext,
    iteration: u64,
    restored: Option<serde_json::Value>,
    restored_dir: Option<PathBuf>,
    pending_checkpoint: Option<serde_json::Value>,
    stopped: bool,
    events: Sender<Event<M>>,
    commands: Receiver<Command>,
}

impl<M: Metrics> fmt::Debug for Session<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("trainable", &self.name)
            .field("trial_id", &self.ctx.trial_id)
            .field("iteration", &self.iteration)
            .field("restored", &self.restored.is_some())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl<M: Metrics> Session<M> {
    /// The trial's context.
    pub fn context(&self) -> &TrialContext {
        &self.ctx
    }

    /// The number of results reported so far, counting those before the checkpoint this
    /// run was restored from.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The trial's directory, when results are written to disk.
    pub fn trial_dir(&self) -> Option<&Path> {
        self.ctx.trial_dir.as_deref()
    }

    /// The state passed to [`Session::checkpoint`] by the run this trial was restored from,
    /// or `None` on a fresh start.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Deserialize`] when the checkpoint does not hold a `T`.
    pub fn restored_state<T: DeserializeOwned>(&self) -> Result<Option<T>, CheckpointError> {
        match &self.restored {
            None => Ok(None),
            Some(value) => T::deserialize(value)
                .map(Some)
                .map_err(|source| CheckpointError::Deserialize { trainable: self.name, source }),
        }
    }

    /// The files that the `report_with` closure wrote into the checkpoint this run was
    /// restored from, or `None` on a fresh start (or when that checkpoint has no files).
    /// Paths inside are as the closure wrote them, relative to this directory; read them
    /// before the first report (the directory is the trial's private copy, removed when
    /// the trial's instance is dropped).
    pub fn restored_dir(&self) -> Option<&Path> {
        self.restored_dir.as_deref()
    }

    /// Attaches `state` to the next [`Session::report`]: when the runner saves this trial
    /// after that report, the checkpoint holds `state`, and a restored run reads it back with
    /// [`Session::restored_state`]. The state is serialized right away.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Serialize`] when `state` cannot be serialized to JSON.
    pub fn checkpoint<S: Serialize + ?Sized>(&mut self, state: &S) -> Result<(), CheckpointError> {
        let value = serde_json::to_value(state)
            .map_err(|source| CheckpointError::Serialize { trainable: self.name, source })?;
        self.pending_checkpoint = Some(value);
        Ok(())
    }

    /// Reports the metrics of one iteration and waits until the runner asks for the next.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the runner stops the trial (a scheduler decision, a stop criterion,
    /// the end of the experiment): return it with `?`. Every later call returns it too.
    pub fn report(&mut self, metrics: M) -> Result<(), Stopped> {
        self.report_inner(metrics, None)
    }

    /// Reports like [`Session::report`], with a checkpoint written only if the runner
    /// keeps one at this report (`checkpoint_freq`, a scheduler's pause or exploit, the
    /// end of the trial): then `save` is called, on this thread while `report_with`
    /// waits, with the checkpoint directory to write files into (model weights written by
    /// a framework; paths relative to it; not `state.json`, `state.safetensors` or names
    /// starting with `.tune`). At every other report nothing is serialized or written, so
    /// call it at every report. A restored run finds the files in
    /// [`Session::restored_dir`]. The state passed to [`Session::checkpoint`] before this
    /// report, if any, is part of the same checkpoint.
    ///
    /// # Errors
    ///
    /// [`Stopped`] when the runner stops the trial, as [`Session::report`]. An error (or
    /// panic) of `save` fails the checkpoint, and the runner ends the trial in ERROR.
    pub fn report_with<F>(&mut self, metrics: M, mut save: F) -> Result<(), Stopped>
    where
        F: FnMut(&Path) -> TrainResult<()>,
    {
        self.report_inner(metrics, Some(&mut save))
    }

    /// Moves the session out, leaving one that reports nowhere (stopped, no channels) in
    /// its place: for the burn integration, whose early-stopping hook must own what it
    /// reports through. Put the returned session back when done.
    #[cfg(feature = "burn")]
    pub(crate) fn lend(&mut self) -> Session<M> {
        let (events, _) = mpsc::channel();
        let (_, commands) = mpsc::channel();
        let placeholder = Session {
            name: self.name,
            ctx: self.ctx.clone(),
            iteration: self.iteration,
            restored: None,
            restored_dir: None,
            pending_checkpoint: None,
            stopped: true,
            events,
            commands,
        };
        std::mem::replace(self, placeholder)
    }

    fn report_inner(&mut self, metrics: M, mut save: Option<SaveFiles<'_>>) -> Result<(), Stopped> {
        if self.stopped {
            return Err(Stopped);
        }
        let checkpoint = self.pending_checkpoint.take();
        let files = save.is_some();
        if self.events.send(Event::Report { metrics, checkpoint, files }).is_err() {
            self.stopped = true;
            return Err(Stopped);
        }
        self.iteration += 1;
        loop {
            match self.commands.recv() {
                Ok(Command::Continue) => return Ok(()),
                Ok(Command::Save { dir, reply }) => {
                    let result = match save.as_mut() {
                        Some(save) => match catch_unwind(AssertUnwindSafe(|| save(&dir))) {
                            Ok(result) => result.map_err(|e| e.to_string()),
                            Err(p) => Err(format!(
                                "the checkpoint closure of `{}` panicked: {}",
                                self.name,
                                panic_message(p.as_ref())
                            )),
                        },
                        None => Err("this report has no files to checkpoint".to_owned()),
                    };
                    let _ = reply.send(result);
                }
                // A dropped runner is a stop too: never leave the thread blocked.
                Ok(Command::Stop) | Err(_) => {
                    self.stopped = true;
                    return Err(Stopped);
                }
            }
        }
    }
}

/// The checkpoint format of a function trainable: the state of its latest
/// `session.checkpoint` and the number of reports made when that state was reported.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
struct FunctionCheckpoint {
    iteration: u64,
    state: serde_json::Value,
    /// Whether the checkpoint has files written by the `report_with` closure (the state
    /// is then `null` unless `checkpoint` was called before that report).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    files: bool,
}

enum RunState<M> {
    /// Set up, not started: the first `step` starts the function.
    NotStarted,
    Running {
        commands: Sender<Command>,
        events: Receiver<Event<M>>,
        handle: Option<JoinHandle<()>>,
    },
    /// The function returned, failed, or was stopped.
    Done,
}

/// Runs a training function on a thread of its own and steps it one report at a time.
///
/// Generated by `#[trainable]` on a function; the generated struct forwards `setup`, `step`,
/// `cleanup`, `save_state` and `load_state` here.
pub struct FunctionRunner<C, M> {
    name: &'static str,
    func: TrainFn<C, M>,
    config: C,
    ctx: TrialContext,
    state: RunState<M>,
    /// Reports received so far (including those before a restored checkpoint).
    iteration: u64,
    /// The checkpoint attached to the latest report that carried one.
    checkpoint: Option<FunctionCheckpoint>,
    /// The private copy of the restored checkpoint's files (`Session::restored_dir`).
    restored_files: Option<tempfile::TempDir>,
}

impl<C, M> fmt::Debug for FunctionRunner<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            RunState::NotStarted => "not started",
            RunState::Running { .. } => "running",
            RunState::Done => "done",
        };
        f.debug_struct("FunctionRunner")
            .field("trainable", &self.name)
            .field("trial_id", &self.ctx.trial_id)
            .field("state", &state)
            .field("iteration", &self.iteration)
            .field("has_checkpoint", &self.checkpoint.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Space, M: Metrics> FunctionRunner<C, M> {
    /// A runner for `func` with `config`; the function starts at the first [`Self::step`].
    pub fn new(name: &'static str, func: TrainFn<C, M>, config: &C, ctx: &TrialContext) -> Self {
        Self {
            name,
            func,
            config: config.clone(),
            ctx: ctx.clone(),
            state: RunState::NotStarted,
            iteration: 0,
            checkpoint: None,
            restored_files: None,
        }
    }

    /// Number of reports received so far.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The iteration of the latest checkpoint (made by the function or loaded).
    pub fn state_iteration(&self) -> Option<u64> {
        self.checkpoint.as_ref().map(|c| c.iteration)
    }

    /// Whether the function has returned, failed or been stopped.
    pub fn is_done(&self) -> bool {
        matches!(self.state, RunState::Done)
    }

    fn start(&mut self) -> (Sender<Command>, Receiver<Event<M>>, Option<JoinHandle<()>>) {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let session = Session {
            name: self.name,
            ctx: self.ctx.clone(),
            iteration: self.iteration,
            // A checkpoint of files alone has no state.
            restored: self
                .checkpoint
                .as_ref()
                .filter(|c| !(c.files && c.state.is_null()))
                .map(|c| c.state.clone()),
            restored_dir: self.restored_files.as_ref().map(|d| d.path().to_path_buf()),
            pending_checkpoint: None,
            stopped: false,
            events: event_tx,
            commands: command_rx,
        };
        let func = self.func;
        let config = self.config.clone();
        let name = self.name;
        // The function runs within the trial's CPU budget, like a class trainable's steps.
        let budget = crate::runner::threads::current_budget();
        let thread = std::thread::Builder::new()
            // A NUL in a thread name panics in `spawn`; trial ids come from users.
            .name(format!("tune-{}-{}", self.name, self.ctx.trial_id).replace('\0', ""))
            .spawn(move || {
                crate::runner::threads::run_within(budget, || {
                    run_function(name, func, config, session)
                })
            });
        let handle = match thread {
            Ok(handle) => Some(handle),
            Err(e) => {
                // No thread: report the failure through the channel so `step` returns it.
                let (tx, rx) = mpsc::channel();
                let message = format!("could not start a thread for `{name}`: {e}");
                let _ = tx
                    .send(Event::Done { result: Err(TrainError::msg(message)), checkpoint: None });
                return (command_tx, rx, None);
            }
        };
        (command_tx, event_rx, handle)
    }

    /// Lets the function run until its next report and returns those metrics.
    ///
    /// # Errors
    ///
    /// [`Finished`] once the function has returned `Ok(())` (see
    /// [`TrainError::is_finished`]); the function's error, or its panic message, when it
    /// fails.
    pub fn step(&mut self) -> TrainResult<M> {
        let state = std::mem::replace(&mut self.state, RunState::Done);
        let (commands, events, handle) = match state {
            RunState::Done => return Err(Finished.into()),
            RunState::NotStarted => self.start(),
            RunState::Running { commands, events, handle } => {
                if commands.send(Command::Continue).is_err() {
                    // The thread is gone without a word: it can only have been killed.
                    join(handle);
                    return Err(TrainError::msg(format!(
                        "the thread of `{}` ended without reporting",
                        self.name
                    )));
                }
                (commands, events, handle)
            }
        };
        match events.recv() {
            Ok(Event::Report { metrics, checkpoint, files }) => {
                self.iteration += 1;
                let iteration = self.iteration;
                match (checkpoint, files) {
                    (Some(state), files) => {
                        self.checkpoint = Some(FunctionCheckpoint { iteration, state, files });
                    }
                    (None, true) => {
                        let state = serde_json::Value::Null;
                        self.checkpoint = Some(FunctionCheckpoint { iteration, state, files });
                    }
                    // Files can only be written at their own report: a later plain report
                    // leaves nothing to save.
                    (None, false) => {
                        if self.checkpoint.as_ref().is_some_and(|c| c.files) {
                            self.checkpoint = None;
                        }
                    }
                }
                self.state = RunState::Running { commands, events, handle };
                Ok(metrics)
            }
            Ok(Event::Done { result, checkpoint }) => {
                join(handle);
                if let Some(state) = checkpoint {
                    let iteration = self.iteration;
                    self.checkpoint = Some(FunctionCheckpoint { iteration, state, files: false });
                }
                match result {
                    Ok(()) => Err(Finished.into()),
                    Err(e) if e.is_stop() => Err(Finished.into()),
                    Err(e) => Err(e),
                }
            }
            Err(_) => {
                join(handle);
                Err(TrainError::msg(format!(
                    "the thread of `{}` ended without reporting",
                    self.name
                )))
            }
        }
    }

    /// Stops the function: its pending [`Session::report`] returns [`Stopped`]. Waits up to
    /// `grace` for the function to return and says whether it did. A function that does
    /// not return in time is left to finish on its own; it never blocks on the runner again.
    pub fn stop(&mut self, grace: Duration) -> bool {
        match std::mem::replace(&mut self.state, RunState::Done) {
            RunState::NotStarted | RunState::Done => true,
            RunState::Running { commands, events, handle } => {
                let _ = commands.send(Command::Stop);
                drop(commands);
                let deadline = std::time::Instant::now() + grace;
                loop {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match events.recv_timeout(left) {
                        // A function that ignores the stop and reports again gets `Stopped`
                        // again without blocking; keep waiting for it to return.
                        Ok(Event::Report { .. }) => continue,
                        Ok(Event::Done { .. }) | Err(RecvTimeoutError::Disconnected) => {
                            join(handle);
                            return true;
                        }
                        Err(RecvTimeoutError::Timeout) => return false,
                    }
                }
            }
        }
    }

    /// Stops the function and waits (up to 10 seconds) for it to return.
    pub fn cleanup(&mut self) {
        self.stop(CLEANUP_GRACE);
    }

    /// The state of the latest `session.checkpoint` and the iteration it was reported at.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::NoCheckpoint`] when the function has not checkpointed yet.
    pub fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
        let checkpoint = self
            .checkpoint
            .as_ref()
            .ok_or(CheckpointError::NoCheckpoint { trainable: self.name })?;
        serde_json::to_vec(checkpoint)
            .map_err(|source| CheckpointError::Serialize { trainable: self.name, source })
    }

    /// Loads a checkpoint made by [`Self::save_state`]: the next start of the function sees
    /// its state through [`Session::restored_state`] and counts iterations from it. A
    /// function already running is stopped first and starts again at the next step.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::Deserialize`] when the bytes are not such a checkpoint.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let checkpoint: FunctionCheckpoint = serde_json::from_slice(bytes)
            .map_err(|source| CheckpointError::Deserialize { trainable: self.name, source })?;
        self.stop(CLEANUP_GRACE);
        self.iteration = checkpoint.iteration;
        self.checkpoint = Some(checkpoint);
        self.restored_files = None;
        self.state = RunState::NotStarted;
        Ok(())
    }

    /// Writes the files of the latest checkpoint into `dir`: the `report_with` closure of
    /// the report the function waits in runs on its thread. Nothing when the checkpoint
    /// has no files.
    ///
    /// # Errors
    ///
    /// When the closure fails or panics, or when the function is no longer waiting in the
    /// report the checkpoint belongs to.
    pub fn save_files(&self, dir: &Path) -> TrainResult<()> {
        let Some(checkpoint) = self.checkpoint.as_ref().filter(|c| c.files) else {
            return Ok(());
        };
        let gone = || {
            TrainError::msg(format!(
                "`{}` cannot write the files of its checkpoint at iteration {}: the function \
                 is no longer waiting in that `report_with`",
                self.name, checkpoint.iteration
            ))
        };
        let RunState::Running { commands, .. } = &self.state else { return Err(gone()) };
        if checkpoint.iteration != self.iteration {
            return Err(gone());
        }
        let (reply, answer) = mpsc::channel();
        commands.send(Command::Save { dir: dir.to_path_buf(), reply }).map_err(|_| gone())?;
        match answer.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(TrainError::msg(message)),
            Err(_) => Err(gone()),
        }
    }

    /// Keeps a private copy of the files of the checkpoint at `dir` (hard links where the
    /// file system allows) for [`Session::restored_dir`] when the function starts again.
    ///
    /// # Errors
    ///
    /// When the files cannot be copied.
    pub fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        self.restored_files = None;
        if !self.checkpoint.as_ref().is_some_and(|c| c.files) {
            return Ok(());
        }
        let copy = tempfile::Builder::new().prefix(".tune-restored-").tempdir()?;
        copy_files(dir, copy.path(), true)?;
        self.restored_files = Some(copy);
        Ok(())
    }
}

/// Copies the user's files of a checkpoint directory (not the runner's own) into `to`.
fn copy_files(from: &Path, to: &Path, top: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let reserved = name.to_string_lossy().starts_with(".tune")
            || name == crate::checkpoint::STATE_FILE
            || name == crate::tensors::TENSORS_FILE;
        if top && reserved {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_files(&src, &dst, false)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

impl<C, M> Drop for FunctionRunner<C, M> {
    fn drop(&mut self) {
        // Unblock the thread without waiting for it: its `report` returns `Stopped`.
        if let RunState::Running { commands, .. } = &self.state {
            let _ = commands.send(Command::Stop);
        }
    }
}

fn run_function<C, M: Metrics>(
    name: &'static str,
    func: TrainFn<C, M>,
    config: C,
    mut session: Session<M>,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| func(&config, &mut session)));
    let result = match outcome {
        Ok(result) => result,
        Err(payload) => {
            Err(TrainError::msg(format!("`{name}` panicked: {}", panic_message(payload.as_ref()))))
        }
    };
    let checkpoint = session.pending_checkpoint.take();
    let _ = session.events.send(Event::Done { result, checkpoint });
}

/// The message of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Implemented by the struct `#[trainable]` generates for a function: gives the checks
/// access to the runner (to stop it and to see whether it returned).
#[doc(hidden)]
pub trait FunctionTrainable: Trainable {
    /// The runner inside the generated struct.
    fn runner(&mut self) -> &mut FunctionRunner<Self::Config, Self::Metrics>;
}

fn join(handle: Option<JoinHandle<()>>) {
    // The thread catches the function's panics, so joining cannot fail in practice.
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::check::tests::{Cfg, Loss};
    use std::time::Instant;

    fn runner(func: TrainFn<Cfg, Loss>) -> FunctionRunner<Cfg, Loss> {
        FunctionRunner::new("f", func, &Cfg { start: 2 }, &TrialContext::detached("t", 0))
    }

    fn count_to_start(config: &Cfg, session: &mut Session<Loss>) -> TrainResult<()> {
        let mut count: u64 = session.restored_state()?.unwrap_or(0);
        while count < config.start {
            count += 1;
            session.checkpoint(&count)?;
            session.report(Loss { loss: 0.0, count })?;
        }
        Ok(())
    }

    #[test]
    fn the_function_starts_lazily_and_finishes() {
        let mut r = runner(count_to_start);
        assert!(!r.is_done());
        assert_eq!(r.step().unwrap().count, 1);
        assert_eq!(r.step().unwrap().count, 2);
        assert!(r.step().unwrap_err().is_finished());
        assert!(r.is_done());
        assert_eq!(r.iteration(), 2);
        assert_eq!(r.state_iteration(), Some(2));
    }

    #[test]
    fn load_state_restarts_a_running_function_from_the_checkpoint() {
        let mut r = runner(count_to_start);
        r.step().unwrap();
        let bytes = r.save_state().unwrap();
        r.step().unwrap();
        r.load_state(&bytes).unwrap();
        assert_eq!(r.iteration(), 1);
        assert_eq!(r.step().unwrap().count, 2);
        assert!(r.step().unwrap_err().is_finished());
        let err = r.load_state(b"[]").unwrap_err();
        assert!(err.to_string().starts_with("could not restore `f`"), "{err}");
    }

    /// Reports with files at odd counts, plainly at even ones; the files hold the count.
    fn files_at_odd_counts(_: &Cfg, session: &mut Session<Loss>) -> TrainResult<()> {
        let mut count: u64 = match session.restored_dir() {
            Some(dir) => std::fs::read_to_string(dir.join("sub/count"))?.parse()?,
            None => 0,
        };
        loop {
            count += 1;
            if count % 2 == 1 {
                session.report_with(Loss { loss: 0.0, count }, |dir| {
                    std::fs::create_dir_all(dir.join("sub"))?;
                    std::fs::write(dir.join("sub/count"), count.to_string())?;
                    Ok(())
                })?;
            } else {
                session.report(Loss { loss: 0.0, count })?;
            }
        }
    }

    #[test]
    fn files_are_written_on_demand_at_their_report_and_read_back() {
        let mut r = runner(files_at_odd_counts);
        assert_eq!(r.step().unwrap().count, 1);
        let dir = tempfile::tempdir().unwrap();
        let bytes = r.save_state().unwrap();
        r.save_files(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("sub/count")).unwrap(), "1");
        // A later plain report leaves nothing to save.
        assert_eq!(r.step().unwrap().count, 2);
        assert!(matches!(r.save_state(), Err(CheckpointError::NoCheckpoint { .. })));
        // Restored: the function starts again from the files' count.
        r.load_state(&bytes).unwrap();
        r.restore_files(dir.path()).unwrap();
        assert_eq!(r.iteration(), 1);
        assert_eq!(r.step().unwrap().count, 2);
        assert_eq!(r.step().unwrap().count, 3);
        r.cleanup();
    }

    #[test]
    fn stop_gives_up_on_a_function_that_ignores_it() {
        fn stubborn(_: &Cfg, session: &mut Session<Loss>) -> TrainResult<()> {
            let _ = session.report(Loss { loss: 0.0, count: 1 });
            std::thread::sleep(Duration::from_millis(400));
            Ok(())
        }
        let mut r = runner(stubborn);
        r.step().unwrap();
        let start = Instant::now();
        assert!(!r.stop(Duration::from_millis(50)));
        assert!(start.elapsed() < Duration::from_millis(300));
        assert!(r.step().unwrap_err().is_finished());
    }

    #[test]
    fn panics_keep_their_message() {
        fn boom(_: &Cfg, _: &mut Session<Loss>) -> TrainResult<()> {
            panic!("{} went wrong", "something")
        }
        let err = runner(boom).step().unwrap_err();
        assert_eq!(err.to_string(), "`f` panicked: something went wrong");
        assert!(!err.is_finished());
    }
}
