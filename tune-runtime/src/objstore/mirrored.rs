//! Local checkpoints mirrored to an object store.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::ObjectStoreCheckpoints;
use crate::checkpoint::CheckpointStore;
use crate::manifest;

/// Checkpoints on the local disk, mirrored to an object store: each checkpoint is written
/// locally (as by [`LocalCheckpoints`](crate::storage::LocalCheckpoints)) and uploaded, and a
/// restore reads the local copy when it is there and verifies, else downloads it. A run
/// that loses its machine continues on another from the store (the seed's
/// `DurableTrainable`, Ray Tune's `storage_path`).
///
/// ```
/// use tune_runtime::{storage::{MirroredCheckpoints, ObjectStoreCheckpoints}};
/// let remote = ObjectStoreCheckpoints::from_url("s3://my-bucket/runs", [("region", "eu-west-1")])?;
/// let store = MirroredCheckpoints::new(remote);
/// # Ok::<(), tune_runtime::storage::StoreError>(())
/// ```
#[derive(Debug)]
pub struct MirroredCheckpoints {
    remote: ObjectStoreCheckpoints,
}

impl MirroredCheckpoints {
    /// Local checkpoints mirrored to `remote`.
    pub fn new(remote: ObjectStoreCheckpoints) -> Self {
        MirroredCheckpoints { remote }
    }
}

impl CheckpointStore for MirroredCheckpoints {
    fn begin(&self, dir: &Path) -> io::Result<PathBuf> {
        crate::storage::LocalCheckpoints.begin(dir)
    }

    fn commit(&self, scratch: &Path, dir: &Path) -> io::Result<()> {
        // Uploaded from the scratch directory before it is published locally, so that a
        // local checkpoint always has its copy in the store.
        let rel = self.remote.relative(dir)?;
        self.remote.runtime.block_on(self.remote.commit_async(scratch, &rel))?;
        crate::storage::LocalCheckpoints.commit(scratch, dir)
    }

    fn delete(&self, dir: &Path) -> io::Result<()> {
        let local = match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        self.remote.delete(dir)?;
        local
    }

    fn open(&self, dir: &Path) -> io::Result<PathBuf> {
        if manifest::verify(dir, &[]).is_ok() {
            return Ok(dir.to_path_buf());
        }
        self.remote.open(dir)
    }

    fn attach(&self, experiment_dir: &Path) -> io::Result<()> {
        self.remote.attach(experiment_dir)
    }
}
