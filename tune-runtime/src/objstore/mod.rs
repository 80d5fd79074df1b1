//! Checkpoints in an object store (feature `object-store`): S3 and S3-compatible servers
//! from a URL (Azure Blob Storage and Google Cloud Storage too, with the features
//! `object-store-azure` and `object-store-gcp`), or any [`object_store::ObjectStore`].
//!
//! A checkpoint is written into a local scratch directory as always, then uploaded under
//! `<prefix>/<experiment name>/<path relative to the experiment directory>/` (the layout of
//! the local directory, so processes on other machines find it): every file first, its manifest
//! (`.tune_manifest.json`, every file's length and CRC-32) last. A checkpoint exists for a
//! reader only once its manifest is there, so a reader never sees half an upload; a
//! replaced checkpoint loses its old manifest before its new files go up. Opening a
//! checkpoint downloads the files its manifest lists into a local cache and checks them
//! against it. Deleting removes the whole prefix, manifest first.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart};

use crate::checkpoint::{CheckpointStore, StoreError};
use crate::manifest::{self, MANIFEST_FILE};

mod mirrored;
pub use mirrored::MirroredCheckpoints;

/// Files larger than this go up as multipart uploads, in parts of this size.
const PART_SIZE: usize = 16 << 20;
/// Parts of one file, and files of one checkpoint, in flight at once.
const CONCURRENCY: usize = 8;

/// What every store error message ends with: where to look.
const S3_HINT: &str = "check that the bucket exists, that the endpoint and region are right \
     (options `endpoint`, `region`, or `AWS_ENDPOINT`, `AWS_REGION`), and that the \
     credentials (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or the options \
     `access_key_id` and `secret_access_key`) may read and write it";

const AZURE_HINT: &str = "check that the container exists, that the account and endpoint \
     are right (options `account_name`, `endpoint`, or `AZURE_STORAGE_ACCOUNT_NAME`, \
     `AZURE_STORAGE_ENDPOINT`), and that the credentials (`AZURE_STORAGE_ACCOUNT_KEY`, a SAS \
     token, a service principal, ...) may read and write it";
const GCS_HINT: &str = "check that the bucket exists and that the credentials (a service \
     account: option `service_account` or `GOOGLE_SERVICE_ACCOUNT`, or \
     `GOOGLE_APPLICATION_CREDENTIALS`) may read and write it";
const HINT: &str = "check that the store is reachable and that its credentials may read and \
     write it";

/// Applies the options common to every store (`max_retries`, `retry_timeout_s`) and hands
/// the others to `set`, which says whether it knows the key (an unknown one is an error
/// that lists `known`).
fn configure(
    url: &str,
    options: impl Iterator<Item = (String, String)>,
    known: &str,
    mut set: impl FnMut(&str, String) -> Result<(), ()>,
) -> Result<RetryConfig, StoreError> {
    let bad = |message: String| StoreError::new(url, message);
    let mut retry = RetryConfig::default();
    for (key, value) in options {
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|_| bad(format!("option `{key}` must be {what}, not `{value}`")))
        };
        match key.as_str() {
            "max_retries" => retry.max_retries = number("a whole number")? as usize,
            "retry_timeout_s" => {
                retry.retry_timeout = Duration::from_secs(number("a number of seconds")?)
            }
            _ => set(&key, value).map_err(|()| {
                bad(format!(
                    "unknown option `{key}`; use {known}, `max_retries`, `retry_timeout_s`"
                ))
            })?,
        }
    }
    // rustls without a bundled provider (see the workspace Cargo.toml): ring's, unless the
    // program installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(retry)
}

/// An S3 store of `bucket`.
fn s3(
    url: &str,
    bucket: &str,
    options: impl Iterator<Item = (String, String)>,
) -> Result<object_store::aws::AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let known = "`endpoint`, `region`, `access_key_id`, `secret_access_key`, \
                 `session_token`, `allow_http` or another key of \
                 `object_store::aws::AmazonS3ConfigKey`";
    let retry = configure(url, options, known, |key, value| {
        let parsed: AmazonS3ConfigKey = key.parse().map_err(|_| ())?;
        if parsed == AmazonS3ConfigKey::Endpoint && value.starts_with("http://") {
            builder = std::mem::take(&mut builder).with_allow_http(true);
        }
        builder = std::mem::take(&mut builder).with_config(parsed, value);
        Ok(())
    })?;
    builder
        .with_retry(retry)
        .build()
        .map_err(|e| StoreError::new(url, format!("invalid configuration: {e}")))
}

/// An Azure Blob Storage store of the container `url` names.
#[cfg(feature = "object-store-azure")]
fn azure(
    url: &str,
    options: impl Iterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
    let mut builder = MicrosoftAzureBuilder::from_env().with_url(url);
    let known = "`account_name`, `access_key`, `sas_token`, `client_id`, `client_secret`, \
                 `tenant_id`, `endpoint`, `use_emulator`, `azure_allow_http` or another key \
                 of `object_store::azure::AzureConfigKey`";
    let retry = configure(url, options, known, |key, value| {
        let parsed: AzureConfigKey = key.parse().map_err(|_| ())?;
        if parsed == AzureConfigKey::Endpoint && value.starts_with("http://") {
            builder = std::mem::take(&mut builder).with_allow_http(true);
        }
        builder = std::mem::take(&mut builder).with_config(parsed, value);
        Ok(())
    })?;
    let store = builder
        .with_retry(retry)
        .build()
        .map_err(|e| StoreError::new(url, format!("invalid configuration: {e}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "object-store-azure"))]
fn azure(
    url: &str,
    _options: impl Iterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Err(StoreError::new(
        url,
        "Azure Blob Storage needs the feature `object-store-azure` of tune-runtime; enable it \
         (`features = [\"object-store-azure\"]`)",
    ))
}

/// A Google Cloud Storage store of `bucket`.
#[cfg(feature = "object-store-gcp")]
fn gcp(
    url: &str,
    bucket: &str,
    options: impl Iterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
    let mut builder = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    let known = "`service_account`, `service_account_key`, `application_credentials`, \
                 `base_url` or another key of `object_store::gcp::GoogleConfigKey`";
    let retry = configure(url, options, known, |key, value| {
        let parsed: GoogleConfigKey = key.parse().map_err(|_| ())?;
        builder = std::mem::take(&mut builder).with_config(parsed, value);
        Ok(())
    })?;
    let store = builder
        .with_retry(retry)
        .build()
        .map_err(|e| StoreError::new(url, format!("invalid configuration: {e}")))?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "object-store-gcp"))]
fn gcp(
    url: &str,
    _bucket: &str,
    _options: impl Iterator<Item = (String, String)>,
) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Err(StoreError::new(
        url,
        "Google Cloud Storage needs the feature `object-store-gcp` of tune-runtime; enable it \
         (`features = [\"object-store-gcp\"]`)",
    ))
}

/// Checkpoints in an object store: S3 or an S3-compatible server (MinIO, Ceph, moto),
/// Azure Blob Storage (feature `object-store-azure`) or Google Cloud Storage (feature
/// `object-store-gcp`) through [`from_url`](Self::from_url), any other
/// [`object_store::ObjectStore`] (in memory, local files, ...) through [`new`](Self::new). Set it with
/// [`Tuner::checkpoint_store`](crate::Tuner::checkpoint_store); processes on other machines
/// with the same URL share the checkpoints, whatever their local directories.
///
/// Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT`, ...; `AZURE_STORAGE_ACCOUNT_NAME`,
/// `AZURE_STORAGE_ACCOUNT_KEY`, ...; `GOOGLE_APPLICATION_CREDENTIALS`, ...) or from the
/// options, and are never written to the journal, the logs or error messages.
///
/// ```
/// use tune_runtime::storage::ObjectStoreCheckpoints;
/// let store = ObjectStoreCheckpoints::from_url(
///     "s3://my-bucket/experiments",
///     [("endpoint", "http://127.0.0.1:9000"), ("region", "us-east-1")],
/// )?;
/// assert_eq!(store.url(), "s3://my-bucket/experiments");
/// # Ok::<(), tune_runtime::storage::StoreError>(())
/// ```
pub struct ObjectStoreCheckpoints {
    store: Arc<dyn ObjectStore>,
    url: String,
    /// What store error messages end with: where to look.
    hint: &'static str,
    prefix: ObjPath,
    runtime: tokio::runtime::Runtime,
    /// Local scratch (`scratch/`) and download cache (`cache/`) directories.
    local: tempfile::TempDir,
    experiment_dir: Mutex<Option<PathBuf>>,
    next: AtomicU64,
}

impl std::fmt::Debug for ObjectStoreCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the store itself: its configuration may hold credentials.
        f.debug_struct("ObjectStoreCheckpoints")
            .field("url", &self.url)
            .field("local", &self.local.path())
            .finish_non_exhaustive()
    }
}

impl ObjectStoreCheckpoints {
    /// A store from a URL and options; the environment fills what the options do not give.
    ///
    /// - `s3://bucket/prefix` (or `s3a://`): S3 or an S3-compatible server. Options: every
    ///   key of [`AmazonS3ConfigKey`] (`endpoint`, `region`, `access_key_id`,
    ///   `secret_access_key`, `session_token`, `allow_http`, `virtual_hosted_style_request`,
    ///   ...); the environment's `AWS_*` variables. An `endpoint` given as `http://...`
    ///   allows plain HTTP.
    /// - `az://container/prefix` (or `azure://`, `abfs://`, `abfss://`, also as
    ///   `abfss://container@account.dfs.core.windows.net/prefix`), with the feature
    ///   `object-store-azure`: Azure Blob Storage or Azurite. Options: every key of
    ///   `object_store::azure::AzureConfigKey` (`account_name`, `access_key`, `sas_token`,
    ///   `client_id`, `client_secret`, `tenant_id`, `endpoint`, `use_emulator`, ...); the
    ///   environment's `AZURE_*` variables.
    /// - `gs://bucket/prefix`, with the feature `object-store-gcp`: Google Cloud Storage.
    ///   Options: every key of `object_store::gcp::GoogleConfigKey` (`service_account`,
    ///   `service_account_key`, `application_credentials`, `base_url`, ...); the
    ///   environment's `GOOGLE_*` variables (`GOOGLE_APPLICATION_CREDENTIALS`, ...).
    ///
    /// Every store also takes `max_retries` and `retry_timeout_s`, for how long a failing
    /// request is retried (with exponential backoff; by default 10 times within 180 s).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the URL is not one of these (or names a store whose feature is
    /// off: the message names the feature), names no bucket or container, an option is
    /// unknown or its value is invalid. Nothing is contacted here: the run checks that the
    /// store can be read and written before its first trial.
    pub fn from_url<K, V>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, StoreError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let bad = |message: String| StoreError::new(url, message);
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        // `container@account.host` for Azure's `abfss://` form: the prefix is the path.
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let options = options.into_iter().map(|(k, v)| (k.as_ref().to_string(), v.into()));
        let store: Arc<dyn ObjectStore> = match scheme {
            "s3" | "s3a" => {
                if bucket.is_empty() {
                    return Err(bad(
                        "the URL names no bucket; write it `s3://bucket/prefix`".into()
                    ));
                }
                Arc::new(s3(url, bucket, options)?)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                if bucket.is_empty() || bucket.starts_with('@') {
                    return Err(bad(format!(
                        "the URL names no container; write it `{scheme}://container/prefix`"
                    )));
                }
                azure(url, options)?
            }
            "gs" => {
                if bucket.is_empty() {
                    return Err(bad(
                        "the URL names no bucket; write it `gs://bucket/prefix`".into()
                    ));
                }
                gcp(url, bucket, options)?
            }
            _ => {
                return Err(bad(format!(
                    "the URL must look like `s3://bucket/prefix`, `az://container/prefix` \
                     (feature `object-store-azure`) or `gs://bucket/prefix` (feature \
                     `object-store-gcp`){}; for another kind of store, build an \
                     `object_store::ObjectStore` and use `ObjectStoreCheckpoints::new`",
                    if scheme.is_empty() { String::new() } else { format!(", not `{scheme}://`") }
                )));
            }
        };
        let hint = match scheme {
            "s3" | "s3a" => S3_HINT,
            "gs" => GCS_HINT,
            _ => AZURE_HINT,
        };
        Self::with_hint(store, prefix, url, hint)
    }

    /// Checkpoints in any object store, under `prefix` (`""` for the root); `url` names it
    /// in messages (without credentials).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tune_runtime::storage::ObjectStoreCheckpoints;
    /// use tune_runtime::object_store::memory::InMemory;
    /// let store = ObjectStoreCheckpoints::new(Arc::new(InMemory::new()), "exp", "memory://exp")?;
    /// # Ok::<(), tune_runtime::storage::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the local scratch directory or the runtime that drives the
    /// store's requests cannot be created.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: impl Into<String>,
    ) -> Result<Self, StoreError> {
        Self::with_hint(store, prefix, url, HINT)
    }

    /// [`new`](Self::new) with `hint` (where to look) ending every store error message.
    fn with_hint(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        url: impl Into<String>,
        hint: &'static str,
    ) -> Result<Self, StoreError> {
        let url = url.into();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tune-object-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::new(&url, format!("cannot start its I/O threads: {e}")))?;
        let local =
            tempfile::Builder::new().prefix("tune-object-store-").tempdir().map_err(|e| {
                StoreError::new(&url, format!("cannot create a local scratch directory: {e}"))
            })?;
        Ok(ObjectStoreCheckpoints {
            store,
            prefix: ObjPath::from(prefix.trim_matches('/')),
            url,
            hint,
            runtime,
            local,
            experiment_dir: Mutex::new(None),
            next: AtomicU64::new(0),
        })
    }

    /// The store's URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store error (which stops a run) about `what`.
    fn failed(&self, what: impl std::fmt::Display, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(StoreError::new(&self.url, format!("{what} failed: {e}; {}", self.hint)))
    }

    /// The path of `dir` relative to the experiment directory, `/`-separated.
    fn relative(&self, dir: &Path) -> io::Result<String> {
        let guard = self.experiment_dir.lock().unwrap_or_else(|e| e.into_inner());
        let root = guard.as_ref().ok_or_else(|| {
            io::Error::other(StoreError::new(
                &self.url,
                "used before a run attached it to its experiment directory",
            ))
        })?;
        // Named with the experiment's name, as its directory is: experiments with the same
        // prefix do not mix.
        let name = root.file_name().map(Path::new).unwrap_or(Path::new(""));
        let rel = dir.strip_prefix(root).map(|rel| name.join(rel)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "checkpoint `{}` is outside the experiment directory `{}`",
                    dir.display(),
                    root.display()
                ),
            )
        })?;
        let parts: Vec<String> =
            rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if parts.is_empty() || !manifest::is_plain_relative(&parts.join("/")) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{}` is not a checkpoint directory of the experiment", dir.display()),
            ));
        }
        Ok(parts.join("/"))
    }

    /// The object of file `file` (a `/`-separated path) of the checkpoint at `rel`.
    fn object(&self, rel: &str, file: &str) -> ObjPath {
        let mut path = self.prefix.clone();
        for part in rel.split('/').chain(file.split('/')) {
            path = path.join(part);
        }
        path
    }

    /// The prefix of the checkpoint at `rel`.
    fn base(&self, rel: &str) -> ObjPath {
        let mut path = self.prefix.clone();
        for part in rel.split('/') {
            path = path.join(part);
        }
        path
    }

    /// A fresh local path under `local/<kind>/`.
    fn fresh(&self, kind: &str) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.local.path().join(kind).join(format!("{n:06}"))
    }

    /// Uploads one local file to `location` (multipart when large).
    async fn upload(&self, file: PathBuf, location: ObjPath) -> io::Result<()> {
        let len = fs::metadata(&file)?.len();
        let what = || format!("uploading `{location}`");
        if len <= PART_SIZE as u64 {
            let bytes = fs::read(&file)?;
            self.store
                .put(&location, PutPayload::from(bytes))
                .await
                .map_err(|e| self.failed(what(), e))?;
            return Ok(());
        }
        let upload =
            self.store.put_multipart(&location).await.map_err(|e| self.failed(what(), e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut reader = fs::File::open(&file)?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = read_full(&mut reader, &mut buf)?;
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(CONCURRENCY).await {
                return Err(self.failed(what(), e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| self.failed(what(), e))?;
        Ok(())
    }

    /// Downloads `location` into the local file `file`. A missing object is a checkpoint
    /// problem (`NotFound`), not the store's.
    async fn download(&self, location: ObjPath, file: PathBuf) -> io::Result<()> {
        let what = || format!("downloading `{location}`");
        let result = match self.store.get(&location).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{location}` is missing from `{}`", self.url),
                ));
            }
            Err(e) => return Err(self.failed(what(), e)),
        };
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = io::BufWriter::with_capacity(1 << 20, fs::File::create(&file)?);
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk.map_err(|e| self.failed(what(), e))?)?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    /// Deletes every object under `base`, its manifest first.
    async fn delete_prefix(&self, base: &ObjPath) -> io::Result<()> {
        let manifest = base.clone().join(MANIFEST_FILE);
        match self.store.delete(&manifest).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed(format!("deleting `{manifest}`"), e)),
        }
        let listed = self.store.list(Some(base)).map_ok(|meta| meta.location).boxed();
        let deleted: Vec<_> = self.store.delete_stream(listed).collect().await;
        for result in deleted {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed(format!("deleting `{base}`"), e)),
            }
        }
        Ok(())
    }

    async fn commit_async(&self, scratch: &Path, rel: &str) -> io::Result<()> {
        let bytes = manifest::read_small(&scratch.join(MANIFEST_FILE))?;
        let files = manifest::listed(&bytes).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", scratch.display()))
        })?;
        let base = self.base(rel);
        // The old checkpoint at this place stops existing before any of its files change.
        let manifest_object = self.object(rel, MANIFEST_FILE);
        match self.store.delete(&manifest_object).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failed(format!("replacing `{manifest_object}`"), e)),
        }
        futures_util::stream::iter(
            files.iter().map(|(file, _)| self.upload(scratch.join(file), self.object(rel, file))),
        )
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
        self.store
            .put(&manifest_object, PutPayload::from(bytes))
            .await
            .map_err(|e| self.failed(format!("uploading `{manifest_object}`"), e))?;
        // Files of a checkpoint this one replaced that it does not have: no reader looks at
        // them (a reader reads what the manifest lists); they only take space.
        let mut stale = Vec::new();
        let mut listed = self.store.list(Some(&base));
        while let Some(meta) = listed.next().await {
            let Ok(meta) = meta else { break };
            let known = meta.location == manifest_object
                || files.iter().any(|(file, _)| self.object(rel, file) == meta.location);
            if !known {
                stale.push(meta.location);
            }
        }
        for location in stale {
            let _ = self.store.delete(&location).await;
        }
        Ok(())
    }

    async fn open_async(&self, rel: &str) -> io::Result<PathBuf> {
        let manifest_object = self.object(rel, MANIFEST_FILE);
        let bytes = match self.store.get(&manifest_object).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|e| self.failed(format!("downloading `{manifest_object}`"), e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "checkpoint `{rel}` is not in `{}`: it has no `{MANIFEST_FILE}` (its \
                         upload did not complete, or it was deleted)",
                        self.url
                    ),
                ));
            }
            Err(e) => return Err(self.failed(format!("downloading `{manifest_object}`"), e)),
        };
        let corrupt = |e: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("checkpoint `{rel}` in `{}`: {e}", self.url),
            )
        };
        if bytes.len() as u64 > manifest::MAX_MANIFEST_BYTES {
            return Err(corrupt("its manifest is too large".into()));
        }
        let files = manifest::listed(&bytes).map_err(corrupt)?;
        // The cache holds each version of a checkpoint under the checksum of its manifest,
        // so a copy in use is never replaced under its reader.
        let version = format!("{:08x}-{}", crc32fast::hash(&bytes), bytes.len());
        let target = self.local.path().join("cache").join(rel).join(version);
        if target.is_dir() {
            return Ok(target);
        }
        let tmp = self.fresh("download");
        fs::create_dir_all(&tmp)?;
        let fetched = async {
            fs::write(tmp.join(MANIFEST_FILE), &bytes)?;
            futures_util::stream::iter(
                files.iter().map(|(file, _)| self.download(self.object(rel, file), tmp.join(file))),
            )
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
            manifest::verify(&tmp, &[])
                .map_err(|e| corrupt(format!("a downloaded file does not match the manifest: {e}")))
        }
        .await;
        if let Err(e) = fetched {
            let _ = fs::remove_dir_all(&tmp);
            return Err(match e.kind() {
                io::ErrorKind::NotFound if !crate::checkpoint::is_remote(&e) => {
                    corrupt(e.to_string())
                }
                _ => e,
            });
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::rename(&tmp, &target).is_err() {
            // Another thread put the same version in place first.
            let _ = fs::remove_dir_all(&tmp);
            if !target.is_dir() {
                return Err(io::Error::other(format!(
                    "cannot place checkpoint `{rel}` in the cache `{}`",
                    target.display()
                )));
            }
        }
        Ok(target)
    }
}

/// Reads until `buf` is full or the file ends; returns how much it read.
fn read_full(reader: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl CheckpointStore for ObjectStoreCheckpoints {
    fn begin(&self, _dir: &Path) -> io::Result<PathBuf> {
        let scratch = self.fresh("scratch");
        fs::create_dir_all(&scratch)?;
        Ok(scratch)
    }

    fn commit(&self, scratch: &Path, dir: &Path) -> io::Result<()> {
        let rel = self.relative(dir)?;
        let result = self.runtime.block_on(self.commit_async(scratch, &rel));
        let _ = fs::remove_dir_all(scratch);
        result
    }

    fn delete(&self, dir: &Path) -> io::Result<()> {
        let rel = self.relative(dir)?;
        let _ = fs::remove_dir_all(self.local.path().join("cache").join(&rel));
        self.runtime.block_on(self.delete_prefix(&self.base(&rel)))
    }

    fn open(&self, dir: &Path) -> io::Result<PathBuf> {
        let rel = self.relative(dir)?;
        self.runtime.block_on(self.open_async(&rel))
    }

    fn attach(&self, experiment_dir: &Path) -> io::Result<()> {
        *self.experiment_dir.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(experiment_dir.to_path_buf());
        // A bucket that is missing, or credentials that cannot write, stop the run before
        // its first trial rather than at its first checkpoint.
        let probe = self.prefix.clone().join(".tune_probe");
        self.runtime.block_on(async {
            self.store
                .put(&probe, PutPayload::from_static(b"tune"))
                .await
                .map_err(|e| self.failed(format!("writing `{probe}`"), e))?;
            self.store
                .delete(&probe)
                .await
                .map_err(|e| self.failed(format!("deleting `{probe}`"), e))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn checkpoint(scratch: &Path, files: &[(&str, &[u8])]) {
        for (name, bytes) in files {
            let path = scratch.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, bytes).unwrap();
        }
        manifest::write(scratch, false).unwrap();
    }

    fn setup() -> (Arc<InMemory>, ObjectStoreCheckpoints, tempfile::TempDir) {
        let memory = Arc::new(InMemory::new());
        let store = ObjectStoreCheckpoints::new(memory.clone(), "runs/", "memory://runs").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        store.attach(&tmp.path().join("exp")).unwrap();
        (memory, store, tmp)
    }

    fn keys(memory: &InMemory) -> Vec<String> {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut keys: Vec<String> = rt
            .block_on(memory.list(None).map_ok(|m| m.location.to_string()).try_collect::<Vec<_>>())
            .unwrap();
        keys.sort();
        keys
    }

    #[test]
    fn round_trip_replace_and_delete() {
        let (memory, store, exp) = setup();
        let dir = exp.path().join("exp/trial_a=1,b=2/checkpoint_000001");
        let scratch = store.begin(&dir).unwrap();
        checkpoint(&scratch, &[("state.json", b"{}"), ("sub/w.bin", &[7u8; 100])]);
        store.commit(&scratch, &dir).unwrap();
        assert!(!scratch.exists() && !dir.exists(), "nothing stays in the experiment directory");
        assert_eq!(
            keys(&memory),
            [
                "runs/exp/trial_a=1,b=2/checkpoint_000001/.tune_manifest.json",
                "runs/exp/trial_a=1,b=2/checkpoint_000001/state.json",
                "runs/exp/trial_a=1,b=2/checkpoint_000001/sub/w.bin",
            ]
        );
        let local = store.open(&dir).unwrap();
        assert_eq!(fs::read(local.join("sub/w.bin")).unwrap(), [7u8; 100]);
        manifest::verify(&local, &["state.json"]).unwrap();

        // Replaced by a checkpoint without `sub/w.bin`: its old file goes, the new state is read.
        let scratch = store.begin(&dir).unwrap();
        checkpoint(&scratch, &[("state.json", b"{\"v\":2}")]);
        store.commit(&scratch, &dir).unwrap();
        assert_eq!(keys(&memory).len(), 2);
        let again = store.open(&dir).unwrap();
        assert_ne!(again, local, "a new version gets a new cache directory");
        assert_eq!(fs::read(again.join("state.json")).unwrap(), b"{\"v\":2}");

        store.delete(&dir).unwrap();
        assert!(keys(&memory).is_empty());
        let err = store.open(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(err.to_string().contains("has no `.tune_manifest.json`"), "{err}");
    }

    #[test]
    fn corrupt_and_partial_checkpoints_are_refused() {
        let (memory, store, exp) = setup();
        let dir = exp.path().join("exp/t/checkpoint_000002");
        let scratch = store.begin(&dir).unwrap();
        checkpoint(&scratch, &[("state.json", b"{\"a\":1}")]);
        store.commit(&scratch, &dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let state = ObjPath::from("runs/exp/t/checkpoint_000002/state.json");
        rt.block_on(memory.put(&state, PutPayload::from_static(b"{\"a\":2}"))).unwrap();
        let err = store.open(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string().contains("state.json") && err.to_string().contains("corrupt"),
            "{err}"
        );
        assert!(
            !crate::checkpoint::is_remote(&err),
            "a corrupt checkpoint is not the store's failure"
        );

        // Files without their manifest: an upload that stopped half-way.
        let manifest = ObjPath::from("runs/exp/t/checkpoint_000002/.tune_manifest.json");
        rt.block_on(memory.delete(&manifest)).unwrap();
        let err = store.open(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn urls_and_options_are_checked() {
        let err = ObjectStoreCheckpoints::from_url("ftp://b/p", [("region", "x")]).unwrap_err();
        assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
        assert!(err.to_string().contains("not `ftp://`"), "{err}");
        let err = ObjectStoreCheckpoints::from_url("my-bucket", [("region", "x")]).unwrap_err();
        assert!(err.to_string().contains("`az://container/prefix`"), "{err}");
        let err = ObjectStoreCheckpoints::from_url("s3:///p", [("region", "x")]).unwrap_err();
        assert!(err.to_string().contains("names no bucket"), "{err}");
        let err = ObjectStoreCheckpoints::from_url("s3://b/p", [("endpiont", "x")]).unwrap_err();
        assert!(err.to_string().contains("unknown option `endpiont`"), "{err}");
        let err = ObjectStoreCheckpoints::from_url("s3://b/p", [("max_retries", "x")]).unwrap_err();
        assert!(err.to_string().contains("`max_retries` must be a whole number"), "{err}");
        let store = ObjectStoreCheckpoints::from_url(
            "s3://b/p/q",
            [
                ("endpoint", "http://127.0.0.1:1"),
                ("access_key_id", "id"),
                ("secret_access_key", "hush"),
            ],
        )
        .unwrap();
        assert_eq!(store.prefix.as_ref(), "p/q");
        assert!(!format!("{store:?}").contains("hush"), "Debug shows no credentials");
    }

    /// The message of a failed `from_url`.
    fn refused(url: &str, options: &[(&str, &str)]) -> String {
        ObjectStoreCheckpoints::from_url(url, options.iter().copied()).unwrap_err().to_string()
    }

    #[cfg(not(feature = "object-store-azure"))]
    #[test]
    fn azure_urls_name_their_feature_when_it_is_off() {
        for url in ["az://c/p", "azure://c/p", "abfss://c/p"] {
            let err = refused(url, &[]);
            assert!(err.contains("feature `object-store-azure`"), "{err}");
        }
    }

    #[cfg(not(feature = "object-store-gcp"))]
    #[test]
    fn gcs_urls_name_their_feature_when_it_is_off() {
        let err = refused("gs://b/p", &[]);
        assert!(err.contains("feature `object-store-gcp`"), "{err}");
    }

    #[cfg(feature = "object-store-azure")]
    #[test]
    fn azure_urls_and_options_are_checked() {
        // Azurite's well-known development key (base64), not a secret.
        let key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/\
                   KBHBeksoGMGw==";
        let options = [
            ("account_name", "devstoreaccount1"),
            ("access_key", key),
            ("endpoint", "http://127.0.0.1:1/devstoreaccount1"),
            ("max_retries", "1"),
        ];
        for (url, prefix) in [
            ("az://box/runs/a", "runs/a"),
            ("azure://box/runs", "runs"),
            ("abfs://box", ""),
            ("abfss://box@devstoreaccount1.dfs.core.windows.net/runs/", "runs"),
        ] {
            let store = ObjectStoreCheckpoints::from_url(url, options).unwrap();
            assert_eq!((store.url(), store.prefix.as_ref()), (url, prefix));
            assert_eq!(store.hint, AZURE_HINT);
            let shown = format!("{store:?}");
            assert!(!shown.contains("Eby8") && shown.contains(url), "{shown}");
        }
        let err = refused("az:///runs", &options);
        assert!(err.contains("names no container; write it `az://container/prefix`"), "{err}");
        let err = refused("az://box/runs", &[("acount_name", "x")]);
        assert!(err.contains("unknown option `acount_name`; use `account_name`"), "{err}");
        let err = refused("az://box/runs", &[("retry_timeout_s", "soon")]);
        assert!(err.contains("`retry_timeout_s` must be a number of seconds"), "{err}");
        // A container name with dots is refused by object_store's URL parsing.
        let err = refused("az://a.b/runs", &options);
        assert!(err.contains("invalid configuration"), "{err}");
        // Neither an account in the options nor in the environment (`AZURE_*`).
        if std::env::vars().all(|(k, _)| !k.starts_with("AZURE_")) {
            let err = refused("az://box/runs", &[]);
            assert!(err.contains("invalid configuration") && err.contains("ccount"), "{err}");
        }
    }

    #[cfg(feature = "object-store-gcp")]
    #[test]
    fn gcs_urls_and_options_are_checked() {
        let options =
            [("bearer_token", "hush"), ("base_url", "http://127.0.0.1:1"), ("max_retries", "1")];
        let store = ObjectStoreCheckpoints::from_url("gs://bucket/runs/a/", options).unwrap();
        assert_eq!((store.url(), store.prefix.as_ref()), ("gs://bucket/runs/a/", "runs/a"));
        assert_eq!(store.hint, GCS_HINT);
        assert!(!format!("{store:?}").contains("hush"), "Debug shows no credentials");
        let err = refused("gs:///runs", &options);
        assert!(err.contains("names no bucket; write it `gs://bucket/prefix`"), "{err}");
        let err = refused("gs://bucket/runs", &[("service_acount", "x")]);
        assert!(err.contains("unknown option `service_acount`; use `service_account`"), "{err}");
        let err = refused("gs://bucket/runs", &[("max_retries", "-1")]);
        assert!(err.contains("`max_retries` must be a whole number"), "{err}");
        // A service account key that is no key.
        let err = refused("gs://bucket/runs", &[("service_account_key", "{}")]);
        assert!(err.contains("invalid configuration"), "{err}");
    }

    #[test]
    fn unattached_or_outside_paths_are_errors() {
        let store =
            ObjectStoreCheckpoints::new(Arc::new(InMemory::new()), "", "memory://").unwrap();
        let err = store.open(Path::new("/x/checkpoint_1")).unwrap_err();
        assert!(err.to_string().contains("before a run attached it"), "{err}");
        store.attach(Path::new("/exp")).unwrap();
        let err = store.open(Path::new("/elsewhere/checkpoint_1")).unwrap_err();
        assert!(err.to_string().contains("outside the experiment directory"), "{err}");
    }
}
