//! Checkpoint manifests: the name, length and CRC-32 of every file of a checkpoint, written
//! last into the scratch directory before it is published, and checked before a restore.
//!
//! A checkpoint whose manifest is missing, unreadable or disagrees with a file is refused
//! with an error naming the file; nothing is deleted. The manifest is plain JSON (no code
//! runs on load), at most [`MAX_MANIFEST_BYTES`], and its paths must stay inside the
//! checkpoint directory.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the manifest inside a checkpoint directory.
pub const MANIFEST_FILE: &str = ".tune_manifest.json";

/// Largest manifest (and checkpoint metadata) file read back: 1 MiB.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    files: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    path: String,
    len: u64,
    crc32: u32,
}

/// The files a manifest lists (`/`-separated paths inside the checkpoint, with their
/// lengths), for a store that copies a checkpoint file by file. Refuses a manifest that is
/// not JSON of version 1 or names a path outside the checkpoint.
#[cfg_attr(not(feature = "object-store"), allow(dead_code))]
pub(crate) fn listed(bytes: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is corrupt: {e}"))?;
    if manifest.version != 1 {
        return Err(format!(
            "the manifest has version {}, this build reads version 1",
            manifest.version
        ));
    }
    let mut files = Vec::with_capacity(manifest.files.len());
    for entry in manifest.files {
        if !is_plain_relative(&entry.path) || entry.path == MANIFEST_FILE {
            return Err(format!(
                "the manifest names `{}`, which is not a file inside the checkpoint",
                entry.path
            ));
        }
        files.push((entry.path, entry.len));
    }
    Ok(files)
}

fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let mut file = File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((len, hasher.finalize()))
}

/// Every regular file under `root/rel` but the manifest; links are an error (a
/// checkpoint holds only its own files).
fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = rel.join(entry.file_name());
        if kind.is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "`{}` is a symbolic link; a checkpoint holds only its own files",
                    path.display()
                ),
            ));
        } else if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() && path != Path::new(MANIFEST_FILE) {
            out.push(path);
        }
    }
    Ok(())
}

/// A path as the manifest writes it (`/`-separated).
fn slashed(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes the manifest of every regular file under `dir` (and syncs it when `sync`).
pub(crate) fn write(dir: &Path, sync: bool) -> io::Result<()> {
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for rel in paths {
        let (len, crc32) = checksum(&dir.join(&rel))?;
        files.push(Entry { path: slashed(&rel), len, crc32 });
    }
    let bytes = serde_json::to_vec(&Manifest { version: 1, files }).map_err(io::Error::other)?;
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, bytes)?;
    if sync {
        crate::checkpoint::sync_file(&File::open(&path)?, &path)?;
    }
    Ok(())
}

/// A relative path made of plain names only: no root, no `..`, no `.`, no prefix.
pub(crate) fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Reads at most [`MAX_MANIFEST_BYTES`] of a small metadata file.
pub(crate) fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_MANIFEST_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Checks a checkpoint directory against its manifest: the directory is no link, the
/// manifest lists files (`required` among them), every listed file is present with the
/// same length and CRC-32, and no file is there that it does not list. The error names
/// the file and says what is wrong.
pub(crate) fn verify(dir: &Path, required: &[&str]) -> Result<(), String> {
    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(format!(
            "checkpoint `{}` is a symbolic link; a checkpoint is a directory of its own",
            dir.display()
        ));
    }
    let path = dir.join(MANIFEST_FILE);
    let bytes = read_small(&path).map_err(|e| {
        format!(
            "checkpoint `{}` cannot be verified: reading `{}` failed: {e}",
            dir.display(),
            path.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| format!("checkpoint manifest `{}` is corrupt: {e}", path.display()))?;
    if manifest.version != 1 {
        return Err(format!(
            "checkpoint manifest `{}` has version {}, this build reads version 1",
            path.display(),
            manifest.version
        ));
    }
    for name in required {
        if !manifest.files.iter().any(|e| e.path == *name) {
            return Err(format!(
                "checkpoint manifest `{}` does not list `{name}`, which every checkpoint has; \
                 the checkpoint is incomplete or was not written by the runner",
                path.display()
            ));
        }
    }
    for entry in &manifest.files {
        if !is_plain_relative(&entry.path) {
            return Err(format!(
                "checkpoint manifest `{}` names `{}`, which is not a path inside the checkpoint",
                path.display(),
                entry.path
            ));
        }
        let file = dir.join(&entry.path);
        if fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "checkpoint file `{}` is a symbolic link; a checkpoint holds only its own files",
                file.display()
            ));
        }
        let (len, crc32) = checksum(&file)
            .map_err(|e| format!("checkpoint file `{}` is unreadable: {e}", file.display()))?;
        if len != entry.len || crc32 != entry.crc32 {
            return Err(format!(
                "checkpoint file `{}` is corrupt: {len} bytes with CRC-32 {crc32:08x}, the \
                 manifest says {} bytes with CRC-32 {:08x}",
                file.display(),
                entry.len,
                entry.crc32
            ));
        }
    }
    let mut present = Vec::new();
    walk(dir, Path::new(""), &mut present)
        .map_err(|e| format!("checkpoint `{}` cannot be listed: {e}", dir.display()))?;
    for rel in present {
        let rel = slashed(&rel);
        if !manifest.files.iter().any(|e| e.path == rel) {
            return Err(format!(
                "checkpoint `{}` holds `{rel}`, which its manifest does not list; the \
                 checkpoint was changed after it was written",
                dir.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_changed_missing_and_escaping_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("state.json"), b"{\"a\":1}").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/w.bin"), [1u8, 2, 3]).unwrap();
        write(dir.path(), true).unwrap();
        verify(dir.path(), &["state.json"]).unwrap();
        // A file added afterwards is not accepted.
        fs::write(dir.path().join("extra"), b"x").unwrap();
        let err = verify(dir.path(), &[]).unwrap_err();
        assert!(err.contains("does not list"), "{err}");
        fs::remove_file(dir.path().join("extra")).unwrap();
        // Nor is a manifest that lists nothing (it would verify any directory).
        let good = fs::read(dir.path().join(MANIFEST_FILE)).unwrap();
        fs::write(dir.path().join(MANIFEST_FILE), br#"{"version":1,"files":[]}"#).unwrap();
        let err = verify(dir.path(), &["state.json"]).unwrap_err();
        assert!(err.contains("does not list `state.json`"), "{err}");
        fs::write(dir.path().join(MANIFEST_FILE), good).unwrap();
        fs::write(dir.path().join("sub/w.bin"), [1u8, 2, 4]).unwrap();
        let err = verify(dir.path(), &[]).unwrap_err();
        assert!(err.contains("w.bin") && err.contains("corrupt"), "{err}");
        fs::remove_file(dir.path().join("sub/w.bin")).unwrap();
        let err = verify(dir.path(), &[]).unwrap_err();
        assert!(err.contains("w.bin") && err.contains("unreadable"), "{err}");
        let evil = r#"{"version":1,"files":[{"path":"../x","len":0,"crc32":0}]}"#;
        fs::write(dir.path().join(MANIFEST_FILE), evil).unwrap();
        let err = verify(dir.path(), &[]).unwrap_err();
        assert!(err.contains("not a path inside"), "{err}");
        assert!(is_plain_relative("a/b") && !is_plain_relative("/a") && !is_plain_relative(".."));
    }
}
