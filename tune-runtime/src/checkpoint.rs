//! Checkpoint directories: the generated state in `state.json` beside the trainable's own
//! files.
//!
//! A checkpoint directory holds [`STATE_FILE`], the self-describing JSON that
//! [`Checkpointable::save_state`](crate::Checkpointable::save_state) produces (the struct's checkpointed fields by name), and
//! whatever [`Trainable::save_files`] writes. The runner saves to
//! `trial_dir/checkpoint_<iter>/` with [`save_checkpoint`] and restores with
//! [`restore_checkpoint`]; `validate_save_restore` goes through the same two functions.
//! The runner also writes [`META_FILE`] (its [`CheckpointMeta`]) and publishes each
//! `checkpoint_<iter>/` atomically through a [`CheckpointStore`], with a manifest
//! (`.tune_manifest.json`: every file's length and CRC-32) checked before any restore.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;
use crate::trainable::Trainable;

/// Name of the file that holds the generated state inside a checkpoint directory.
pub const STATE_FILE: &str = "state.json";
/// File holding the runner's [`CheckpointMeta`].
pub const META_FILE: &str = ".tune_metadata.json";

/// What the runner records in every checkpoint beside the trainable's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// `TrainableSpec::NAME` of the trainable that wrote it.
    pub trainable: String,
    /// The training iteration the state is at.
    pub iteration: u64,
    /// Total training seconds up to that iteration.
    pub time_total_s: f64,
    /// The id of the trial it belongs to (`00003`); a resume refuses a checkpoint of
    /// another trial. Absent in checkpoints written before version 0.2, and in ones
    /// written outside a run (`validate_save_restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
}

/// How hard the runner works to keep checkpoints through a crash of the machine
/// ([`Tuner::durability`](crate::Tuner::durability)).
///
/// Either way a checkpoint is written into a scratch directory and renamed into place, and
/// checked against its manifest before any restore, so a process crash (a panic, `kill -9`,
/// the OOM killer) loses nothing: what was written is in the operating system's buffers.
/// The setting matters only when the machine itself goes down (power loss, a kernel crash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Each checkpoint's state file and manifest are `fsync`ed before the checkpoint is
    /// published and recorded: after a machine crash the latest checkpoint is there, or the
    /// resume falls back to an older one. Costs two `fsync`s per checkpoint (from well under
    /// a millisecond on an idle SSD to tens of milliseconds on a busy disk or network
    /// storage). The default.
    #[default]
    Synced,
    /// No `fsync`: checkpoints reach the disk when the operating system writes its buffers
    /// back (within about 30 s on Linux). After a machine crash, checkpoints of the last
    /// seconds may be missing or torn; the manifest check finds torn ones, and a resume
    /// rolls each trial back to its latest checkpoint that verifies (or to its start),
    /// repeating the steps after it. For cheap experiments where a checkpoint costs more
    /// than the steps it saves.
    Relaxed,
}

impl Durability {
    /// Whether checkpoint files are synced.
    pub(crate) fn syncs(self) -> bool {
        self == Durability::Synced
    }
}

/// Syncs a checkpoint file to the disk (tests record which files were synced).
pub(crate) fn sync_file(file: &fs::File, path: &Path) -> io::Result<()> {
    #[cfg(test)]
    synced::record(path);
    #[cfg(not(test))]
    let _ = path;
    file.sync_all()
}

/// The checkpoint files synced so far in this test process.
#[cfg(test)]
pub(crate) mod synced {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(crate) fn record(path: &Path) {
        if let Ok(mut s) = SYNCED.lock() {
            s.push(path.to_path_buf());
        }
    }

    /// How many files under `dir` were synced.
    pub(crate) fn under(dir: &Path) -> usize {
        SYNCED.lock().map_or(0, |s| s.iter().filter(|p| p.starts_with(dir)).count())
    }
}

/// Where checkpoint directories are written. The local file system is
/// [`LocalCheckpoints`]; an object-store backend implements the same methods.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// A fresh, empty scratch directory to write the checkpoint that will live at `dir`.
    fn begin(&self, dir: &Path) -> io::Result<PathBuf>;
    /// Publishes the scratch directory as `dir` in one step, replacing an older `dir`.
    fn commit(&self, scratch: &Path, dir: &Path) -> io::Result<()>;
    /// Deletes the checkpoint at `dir`.
    fn delete(&self, dir: &Path) -> io::Result<()>;
    /// Makes the checkpoint at `dir` readable as a local directory and returns it: a
    /// store on the local file system returns `dir` itself; a remote one downloads the
    /// checkpoint first. Resumes and restores read every checkpoint through this.
    fn open(&self, dir: &Path) -> io::Result<PathBuf> {
        Ok(dir.to_path_buf())
    }
    /// Called once when a run starts, with its experiment directory: checkpoint
    /// directories are inside it, and a remote store names its objects by their path
    /// relative to it (so processes with different local directories share them).
    fn attach(&self, experiment_dir: &Path) -> io::Result<()> {
        let _ = experiment_dir;
        Ok(())
    }
}

/// A failure of a remote checkpoint store (an object store that cannot be reached, that
/// refuses the credentials, whose bucket is missing). A [`CheckpointStore`] returns it inside
/// the [`io::Error`] of a method (`io::Error::other(StoreError::new(..))`): the runner then
/// reports the store's failure with what to check, instead of a local directory's, and a
/// checkpoint the store refuses stops the run, resumably, as a full disk does.
///
/// ```
/// use tune_runtime::storage::StoreError;
/// let e = StoreError::new("s3://bucket/exp", "bucket `bucket` does not exist");
/// assert_eq!(e.to_string(), "checkpoint store `s3://bucket/exp`: bucket `bucket` does not exist");
/// let io = std::io::Error::other(e);
/// assert!(io.get_ref().is_some_and(|e| e.is::<StoreError>()));
/// ```
#[derive(Debug, Clone)]
pub struct StoreError {
    store: String,
    message: String,
}

impl StoreError {
    /// A failure of the store named `store` (its URL, without credentials); `message` says
    /// what failed and what to check.
    pub fn new(store: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError { store: store.into(), message: message.into() }
    }

    /// The store's URL.
    pub fn store(&self) -> &str {
        &self.store
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checkpoint store `{}`: {}", self.store, self.message)
    }
}

impl std::error::Error for StoreError {}

/// Whether an I/O error of a [`CheckpointStore`] is a [`StoreError`].
pub(crate) fn is_remote(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<StoreError>())
}

/// Checkpoints on the local file system: written into `.<name>.tmp` and renamed, so a
/// `checkpoint_<n>/` directory is always complete.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalCheckpoints;

impl CheckpointStore for LocalCheckpoints {
    fn begin(&self, dir: &Path) -> io::Result<PathBuf> {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let scratch = dir.with_file_name(format!(".{name}.tmp"));
        if scratch.exists() {
            fs::remove_dir_all(&scratch)?;
        }
        fs::create_dir_all(&scratch)?;
        Ok(scratch)
    }

    fn commit(&self, scratch: &Path, dir: &Path) -> io::Result<()> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::rename(scratch, dir)
    }

    fn delete(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir_all(dir)
    }
}

/// Saves `trainable` into `dir` (created if missing): its state to [`STATE_FILE`], written
/// atomically (a temporary file renamed into place), then its own files through
/// [`Trainable::save_files`].
///
/// # Errors
///
/// [`CheckpointError::Serialize`] when the state cannot be serialized,
/// [`CheckpointError::Io`] when the directory or file cannot be written,
/// [`CheckpointError::Hook`] when `save_files` fails.
pub fn save_checkpoint<T: Trainable>(trainable: &T, dir: &Path) -> Result<(), CheckpointError> {
    write_state(trainable, dir, true)?;
    trainable
        .save_files(dir)
        .map_err(|e| CheckpointError::Hook { trainable: T::NAME, message: e.to_string() })
}

/// Writes the trainable's generated state to `dir/state.json` (atomically; synced when
/// `sync`).
fn write_state<T: Trainable>(trainable: &T, dir: &Path, sync: bool) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io { path: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let bytes = trainable.save_state()?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    let path = dir.join(STATE_FILE);
    if sync {
        sync_file(file.as_file(), &path).map_err(io)?;
    }
    file.persist(&path).map_err(|e| CheckpointError::Io { path, source: e.error })?;
    trainable.save_tensors(dir)
}

/// Restores `trainable` from a directory written by [`save_checkpoint`]: loads
/// [`STATE_FILE`] with [`Checkpointable::load_state`](crate::Checkpointable::load_state), then calls
/// [`Trainable::restore_files`].
///
/// # Errors
///
/// [`CheckpointError::Io`] when `state.json` cannot be read,
/// [`CheckpointError::Deserialize`] when it does not hold this trainable's state,
/// [`CheckpointError::Hook`] when `restore_files` fails.
pub fn restore_checkpoint<T: Trainable>(
    trainable: &mut T,
    dir: &Path,
) -> Result<(), CheckpointError> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|source| CheckpointError::Io { path, source })?;
    trainable.load_state(&bytes)?;
    trainable.restore_tensors(dir)?;
    trainable
        .restore_files(dir)
        .map_err(|e| CheckpointError::Hook { trainable: T::NAME, message: e.to_string() })
}

/// Serializes a value to a checkpoint's bytes (JSON).
#[doc(hidden)]
pub fn save_json<S: Serialize + ?Sized>(
    trainable: &'static str,
    state: &S,
) -> Result<Vec<u8>, CheckpointError> {
    serde_json::to_vec(state).map_err(|source| CheckpointError::Serialize { trainable, source })
}

/// Deserializes a value from a checkpoint's bytes (JSON).
#[doc(hidden)]
pub fn load_json<S: DeserializeOwned>(
    trainable: &'static str,
    bytes: &[u8],
) -> Result<S, CheckpointError> {
    serde_json::from_slice(bytes)
        .map_err(|source| CheckpointError::Deserialize { trainable, source })
}

/// The checkpointed fields of a class trainable read back from `state.json`: generated
/// `load_state` takes each field by name, so that an error names the field, and assigns the
/// fields only once all of them have been read.
#[doc(hidden)]
#[derive(Debug)]
pub struct StateFields {
    trainable: &'static str,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl StateFields {
    /// Parses the bytes of a checkpoint: a JSON object with one entry per field.
    pub fn parse(trainable: &'static str, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let fields = load_json(trainable, bytes)?;
        Ok(Self { trainable, fields })
    }

    /// Takes the field `name` out of the checkpoint.
    pub fn take<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, CheckpointError> {
        use serde::de::Error as _;
        let trainable = self.trainable;
        let value = self.fields.remove(name).ok_or_else(|| CheckpointError::Deserialize {
            trainable,
            source: serde_json::Error::missing_field(name),
        })?;
        T::deserialize(value).map_err(|e| CheckpointError::Deserialize {
            trainable,
            source: serde_json::Error::custom(format_args!("field `{name}`: {e}")),
        })
    }
}

/// Writes the checkpoint of `t` at `dir`: state, own files and metadata into a scratch
/// directory, published by the store in one step; the state and the manifest are synced
/// when `durability` says so.
pub(crate) fn save<T: Trainable>(
    store: &dyn CheckpointStore,
    t: &T,
    dir: &Path,
    meta: &CheckpointMeta,
    durability: Durability,
) -> Result<(), SaveError> {
    let io = |e: io::Error| SaveError::io(dir, e);
    let scratch = store.begin(dir).map_err(io)?;
    write_state(t, &scratch, durability.syncs()).map_err(|e| match e {
        CheckpointError::Io { path, source } if is_storage(&source) => {
            SaveError::Storage { path, source }
        }
        e => SaveError::Trial(e.to_string()),
    })?;
    if let Err(e) = t.save_files(&scratch) {
        return Err(files_failed::<T>(dir, &scratch, &e));
    }
    let meta = serde_json::to_vec(meta).map_err(|e| SaveError::Trial(e.to_string()))?;
    fs::write(scratch.join(META_FILE), meta).map_err(io)?;
    crate::manifest::write(&scratch, durability.syncs()).map_err(io)?;
    if crate::faultpoint::hit(crate::faultpoint::Point::Checkpoint) {
        crate::faultpoint::die();
    }
    store.commit(&scratch, dir).map_err(io)
}

/// The trainable's own files (`save_files`) could not be written. When the disk refused
/// them (full, over quota, read-only, not permitted), that is the storage's problem, not
/// the trial's: the I/O error is found in the error's chain (an `io::Error` passed on
/// with `?`), or, when the error does not carry one, by a write to the scratch directory.
fn files_failed<T: Trainable>(
    dir: &Path,
    scratch: &Path,
    e: &crate::error::TrainError,
) -> SaveError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e.source_error());
    while let Some(c) = cause {
        if let Some(source) = c.downcast_ref::<io::Error>().filter(|s| is_storage(s)) {
            let source = match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            };
            return SaveError::Storage { path: dir.to_path_buf(), source };
        }
        cause = c.source();
    }
    match probe(scratch) {
        Err(source) if is_storage(&source) => {
            SaveError::Storage { path: dir.to_path_buf(), source }
        }
        _ => SaveError::Trial(
            CheckpointError::Hook { trainable: T::NAME, message: e.to_string() }.to_string(),
        ),
    }
}

/// Writes and syncs a small file in `dir` and removes it: fails the way a write there
/// fails now (full, read-only, not permitted).
fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(".tune_probe");
    let written = fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = fs::remove_file(&path);
    written
}

/// Why the runner could not write a checkpoint.
#[derive(Debug)]
pub(crate) enum SaveError {
    /// The storage refused a write: it is full, over quota, read-only or not permitted.
    /// The run stops (resumable) instead of failing the trial, since every trial would fail
    /// the same way.
    Storage {
        /// The checkpoint directory or file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// Anything else (the trainable's state or hook, a panic): the trial fails.
    Trial(String),
}

impl SaveError {
    fn io(dir: &Path, source: io::Error) -> Self {
        if is_storage(&source) {
            SaveError::Storage { path: dir.to_path_buf(), source }
        } else {
            SaveError::Trial(format!("writing checkpoint `{}` failed: {source}", dir.display()))
        }
    }
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Storage { path, source } => {
                write!(f, "writing checkpoint `{}` failed: {source}", path.display())
            }
            SaveError::Trial(message) => f.write_str(message),
        }
    }
}

/// Whether an I/O error says the storage cannot take writes (full, over quota, read-only,
/// not permitted, a remote store that refused or could not be reached), as opposed to a
/// problem of one trial.
pub(crate) fn is_storage(e: &io::Error) -> bool {
    use io::ErrorKind::{PermissionDenied, QuotaExceeded, ReadOnlyFilesystem, StorageFull};
    matches!(e.kind(), StorageFull | QuotaExceeded | ReadOnlyFilesystem | PermissionDenied)
        || is_remote(e)
}

/// Loads the checkpoint at `dir` into `t`, after checking its files against its manifest.
pub(crate) fn restore<T: Trainable>(t: &mut T, dir: &Path) -> Result<(), String> {
    crate::manifest::verify(dir, required_files::<T>())?;
    restore_checkpoint(t, dir).map_err(|e| e.to_string())
}

/// The files every checkpoint of `T` holds: the manifest must list them.
pub(crate) fn required_files<T: Trainable>() -> &'static [&'static str] {
    if T::TENSORS {
        &[META_FILE, STATE_FILE, crate::tensors::TENSORS_FILE]
    } else {
        &[META_FILE, STATE_FILE]
    }
}

/// Reads a checkpoint's metadata after checking every file against the checkpoint's
/// manifest (name, length, CRC-32); the error names the missing or corrupt file. Reading
/// never runs code and never deletes anything.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, String> {
    let path = dir.join(META_FILE);
    let text = crate::manifest::read_small(&path).map_err(|e| {
        format!(
            "`{}` is not a checkpoint directory (cannot read `{META_FILE}`: {e}); pass a \
             `checkpoint_<n>` directory written by the runner",
            dir.display()
        )
    })?;
    if !dir.join(STATE_FILE).is_file() {
        return Err(format!("checkpoint `{}` has no `{STATE_FILE}`", dir.display()));
    }
    crate::manifest::verify(dir, &[META_FILE, STATE_FILE])?;
    serde_json::from_slice(&text).map_err(|e| format!("`{}` is corrupt: {e}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_helpers_name_the_trainable() {
        let bytes = save_json("Net", &[1, 2]).unwrap();
        let back: Vec<i32> = load_json("Net", &bytes).unwrap();
        assert_eq!(back, [1, 2]);
        let err = load_json::<Vec<i32>>("Net", b"{").unwrap_err();
        assert!(
            err.to_string().starts_with("could not restore `Net` from its checkpoint"),
            "{err}"
        );

        let mut fields = StateFields::parse("Net", br#"{"a": 1, "b": "x"}"#).unwrap();
        assert_eq!(fields.take::<u32>("a").unwrap(), 1);
        let err = fields.take::<u32>("b").unwrap_err();
        assert!(err.to_string().contains("field `b`: invalid type: string"), "{err}");
        let err = fields.take::<u32>("c").unwrap_err();
        assert!(err.to_string().contains("missing field `c`"), "{err}");
        assert!(
            err.to_string().starts_with("could not restore `Net` from its checkpoint"),
            "{err}"
        );
    }
}
