//! Checkpoint directories: `checkpoint_<iteration>/` holding the trainable's state, its
//! own files and the runner's metadata, written atomically.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::trainable::Trainable;

/// File holding [`Checkpointable::save_state`](crate::Checkpointable::save_state)'s bytes.
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

/// Writes the checkpoint of `t` at `dir`.
pub(crate) fn save<T: Trainable>(
    store: &dyn CheckpointStore,
    t: &T,
    dir: &Path,
    meta: &CheckpointMeta,
) -> Result<(), String> {
    let io = |e: io::Error| format!("writing checkpoint `{}` failed: {e}", dir.display());
    let scratch = store.begin(dir).map_err(io)?;
    let state = t.save_state().map_err(|e| e.to_string())?;
    fs::write(scratch.join(STATE_FILE), state).map_err(io)?;
    let meta = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
    fs::write(scratch.join(META_FILE), meta).map_err(io)?;
    t.save_files(&scratch).map_err(|e: TrainError| format!("`save_files` failed: {e}"))?;
    store.commit(&scratch, dir).map_err(io)
}

/// Loads the checkpoint at `dir` into `t`.
pub(crate) fn restore<T: Trainable>(t: &mut T, dir: &Path) -> Result<(), String> {
    let path = dir.join(STATE_FILE);
    let state = fs::read(&path)
        .map_err(|e| format!("cannot read checkpoint state `{}`: {e}", path.display()))?;
    t.load_state(&state).map_err(|e| e.to_string())?;
    t.restore_files(dir).map_err(|e| format!("`restore_files` failed: {e}"))
}

/// Reads a checkpoint's metadata; the error says what is missing.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, String> {
    let path = dir.join(META_FILE);
    let text = fs::read(&path).map_err(|e| {
        format!(
            "`{}` is not a checkpoint directory (cannot read `{META_FILE}`: {e}); pass a \
             `checkpoint_<n>` directory written by the runner",
            dir.display()
        )
    })?;
    if !dir.join(STATE_FILE).is_file() {
        return Err(format!("checkpoint `{}` has no `{STATE_FILE}`", dir.display()));
    }
    serde_json::from_slice(&text).map_err(|e| format!("`{}` is corrupt: {e}", path.display()))
}
