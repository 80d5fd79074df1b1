//! Output capture (`Tuner::capture_output`): trials' standard output and error go to
//! `stdout` and `stderr` files in their trial directories, so that a `println!` in a
//! trainable does not tear the status table.
//!
//! * Isolated trials: the child process's stdout and stderr are the trial's files, opened
//!   for appending ([`set_child_files`], read by `isolation.rs` when it spawns a worker).
//! * In process (Unix): Rust has no stable per-thread capture, so during `run()` file
//!   descriptors 1 and 2 of the whole process are pipes ([`start`]); a reader thread per
//!   pipe writes what arrives to files, and the runner's own output (the status table,
//!   warnings) goes to the saved terminal descriptors ([`print_out`], [`print_err`],
//!   [`terminal_files`]). To tell whose bytes they are, each worker writes a marker into
//!   both pipes when a trial's task begins and when it ends ([`Tagger`]); a marker is one
//!   `write` of less than `PIPE_BUF` bytes, so it lands whole and in order with the other
//!   writes. Bytes that arrive while exactly one trial's task is open (by the markers seen
//!   so far in the stream) were written while no other trial's task had begun, so they go
//!   to that trial's files; all other bytes go to the experiment directory's files.

use std::cell::Cell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// A trial's (or the experiment's) captured standard output.
pub(crate) const STDOUT_FILE: &str = "stdout";
/// A trial's (or the experiment's) captured standard error.
pub(crate) const STDERR_FILE: &str = "stderr";

/// Opens `dir/name` for appending (created when missing): a retried or resumed trial
/// keeps what it wrote before.
pub(crate) fn append(dir: &Path, name: &str) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(dir.join(name))
}

thread_local! {
    /// Set on a worker thread for the task it runs: an isolated trial's process writes its
    /// output to its trial directory's files.
    static CHILD_FILES: Cell<bool> = const { Cell::new(false) };
}

/// Whether worker processes started on this thread (by the task it runs) write their
/// output to their trial's files.
pub(crate) fn set_child_files(yes: bool) {
    CHILD_FILES.with(|c| c.set(yes));
}

/// See [`set_child_files`].
pub(crate) fn child_files() -> bool {
    CHILD_FILES.with(Cell::get)
}

/// Prints a line of the runner's own (the status table, the summary) to the terminal's
/// stdout, past an active capture.
pub(crate) fn print_out(text: &str) {
    match imp::terminal() {
        Some(t) => {
            let _ = writeln!(&t.out, "{text}");
        }
        None => println!("{text}"),
    }
}

/// Prints a line of the runner's own (warnings) to the terminal's stderr, past an active
/// capture.
pub(crate) fn print_err(text: &str) {
    match imp::terminal() {
        Some(t) => {
            let _ = writeln!(&t.err, "{text}");
        }
        None => eprintln!("{text}"),
    }
}

/// Copies of the terminal's stdout and stderr that an active capture saved (for the
/// progress bar), or `None` when nothing is captured.
pub(crate) fn terminal_files() -> Option<(File, File)> {
    let t = imp::terminal()?;
    Some((t.out.try_clone().ok()?, t.err.try_clone().ok()?))
}

/// Ends an active capture at once (the second Ctrl-C, just before the process exits):
/// restores descriptors 1 and 2 and writes out what the pipes hold.
pub(crate) fn finish_now() {
    imp::finish_now();
}

/// The saved terminal descriptors of the active capture.
pub(crate) struct Terminal {
    out: File,
    err: File,
}

pub(crate) use imp::{Capture, NO_TRIAL, Tagger, start};

#[cfg(unix)]
mod imp {
    use std::collections::HashMap;
    use std::fs::File;
    use std::io::{self, Write};
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::thread::JoinHandle;

    use rustix::io::Errno;
    use rustix::pipe::{PipeFlags, pipe_with};

    use super::{STDERR_FILE, STDOUT_FILE, Terminal, append};

    /// The capture in progress in this process (one at a time: descriptors 1 and 2 are
    /// the process's).
    static CURRENT: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

    fn current() -> MutexGuard<'static, Option<Arc<Shared>>> {
        CURRENT.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn terminal() -> Option<Arc<Shared>> {
        current().clone()
    }

    /// `Shared` derefs to its terminal, for `print_out`.
    impl std::ops::Deref for Shared {
        type Target = Terminal;
        fn deref(&self) -> &Terminal {
            &self.terminal
        }
    }

    pub(crate) struct Shared {
        terminal: Terminal,
        live: Mutex<Option<Live>>,
        pipes: Arc<Pipes>,
        /// The first error writing a captured file.
        error: Arc<Mutex<Option<String>>>,
        token: [u8; 16],
    }

    struct Live {
        readers: Vec<JoinHandle<()>>,
    }

    /// The write ends of the two pipes (descriptors 1 and 2 are copies of them while the
    /// capture lasts).
    struct Pipes {
        out: OwnedFd,
        err: OwnedFd,
    }

    /// `0x00`, 16 bytes of token, the operation, the trial (`u32`, little endian).
    const MARK_LEN: usize = 1 + 16 + 1 + 4;
    const BEGIN: u8 = b'B';
    const END: u8 = b'E';
    const STOP: u8 = b'S';
    /// The trial of a task that has none (releasing a reused instance).
    pub(crate) const NO_TRIAL: u32 = u32::MAX;

    fn marker(token: &[u8; 16], op: u8, trial: u32) -> [u8; MARK_LEN] {
        let mut m = [0u8; MARK_LEN];
        m[1..17].copy_from_slice(token);
        m[17] = op;
        m[18..].copy_from_slice(&trial.to_le_bytes());
        m
    }

    /// Writes trial markers for the workers of one run.
    pub(crate) struct Tagger {
        token: [u8; 16],
        pipes: Arc<Pipes>,
        dirs: Arc<Mutex<HashMap<u32, PathBuf>>>,
    }

    impl Tagger {
        /// Where `trial`'s output goes (its directory).
        pub fn register(&self, trial: u32, dir: &Path) {
            let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
            dirs.entry(trial).or_insert_with(|| dir.to_path_buf());
        }

        /// Runs `f`, a task of `trial`, between its markers.
        pub fn around<R>(&self, trial: u32, f: impl FnOnce() -> R) -> R {
            self.mark(BEGIN, trial);
            // Also on a panic that escapes `f` (the worker catches trainable panics).
            struct End<'a>(&'a Tagger, u32);
            impl Drop for End<'_> {
                fn drop(&mut self) {
                    self.0.mark(END, self.1);
                }
            }
            let _end = End(self, trial);
            f()
        }

        fn mark(&self, op: u8, trial: u32) {
            let m = marker(&self.token, op, trial);
            // What std's stdout buffer holds (part of a line) was written before the
            // marker: out first, holding the lock so that no other line slips in between.
            {
                let stdout = io::stdout();
                let mut lock = stdout.lock();
                let _ = lock.flush();
                let _ = rustix::io::write(&self.pipes.out, &m);
            }
            // `eprintln!` may write a line in pieces, under std's lock: hold it too.
            let stderr = io::stderr();
            let _lock = stderr.lock();
            let _ = rustix::io::write(&self.pipes.err, &m);
        }
    }

    /// An active capture; dropping it ends the capture (descriptors restored, the pipes
    /// written out to the files), on every path out of `run()`.
    pub(crate) struct Capture {
        shared: Arc<Shared>,
        tagger: Arc<Tagger>,
    }

    impl Capture {
        pub fn tagger(&self) -> Arc<Tagger> {
            Arc::clone(&self.tagger)
        }

        /// Ends the capture; the first error writing a captured file, if any.
        pub fn finish(self) -> Option<String> {
            self.shared.finish();
            self.shared.error.lock().unwrap_or_else(PoisonError::into_inner).take()
        }
    }

    impl Drop for Capture {
        fn drop(&mut self) {
            self.shared.finish();
            let mut current = current();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &self.shared)) {
                *current = None;
            }
        }
    }

    impl Shared {
        fn finish(&self) {
            let Some(live) = self.live.lock().unwrap_or_else(PoisonError::into_inner).take() else {
                return;
            };
            {
                let stdout = io::stdout();
                let mut lock = stdout.lock();
                let _ = lock.flush();
                let _ = rustix::stdio::dup2_stdout(self.terminal.out.as_fd());
                let _ = io::stderr().flush();
                let _ = rustix::stdio::dup2_stderr(self.terminal.err.as_fd());
            }
            // Everything written through descriptors 1 and 2 is in the pipes before these.
            let stop = marker(&self.token, STOP, NO_TRIAL);
            let _ = rustix::io::write(&self.pipes.out, &stop);
            let _ = rustix::io::write(&self.pipes.err, &stop);
            for r in live.readers {
                let _ = r.join();
            }
        }
    }

    pub(super) fn finish_now() {
        let shared = current().clone();
        if let Some(shared) = shared {
            shared.finish();
        }
    }

    fn random_token() -> [u8; 16] {
        let mut bytes = [0u8; 16];
        let read = File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if read.is_err() {
            let a = super::super::entropy_seed();
            bytes[..8].copy_from_slice(&a.to_le_bytes());
            bytes[8..].copy_from_slice(&super::super::splitmix64(a).to_le_bytes());
        }
        bytes
    }

    /// Starts capturing descriptors 1 and 2 into files under `experiment_dir` (trials'
    /// directories as the workers' markers say). `Ok(None)`: another run in this process
    /// is capturing already.
    pub(crate) fn start(experiment_dir: &Path) -> io::Result<Option<Capture>> {
        let mut current = current();
        if current.is_some() {
            return Ok(None);
        }
        let dup = |fd: std::os::fd::BorrowedFd<'_>| -> io::Result<File> {
            Ok(File::from(rustix::io::fcntl_dupfd_cloexec(fd, 3)?))
        };
        let terminal =
            Terminal { out: dup(io::stdout().as_fd())?, err: dup(io::stderr().as_fd())? };
        let (out_r, out_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let (err_r, err_w) = pipe_with(PipeFlags::CLOEXEC)?;
        let token = random_token();
        let pipes = Arc::new(Pipes { out: out_w, err: err_w });
        let dirs = Arc::new(Mutex::new(HashMap::new()));
        let error = Arc::new(Mutex::new(None));
        let mut readers = Vec::new();
        for (fd, name) in [(out_r, STDOUT_FILE), (err_r, STDERR_FILE)] {
            let mut sinks = Sinks {
                name,
                experiment_dir: experiment_dir.to_path_buf(),
                dirs: Arc::clone(&dirs),
                experiment: None,
                trials: Vec::new(),
                error: Arc::clone(&error),
            };
            readers.push(
                std::thread::Builder::new()
                    .name(format!("tune-capture-{name}"))
                    .spawn(move || read_loop(&fd, &token, &mut sinks))?,
            );
        }
        let redirected = {
            let stdout = io::stdout();
            let mut lock = stdout.lock();
            let _ = lock.flush();
            let _ = io::stderr().flush();
            rustix::stdio::dup2_stdout(pipes.out.as_fd())
                .and_then(|()| rustix::stdio::dup2_stderr(pipes.err.as_fd()))
        };
        if let Err(e) = redirected {
            // Put back what was redirected; the readers see the pipes close and end.
            let _ = rustix::stdio::dup2_stdout(terminal.out.as_fd());
            let _ = rustix::stdio::dup2_stderr(terminal.err.as_fd());
            return Err(e.into());
        }
        let shared = Arc::new(Shared {
            terminal,
            live: Mutex::new(Some(Live { readers })),
            pipes: Arc::clone(&pipes),
            error,
            token,
        });
        *current = Some(Arc::clone(&shared));
        drop(current);
        Ok(Some(Capture { shared, tagger: Arc::new(Tagger { token, pipes, dirs }) }))
    }

    /// Where a reader writes: the experiment's file, and trials' files (a few kept open).
    struct Sinks {
        name: &'static str,
        experiment_dir: PathBuf,
        dirs: Arc<Mutex<HashMap<u32, PathBuf>>>,
        experiment: Option<File>,
        /// Recently used trials' files, most recent last.
        trials: Vec<(u32, File)>,
        error: Arc<Mutex<Option<String>>>,
    }

    /// Trials' files a reader keeps open.
    const OPEN_FILES: usize = 16;

    impl Sinks {
        /// Writes bytes that arrived while the trials in `open` had a task begun and not
        /// ended: to that trial's file when there is exactly one, else the experiment's.
        fn write(&mut self, open: &[u32], bytes: &[u8]) {
            if bytes.is_empty() {
                return;
            }
            let trial = match open.split_first() {
                Some((first, rest)) if *first != NO_TRIAL && rest.iter().all(|t| t == first) => {
                    Some(*first)
                }
                _ => None,
            };
            let result = match trial.and_then(|t| self.trial_file(t).transpose()) {
                Some(Ok(file)) => file.write_all(bytes),
                Some(Err(e)) => Err(e),
                None => self.experiment_file().and_then(|f| f.write_all(bytes)),
            };
            if let Err(e) = result {
                let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
                if error.is_none() {
                    *error = Some(format!(
                        "captured output could not be written to a `{}` file under `{}`: {e}",
                        self.name,
                        self.experiment_dir.display()
                    ));
                }
            }
        }

        fn experiment_file(&mut self) -> io::Result<&mut File> {
            if self.experiment.is_none() {
                self.experiment = Some(append(&self.experiment_dir, self.name)?);
            }
            self.experiment.as_mut().ok_or_else(|| io::Error::other("unreachable"))
        }

        /// The file of `trial`, `None` when it has no directory.
        fn trial_file(&mut self, trial: u32) -> io::Result<Option<&mut File>> {
            if let Some(i) = self.trials.iter().position(|(t, _)| *t == trial) {
                let entry = self.trials.remove(i);
                self.trials.push(entry);
            } else {
                let dir =
                    self.dirs.lock().unwrap_or_else(PoisonError::into_inner).get(&trial).cloned();
                let Some(dir) = dir else { return Ok(None) };
                let file = append(&dir, self.name)?;
                if self.trials.len() >= OPEN_FILES {
                    self.trials.remove(0);
                }
                self.trials.push((trial, file));
            }
            Ok(self.trials.last_mut().map(|(_, f)| f))
        }
    }

    enum Found {
        /// A marker at this offset.
        Marker(usize),
        /// Maybe the start of a marker at this offset, cut by the end of the bytes.
        Partial(usize),
        None,
    }

    fn find_marker(bytes: &[u8], token: &[u8; 16]) -> Found {
        let mut from = 0;
        while let Some(i) = bytes[from..].iter().position(|b| *b == 0).map(|i| i + from) {
            let rest = &bytes[i + 1..];
            if rest.len() >= MARK_LEN - 1 {
                if rest[..16] == token[..] {
                    return Found::Marker(i);
                }
            } else if rest.len() <= 16 && rest == &token[..rest.len()]
                || rest.len() > 16 && rest[..16] == token[..]
            {
                return Found::Partial(i);
            }
            from = i + 1;
        }
        Found::None
    }

    fn read_loop(fd: &OwnedFd, token: &[u8; 16], sinks: &mut Sinks) {
        let mut buf = vec![0u8; 64 << 10];
        let mut pending: Vec<u8> = Vec::new();
        let mut open: Vec<u32> = Vec::new();
        let mut stopped = false;
        while !stopped {
            let n = match rustix::io::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(_) => break,
            };
            pending.extend_from_slice(&buf[..n]);
            let mut at = 0;
            loop {
                match find_marker(&pending[at..], token) {
                    Found::Marker(i) => {
                        sinks.write(&open, &pending[at..at + i]);
                        let m = &pending[at + i..at + i + MARK_LEN];
                        let mut id = [0u8; 4];
                        id.copy_from_slice(&m[18..]);
                        let trial = u32::from_le_bytes(id);
                        match m[17] {
                            BEGIN => open.push(trial),
                            END => {
                                if let Some(p) = open.iter().position(|t| *t == trial) {
                                    open.swap_remove(p);
                                }
                            }
                            STOP => stopped = true,
                            _ => {}
                        }
                        at += i + MARK_LEN;
                        if stopped {
                            break;
                        }
                    }
                    Found::Partial(i) => {
                        sinks.write(&open, &pending[at..at + i]);
                        at += i;
                        break;
                    }
                    Found::None => {
                        sinks.write(&open, &pending[at..]);
                        at = pending.len();
                        break;
                    }
                }
            }
            pending.drain(..at);
        }
        // Bytes after the stop marker (a write that was under way as the descriptors were
        // restored), then whatever is left: to the experiment's file.
        if rustix::io::ioctl_fionbio(fd, true).is_ok() {
            loop {
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                    Err(Errno::INTR) => {}
                    Err(_) => break,
                }
            }
        }
        sinks.write(&[], &pending);
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        #[test]
        fn markers_are_found_whole_cut_or_not_at_all() {
            let token = [7u8; 16];
            let m = marker(&token, BEGIN, 3);
            let mut bytes = b"ab\0c".to_vec();
            bytes.extend_from_slice(&m);
            assert!(matches!(find_marker(&bytes, &token), Found::Marker(4)));
            assert!(matches!(find_marker(&bytes[..10], &token), Found::Partial(4)));
            assert!(matches!(find_marker(b"x\0\x07\x07y", &token), Found::None));
            assert!(matches!(find_marker(b"plain", &token), Found::None));
        }
    }
}

#[cfg(not(unix))]
mod imp {
    //! No capture in process off Unix (documented); isolated trials still write files.
    use std::io;
    use std::path::Path;
    use std::sync::Arc;

    use super::Terminal;

    pub(crate) struct Tagger;

    pub(crate) const NO_TRIAL: u32 = u32::MAX;

    impl Tagger {
        pub fn register(&self, _trial: u32, _dir: &Path) {}
        pub fn around<R>(&self, _trial: u32, f: impl FnOnce() -> R) -> R {
            f()
        }
    }

    pub(crate) struct Capture;

    impl Capture {
        pub fn tagger(&self) -> Arc<Tagger> {
            Arc::new(Tagger)
        }
        pub fn finish(self) -> Option<String> {
            None
        }
    }

    pub(super) fn terminal() -> Option<Arc<Terminal>> {
        None
    }

    pub(super) fn finish_now() {}

    pub(crate) fn start(_experiment_dir: &Path) -> io::Result<Option<Capture>> {
        Ok(None)
    }
}
