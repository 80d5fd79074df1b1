//! Process isolation (`Tuner::isolate_trials`): every trial runs in a child process, the
//! program itself re-executed as a worker, so that a trainable that aborts, segfaults,
//! calls `exit` or is killed by the OOM killer ends only its own trial.
//!
//! The parent spawns `current_exe()` with the same arguments and [`WORKER_ENV`] set to
//! `<trainable>:<address>:<token>`. The child runs the program's `main` until it reaches
//! `Tuner::<T>::run()` for the same trainable, which connects back over loopback TCP,
//! proves the token and serves requests for one trial, then exits; it never returns to
//! `main`. On the parent side the trial is an [`Isolated<T>`], a [`Trainable`] whose
//! every method is a request to the child, so the driver, the checkpoint writing and the
//! journal are the same as in process. Messages are JSON lines (no code runs on load),
//! each at most [`MAX_MESSAGE_BYTES`].

use std::io::{self, BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{CheckpointError, TrainError, TrainResult};
use crate::metrics::Metrics;
use crate::session::panic_message;
use crate::space::Space;
use crate::trainable::{
    Checkpointable, Resources, SharedData, Trainable, TrainableSpec, TrialContext,
};
use crate::tuner::RunError;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Set in a worker process's environment.
pub const WORKER_ENV: &str = "TUNE_WORKER";

/// Longest message accepted on either side (256 MiB: a checkpoint state travels in one).
const MAX_MESSAGE_BYTES: u64 = 256 << 20;

/// How long a worker may take to start and connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Process ids of the live worker processes, by trial id: the driver kills the one of a
/// trial whose step it gives up on (`Tuner::step_timeout`, Ctrl-C's grace period).
fn workers() -> &'static Mutex<HashMap<String, u32>> {
    static WORKERS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    WORKERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Kills the worker process of `trial_id`, if it has one; its pending request then fails.
pub(crate) fn kill_worker_of(trial_id: &str) {
    let pid = workers().lock().ok().and_then(|w| w.get(trial_id).copied());
    if let Some(pid) = pid {
        // No signal API without `unsafe`: the `kill` command does it.
        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
}

/// How long a worker process may stay stopped (SIGSTOP, a debugger) while the driver
/// waits for it before it is killed and its trial fails, unless [`STOPPED_LIMIT_ENV`]
/// says otherwise. Stopping the whole job (Ctrl-Z, a suspended batch job) stops the
/// driver too, which then does not count.
const STOPPED_LIMIT: Duration = Duration::from_secs(30);

/// Overrides [`STOPPED_LIMIT`]: seconds (`0.5`, `600`), or `off` never to kill a stopped
/// worker (to debug one). Read once per process.
pub(crate) const STOPPED_LIMIT_ENV: &str = "TUNE_WORKER_STOPPED_LIMIT";

/// The stopped limit in force (`None`: never), or why [`STOPPED_LIMIT_ENV`] is unusable.
pub(crate) fn stopped_limit() -> Result<Option<Duration>, String> {
    static LIMIT: OnceLock<Result<Option<Duration>, String>> = OnceLock::new();
    LIMIT.get_or_init(|| parse_stopped_limit(std::env::var(STOPPED_LIMIT_ENV).ok())).clone()
}

fn parse_stopped_limit(value: Option<String>) -> Result<Option<Duration>, String> {
    let Some(value) = value else { return Ok(Some(STOPPED_LIMIT)) };
    if value.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(Some)
        .ok_or_else(|| {
            format!(
                "`{STOPPED_LIMIT_ENV}` is `{value}`: give how many seconds a stopped worker \
                 process may stay stopped before it is killed (e.g. `30` or `0.5`), or `off` \
                 never to kill one"
            )
        })
}

/// How often a waiting driver checks that its worker process is alive and running.
const LIVENESS_POLL: Duration = Duration::from_millis(500);

/// Whether process `pid` is stopped (state `T` or `t` in `/proc/<pid>/stat`).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't'])))
        .unwrap_or(false)
}

/// Whether this process is a trial worker started by `Tuner::isolate_trials` (code in
/// `main` before `Tuner::run` can skip expensive work with it).
pub fn is_worker() -> bool {
    std::env::var_os(WORKER_ENV).is_some()
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Setup {
        config: serde_json::Value,
        trial_id: String,
        trial_dir: Option<PathBuf>,
        gpu_ids: Vec<usize>,
        resources: Resources,
        seed: u64,
    },
    Step,
    SaveState,
    LoadState {
        bytes: Bytes,
    },
    StateIteration,
    SaveFiles {
        dir: PathBuf,
    },
    RestoreFiles {
        dir: PathBuf,
    },
    SaveTensors {
        dir: PathBuf,
    },
    RestoreTensors {
        dir: PathBuf,
    },
    Cleanup,
}

/// Checkpoint bytes: text when they are UTF-8 (generated states are JSON).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Bytes {
    Text(String),
    Raw(Vec<u8>),
}

impl Bytes {
    fn new(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(s) => Bytes::Text(s),
            Err(e) => Bytes::Raw(e.into_bytes()),
        }
    }
    fn into_vec(self) -> Vec<u8> {
        match self {
            Bytes::Text(s) => s.into_bytes(),
            Bytes::Raw(v) => v,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ok,
    Values(Vec<f64>),
    State(Bytes),
    Iteration(Option<u64>),
    /// The call failed; `finished`/`stop` carry `TrainError::is_finished`/`is_stop`.
    Err {
        message: String,
        finished: bool,
        stop: bool,
    },
}

fn read_message<T: serde::de::DeserializeOwned>(r: &mut impl BufRead) -> io::Result<T> {
    let mut line = Vec::new();
    let n = io::Read::take(&mut *r, MAX_MESSAGE_BYTES + 1).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the other side hung up"));
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "message cut short or too long"));
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// [`read_message`] from a worker process `pid` on a socket with a read timeout: while
/// no answer comes, checks that the process is alive and running. A process that exited
/// is an error at once; one stopped (SIGSTOP) for [`STOPPED_LIMIT`] is killed.
fn read_live<T: serde::de::DeserializeOwned>(r: &mut impl BufRead, pid: u32) -> io::Result<T> {
    let mut line = Vec::new();
    let mut stopped_since: Option<Instant> = None;
    let limit = stopped_limit().unwrap_or(Some(STOPPED_LIMIT));
    loop {
        let left = (MAX_MESSAGE_BYTES + 1).saturating_sub(line.len() as u64);
        match io::Read::take(&mut *r, left).read_until(b'\n', &mut line) {
            Ok(0) if line.is_empty() => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the other side hung up"));
            }
            Ok(_) if line.last() == Some(&b'\n') => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "message cut short or too long",
                ));
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(io::Error::other("the worker process is gone"));
                }
                if let (true, Some(limit)) = (is_stopped(pid), limit) {
                    let since = *stopped_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= limit {
                        let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
                        return Err(io::Error::other(format!(
                            "it was stopped (SIGSTOP) for {:.1} s and was killed; \
                             `{STOPPED_LIMIT_ENV}` sets how long a worker may stay stopped",
                            limit.as_secs_f64()
                        )));
                    }
                } else {
                    stopped_since = None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    serde_json::from_slice(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn write_message(w: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes)?;
    w.flush()
}

/// A secret the worker sends back first, so that no other local process can pose as it.
fn token() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let a = super::entropy_seed();
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&super::splitmix64(a).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A trial running in a child process, seen by the driver as a trainable.
pub(crate) struct Isolated<T> {
    child: Child,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    trial_id: String,
    /// Why the worker is gone, once it is.
    dead: Option<String>,
    _t: PhantomData<fn() -> T>,
}

impl<T: Trainable> TrainableSpec for Isolated<T> {
    type Config = T::Config;
    type Metrics = T::Metrics;
    type Data = T::Data;
    const NAME: &'static str = T::NAME;

    fn resources(config: &Self::Config) -> Resources {
        T::resources(config)
    }

    fn static_resources() -> Option<Resources> {
        T::static_resources()
    }
}

fn describe_exit(child: &mut Child) -> String {
    // The worker may still be writing its last words: give it a moment to end.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(sig) = status.signal() {
                        let name = match sig {
                            4 => " (SIGILL)",
                            6 => " (SIGABRT: an abort)",
                            7 => " (SIGBUS)",
                            9 => " (SIGKILL: killed, e.g. by the OOM killer)",
                            11 => " (SIGSEGV: a segmentation fault)",
                            15 => " (SIGTERM)",
                            _ => "",
                        };
                        return format!("killed by signal {sig}{name}");
                    }
                }
                return format!("exited with {status}");
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return "stopped answering (killed)".to_string();
            }
            Err(e) => return format!("cannot be waited for: {e}"),
        }
    }
}

impl<T: Trainable> Isolated<T> {
    fn call(&mut self, request: &Request) -> TrainResult<Reply> {
        if let Some(why) = &self.dead {
            return Err(TrainError::msg(why.clone()));
        }
        let result = write_message(&mut self.writer, request)
            .and_then(|()| read_live::<Reply>(&mut self.reader, self.child.id()));
        match result {
            Ok(Reply::Err { message, finished, stop }) => Err(if finished {
                crate::session::Finished.into()
            } else if stop {
                crate::session::Stopped.into()
            } else {
                TrainError::msg(message)
            }),
            Ok(reply) => Ok(reply),
            Err(e) => {
                let why = format!(
                    "the worker process of trial {} {} ({e})",
                    self.trial_id,
                    describe_exit(&mut self.child)
                );
                self.dead = Some(why.clone());
                Err(TrainError::msg(why))
            }
        }
    }

    fn spawn(config: &T::Config, ctx: &TrialContext) -> TrainResult<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let token = token();
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args(std::env::args_os().skip(1))
            .env(WORKER_ENV, format!("{}:{addr}:{token}", T::NAME));
        for (key, value) in child_env(ctx, super::threads::current_budget()) {
            command.env(key, value);
        }
        // Its stdout and stderr are the trial's files, appended to by every process the
        // trial has (a retry, a resume), when the output is captured.
        if let (true, Some(dir)) = (super::capture::child_files(), ctx.trial_dir.as_deref()) {
            for (name, stdout) in
                [(super::capture::STDOUT_FILE, true), (super::capture::STDERR_FILE, false)]
            {
                let file = super::capture::append(dir, name).map_err(|e| {
                    TrainError::msg(format!(
                        "cannot open `{}` for the trial's output: {e}",
                        dir.join(name).display()
                    ))
                })?;
                if stdout {
                    command.stdout(file);
                } else {
                    command.stderr(file);
                }
            }
        }
        let mut child = command.spawn()?;
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    let mut reader = BufReader::new(stream.try_clone()?);
                    let mut line = String::new();
                    let ok = io::Read::take(&mut reader, 64).read_line(&mut line).is_ok()
                        && line.trim_end() == token;
                    if ok {
                        break stream;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(TrainError::msg(format!(
                            "the worker process exited ({status}) before it reached \
                             `Tuner::<{}>::run()`; with `isolate_trials(true)` the program's \
                             `main` must reach that call again in the worker",
                            T::NAME
                        )));
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(TrainError::msg("the worker process did not connect in 60 s"));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e.into()),
            }
        };
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(LIVENESS_POLL))?;
        if let Ok(mut w) = workers().lock() {
            w.insert(ctx.trial_id.clone(), child.id());
        }
        let mut inst = Isolated {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            child,
            trial_id: ctx.trial_id.clone(),
            dead: None,
            _t: PhantomData,
        };
        inst.call(&Request::Setup {
            config: config.to_json_value(),
            trial_id: ctx.trial_id.clone(),
            trial_dir: ctx.trial_dir.clone(),
            gpu_ids: ctx.gpu_ids.clone(),
            resources: ctx.resources.clone(),
            seed: ctx.seed,
        })?;
        Ok(inst)
    }
}

/// What a worker process's environment says about its trial's resources: the GPUs it was
/// granted (`CUDA_VISIBLE_DEVICES`, empty when none, so that it sees no other trial's
/// GPU), and with a CPU budget (`Tuner::cpu_budgets`) the threads that rayon's global pool
/// and OpenMP (BLAS libraries, many C++ backends) start.
fn child_env(ctx: &TrialContext, threads: Option<usize>) -> Vec<(&'static str, String)> {
    let gpus: Vec<String> = ctx.gpu_ids.iter().map(ToString::to_string).collect();
    let mut env = vec![("CUDA_VISIBLE_DEVICES", gpus.join(","))];
    if let Some(n) = threads {
        env.push(("RAYON_NUM_THREADS", n.to_string()));
        env.push(("OMP_NUM_THREADS", n.to_string()));
    }
    env
}

fn hook_err(e: TrainError) -> CheckpointError {
    CheckpointError::Hook { trainable: "worker", message: e.to_string() }
}

impl<T: Trainable> Checkpointable for Isolated<T> {
    const TENSORS: bool = T::TENSORS;

    // The worker writes and reads the binary state file itself: large state never travels
    // through the connection.
    fn save_tensors(&self, dir: &Path) -> Result<(), CheckpointError> {
        if !T::TENSORS {
            return Ok(());
        }
        let mut writer = self.writer.try_clone().map_err(|e| hook_err(e.into()))?;
        let mut reader = BufReader::new(self.writer.try_clone().map_err(|e| hook_err(e.into()))?);
        let reply = write_message(&mut writer, &Request::SaveTensors { dir: dir.to_path_buf() })
            .and_then(|()| read_live::<Reply>(&mut reader, self.child.id()))
            .map_err(|e| hook_err(e.into()))?;
        match reply {
            Reply::Err { message, .. } => Err(hook_err(TrainError::msg(message))),
            _ => Ok(()),
        }
    }

    fn restore_tensors(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        if !T::TENSORS {
            return Ok(());
        }
        self.call(&Request::RestoreTensors { dir: dir.to_path_buf() }).map(drop).map_err(hook_err)
    }

    fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
        // `save_state` takes `&self`; the connection needs `&mut`: use a clone of it.
        let mut writer = self.writer.try_clone().map_err(|e| hook_err(e.into()))?;
        let mut reader = BufReader::new(self.writer.try_clone().map_err(|e| hook_err(e.into()))?);
        let reply = write_message(&mut writer, &Request::SaveState)
            .and_then(|()| read_live::<Reply>(&mut reader, self.child.id()))
            .map_err(|e| hook_err(e.into()))?;
        match reply {
            Reply::State(bytes) => Ok(bytes.into_vec()),
            Reply::Err { message, .. } => Err(hook_err(TrainError::msg(message))),
            _ => Err(hook_err(TrainError::msg("unexpected reply from the worker"))),
        }
    }

    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        self.call(&Request::LoadState { bytes: Bytes::new(bytes.to_vec()) })
            .map(drop)
            .map_err(hook_err)
    }

    fn state_iteration(&self) -> Option<u64> {
        None
    }
}

impl<T: Trainable> Trainable for Isolated<T> {
    fn setup(config: &Self::Config, ctx: &TrialContext) -> TrainResult<Self> {
        Self::spawn(config, ctx)
    }

    fn step(&mut self) -> TrainResult<Self::Metrics> {
        match self.call(&Request::Step)? {
            Reply::Values(v) => <T::Metrics as Metrics>::from_values(&v).ok_or_else(|| {
                TrainError::msg(format!(
                    "the metrics `{}` cannot be rebuilt from the worker's values; derive \
                     `Metrics` (or implement `Metrics::from_values`) to use `isolate_trials`",
                    std::any::type_name::<T::Metrics>()
                ))
            }),
            _ => Err(TrainError::msg("unexpected reply from the worker")),
        }
    }

    fn cleanup(&mut self) {
        if self.dead.is_none() {
            let _ = self.call(&Request::Cleanup);
        }
        let _ = describe_exit(&mut self.child);
    }

    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        let mut writer = self.writer.try_clone()?;
        let mut reader = BufReader::new(self.writer.try_clone()?);
        write_message(&mut writer, &Request::SaveFiles { dir: dir.to_path_buf() })?;
        match read_live::<Reply>(&mut reader, self.child.id())? {
            Reply::Err { message, .. } => Err(TrainError::msg(message)),
            _ => Ok(()),
        }
    }

    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        self.call(&Request::RestoreFiles { dir: dir.to_path_buf() }).map(drop)
    }
}

impl<T> Drop for Isolated<T> {
    fn drop(&mut self) {
        if let Ok(mut w) = workers().lock() {
            if w.get(&self.trial_id) == Some(&self.child.id()) {
                w.remove(&self.trial_id);
            }
        }
        // Never leave a worker behind (a trial that errored, an interrupted run).
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn guard<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| format!("`{what}` panicked: {}", panic_message(&*p)))
}

fn err_reply(e: &TrainError) -> Reply {
    Reply::Err { message: e.to_string(), finished: e.is_finished(), stop: e.is_stop() }
}

fn msg_reply(message: String) -> Reply {
    Reply::Err { message, finished: false, stop: false }
}

/// In a worker process of trainable `T`: serves one trial, then exits the process.
/// Returns only when this process is not a worker for `T`.
/// `data` is what this process's `Tuner::with_data` shares: the worker's trials get it.
pub(crate) fn serve_if_worker<T: Trainable>(data: &SharedData) -> Result<(), RunError> {
    let Some(value) = std::env::var_os(WORKER_ENV) else { return Ok(()) };
    let value = value.to_string_lossy().into_owned();
    let mut parts = value.splitn(3, ':');
    let (name, host, rest) = (parts.next(), parts.next(), parts.next());
    let (Some(name), Some(host), Some(rest)) = (name, host, rest) else {
        return Err(RunError::InvalidOption(format!("malformed `{WORKER_ENV}`: `{value}`")));
    };
    if name != T::NAME {
        return Err(RunError::InvalidOption(format!(
            "this process is a trial worker for `{name}` but reached `Tuner::<{}>::run()` \
             first; skip other experiments when `tune_runtime::is_worker()` is true",
            T::NAME
        )));
    }
    let (port, token) = rest.split_once(':').unwrap_or((rest, ""));
    // A Ctrl-C in the terminal reaches the whole process group: the driver decides what
    // happens (a graceful stop ends this worker through `cleanup`), not the signal.
    let _ = ctrlc::set_handler(|| {});
    // Die with the driver: a worker stuck in a step must not outlive a killed parent.
    #[cfg(unix)]
    {
        let parent = std::os::unix::process::parent_id();
        let _ = std::thread::Builder::new().name("tune-worker-watchdog".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if std::os::unix::process::parent_id() != parent {
                    std::process::exit(1);
                }
            }
        });
    }
    let code = match serve::<T>(&format!("{host}:{port}"), token, data) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tune worker for `{}`: {e}", T::NAME);
            1
        }
    };
    std::process::exit(code)
}

fn serve<T: Trainable>(addr: &str, token: &str, data: &SharedData) -> io::Result<()> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(format!("{token}\n").as_bytes())?;
    writer.flush()?;
    let mut inst: Option<T> = None;
    loop {
        let request: Request = match read_message(&mut reader) {
            Ok(r) => r,
            // The parent is gone: nothing left to do.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let reply = match (request, inst.as_mut()) {
            (Request::Setup { config, trial_id, trial_dir, gpu_ids, resources, seed }, _) => {
                match T::Config::from_json_value(config) {
                    Err(e) => msg_reply(format!("the worker cannot read the config: {e}")),
                    Ok(config) => {
                        let data = data.clone();
                        let ctx =
                            TrialContext { trial_id, trial_dir, gpu_ids, resources, seed, data };
                        match guard("setup", || T::setup(&config, &ctx)) {
                            Ok(Ok(t)) => {
                                inst = Some(t);
                                Reply::Ok
                            }
                            Ok(Err(e)) => msg_reply(format!("`setup` failed: {e}")),
                            Err(m) => msg_reply(m),
                        }
                    }
                }
            }
            (Request::Cleanup, t) => {
                if let Some(t) = t {
                    let _ = guard("cleanup", || t.cleanup());
                }
                write_message(&mut writer, &Reply::Ok)?;
                break;
            }
            (_, None) => msg_reply("the worker has no trainable (setup failed)".into()),
            (Request::Step, Some(t)) => match guard("step", || t.step()) {
                Ok(Ok(m)) => {
                    let n = <T::Metrics as Metrics>::NAMES.len();
                    Reply::Values((0..n).map(|i| m.value(i)).collect())
                }
                Ok(Err(e)) => err_reply(&e),
                Err(m) => {
                    write_message(&mut writer, &msg_reply(m))?;
                    // Like in process: a panicked instance is not called again.
                    break;
                }
            },
            (Request::SaveState, Some(t)) => match guard("save", || t.save_state()) {
                Ok(Ok(bytes)) => Reply::State(Bytes::new(bytes)),
                Ok(Err(e)) => msg_reply(e.to_string()),
                Err(m) => msg_reply(m),
            },
            (Request::LoadState { bytes }, Some(t)) => {
                match guard("restore", || t.load_state(&bytes.into_vec())) {
                    Ok(Ok(())) => Reply::Ok,
                    Ok(Err(e)) => msg_reply(e.to_string()),
                    Err(m) => msg_reply(m),
                }
            }
            (Request::StateIteration, Some(t)) => Reply::Iteration(t.state_iteration()),
            (Request::SaveFiles { dir }, Some(t)) => match guard("save", || t.save_files(&dir)) {
                Ok(Ok(())) => Reply::Ok,
                Ok(Err(e)) => err_reply(&e),
                Err(m) => msg_reply(m),
            },
            (Request::SaveTensors { dir }, Some(t)) => {
                match guard("save", || t.save_tensors(&dir)) {
                    Ok(Ok(())) => Reply::Ok,
                    Ok(Err(e)) => msg_reply(e.to_string()),
                    Err(m) => msg_reply(m),
                }
            }
            (Request::RestoreTensors { dir }, Some(t)) => {
                match guard("restore", || t.restore_tensors(&dir)) {
                    Ok(Ok(())) => Reply::Ok,
                    Ok(Err(e)) => msg_reply(e.to_string()),
                    Err(m) => msg_reply(m),
                }
            }
            (Request::RestoreFiles { dir }, Some(t)) => {
                match guard("restore", || t.restore_files(&dir)) {
                    Ok(Ok(())) => Reply::Ok,
                    Ok(Err(e)) => err_reply(&e),
                    Err(m) => msg_reply(m),
                }
            }
        };
        write_message(&mut writer, &reply)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_stopped_limit_is_seconds_or_off_and_anything_else_says_what_to_write() {
        let parse = |v: &str| parse_stopped_limit(Some(v.to_string()));
        assert_eq!(parse_stopped_limit(None), Ok(Some(STOPPED_LIMIT)));
        assert_eq!(parse("0.5"), Ok(Some(Duration::from_millis(500))));
        assert_eq!(parse(" 600 "), Ok(Some(Duration::from_secs(600))));
        assert_eq!(parse("off"), Ok(None));
        assert_eq!(parse("OFF"), Ok(None));
        for bad in ["", "0", "-1", "soon", "NaN", "inf", "1e400", "30s"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(STOPPED_LIMIT_ENV) && e.contains("`off`"), "{bad}: {e}");
        }
    }
}
