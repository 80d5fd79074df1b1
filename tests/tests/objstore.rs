//! Checkpoints in an object store (`ObjectStoreCheckpoints`) against a real S3-compatible
//! server: moto's, started on loopback by `tune_tests::s3` (or `TUNE_TEST_S3_ENDPOINT`).
//! Without moto every test says `SKIPPED`; with `CI` set they fail instead. With the
//! feature `object-store-azure`, the main one also runs against Azurite (`az://` URLs,
//! `tune_tests::azurite`), under the same rule.
//!
//! The tests run one at a time (they share one server and the trainable's counters).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tune_runtime::prelude::*;
use tune_runtime::{
    scheduler::{Mutation, PBT_LOG_FILE, Pbt, PbtLogEntry},
    storage::{CheckpointStore, MirroredCheckpoints, ObjectStoreCheckpoints, read_meta},
};
use tune_tests::relay::Relay;
use tune_tests::s3::S3Server;

search_space! {
    pub struct Lr {
        lr: f64 = uniform(0.1, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Loss {
    loss: f64,
    /// The instance's own step count (checkpointed).
    steps: f64,
}

/// Failures `step` still makes at iteration 5 (each one once).
static FAILS_LEFT: AtomicU64 = AtomicU64::new(0);
/// Checkpoints restored, and the iteration of the last one.
static RESTORES: AtomicU64 = AtomicU64::new(0);
static RESTORED_AT: AtomicU64 = AtomicU64::new(0);
/// While set, the first step at iteration 4 stops the S3 server of `DOOMED`.
static KILL_SERVER: AtomicBool = AtomicBool::new(false);
static DOOMED: Mutex<Option<S3Server>> = Mutex::new(None);
/// While set, the first step at iteration 4 starts an outage of `RELAY` of `OUTAGE`.
static CUT_RELAY: AtomicBool = AtomicBool::new(false);
static RELAY: Mutex<Option<Relay>> = Mutex::new(None);
const OUTAGE: Duration = Duration::from_secs(3);

/// A trainable with weights of its own beside the generated state (`save_files`).
#[trainable(config = Lr, metrics = Loss, test = false)]
pub struct Weights {
    steps: u64,
    #[checkpoint(skip)]
    lr: f64,
}

impl Trainable for Weights {
    fn setup(config: &Lr, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Weights { steps: 0, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Loss> {
        self.steps += 1;
        if self.steps == 5
            && FAILS_LEFT
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(TrainError::msg("injected failure at iteration 5"));
        }
        if self.steps == 4 && KILL_SERVER.swap(false, Ordering::SeqCst) {
            drop(DOOMED.lock().unwrap().take());
        }
        if self.steps == 4
            && CUT_RELAY.swap(false, Ordering::SeqCst)
            && let Some(relay) = RELAY.lock().unwrap().as_ref()
        {
            relay.outage(OUTAGE);
        }
        Ok(Loss { loss: self.lr / self.steps as f64, steps: self.steps as f64 })
    }

    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        std::fs::write(dir.join("weights.bin"), self.steps.to_le_bytes())?;
        Ok(())
    }

    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        let bytes = std::fs::read(dir.join("weights.bin"))?;
        if bytes != self.steps.to_le_bytes() {
            return Err(TrainError::msg("weights.bin does not match the state"));
        }
        RESTORES.fetch_add(1, Ordering::SeqCst);
        RESTORED_AT.store(self.steps, Ordering::SeqCst);
        Ok(())
    }
}

/// One test at a time (whatever its server), with the trainable's switches off.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    FAILS_LEFT.store(0, Ordering::SeqCst);
    KILL_SERVER.store(false, Ordering::SeqCst);
    CUT_RELAY.store(false, Ordering::SeqCst);
    guard
}

/// One test at a time, on one shared server (stopped when the test binary exits).
fn serial() -> (MutexGuard<'static, ()>, Option<&'static S3Server>) {
    static SERVER: std::sync::OnceLock<Option<S3Server>> = std::sync::OnceLock::new();
    let guard = one_at_a_time();
    let server = SERVER.get_or_init(S3Server::start).as_ref();
    if server.is_none() {
        tune_tests::s3::skipped("no S3 server (see the first SKIPPED line)");
    }
    (guard, server)
}

fn store(server: &S3Server, bucket: &str) -> ObjectStoreCheckpoints {
    ObjectStoreCheckpoints::from_url(&format!("s3://{bucket}/runs"), server.options()).unwrap()
}

fn weights(dir: &Path, name: &str) -> Tuner<Weights> {
    Tuner::<Weights>::new()
        .num_samples(2)
        .stop(Stop::iterations(6))
        .checkpoint_freq(2)
        .total_cpus(2.0)
        .local_dir(dir)
        .name(name)
        .seed(8)
        .verbose(0)
}

type Rows = Vec<(String, TrialStatus, Vec<(u64, f64)>)>;

fn rows(a: &Analysis<Lr, Loss>) -> Rows {
    a.trials()
        .iter()
        .map(|t| {
            let r = t.results().map(|r| (r.training_iteration(), r.get(Loss::LOSS)));
            (format!("{:?}", t.config()), t.status(), r.collect())
        })
        .collect()
}

/// Every `checkpoint_*` directory under `dir`.
fn local_checkpoints(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().unwrap().to_string_lossy().contains("checkpoint_") {
                    found.push(path.clone());
                }
                todo.push(path);
            }
        }
    }
    found
}

/// The key of a checkpoint file in the bucket (`runs/<trial dir>/checkpoint_<n>/<file>`).
fn key(exp: &Path, checkpoint: &Path, file: &str) -> String {
    let rel = checkpoint.strip_prefix(exp.parent().unwrap()).unwrap();
    format!("runs/{}/{file}", rel.to_string_lossy())
}

/// A trial's checkpoint ends up only in the store: a retry (`max_failures`) and a resume
/// (`resume_errored`) both restore it from there, and the runs give the results of a run
/// with local checkpoints and no failure. Another store with the same URL, attached to
/// another local directory (another machine), reads the same checkpoints.
#[test]
fn checkpoints_only_in_the_store_restore_on_retry_and_on_resume() {
    let (_serial, Some(server)) = serial() else { return };
    let bucket = server.new_bucket();
    restore_on_retry_and_on_resume(|| store(server, &bucket));
}

/// The test above with the stores `store` makes (all with the same URL), for every kind of
/// store.
fn restore_on_retry_and_on_resume(store: impl Fn() -> ObjectStoreCheckpoints) {
    let reference = tempfile::tempdir().unwrap();
    let expected = rows(&weights(reference.path(), "exp").run().unwrap());

    let dir = tempfile::tempdir().unwrap();
    FAILS_LEFT.store(1, Ordering::SeqCst);
    let before = RESTORES.load(Ordering::SeqCst);
    let a = weights(dir.path(), "retry").max_failures(1).checkpoint_store(store()).run().unwrap();
    assert_eq!(rows(&a), expected, "the retry continued from the store's checkpoint");
    assert_eq!(RESTORES.load(Ordering::SeqCst), before + 1);
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 4);
    assert!(local_checkpoints(dir.path()).is_empty(), "{:?}", local_checkpoints(dir.path()));

    // A trial errors at iteration 5 (no retries), and a resume continues it from its
    // checkpoint at 4, read from the store by a new store object.
    FAILS_LEFT.store(1, Ordering::SeqCst);
    let b = weights(dir.path(), "resume").checkpoint_store(store()).run().unwrap();
    assert_eq!(b.count(TrialStatus::Error), 1);
    let before = RESTORES.load(Ordering::SeqCst);
    let c = weights(dir.path(), "resume")
        .resume(true)
        .resume_errored(true)
        .checkpoint_store(store())
        .run()
        .unwrap();
    assert_eq!(rows(&c), expected, "the resume continued from the store's checkpoint");
    assert_eq!(RESTORES.load(Ordering::SeqCst), before + 1);
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 4);
    assert!(local_checkpoints(dir.path()).is_empty());

    // Another machine: another local directory, the same objects.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = store();
    other.attach(&elsewhere.path().join("resume")).unwrap();
    for t in c.trials() {
        let last = t.checkpoints().last().unwrap().path.clone();
        let rel = last.strip_prefix(dir.path()).unwrap();
        let local = other.open(&elsewhere.path().join(rel)).unwrap();
        let meta = read_meta(&local).unwrap();
        assert_eq!((meta.iteration, meta.trial.as_deref()), (6, Some(&*t.id().to_string())));
        assert_eq!(std::fs::read(local.join("weights.bin")).unwrap(), 6u64.to_le_bytes());
    }
}

/// The same against Azurite (npm's Azure blob server) through an `az://` URL: checkpoints
/// are published to the container, restored on a retry and on a resume and by another
/// machine, and verified against their manifests; a run that keeps one checkpoint per
/// trial deletes the older ones' blobs, and deleting a checkpoint removes all of its blobs.
#[cfg(feature = "object-store-azure")]
#[test]
fn azure_checkpoints_are_published_restored_and_deleted() {
    use tune_tests::azurite::Azurite;
    static SERVER: std::sync::OnceLock<Option<Azurite>> = std::sync::OnceLock::new();
    let _serial = one_at_a_time();
    let Some(server) = SERVER.get_or_init(Azurite::start).as_ref() else {
        tune_tests::s3::skipped("no Azurite (see the first SKIPPED line)");
        return;
    };
    let container = server.new_container();
    let url = format!("az://{container}/runs");
    let store = || ObjectStoreCheckpoints::from_url(&url, server.options()).unwrap();
    restore_on_retry_and_on_resume(store);
    let keys = server.keys(&container);
    let last = keys.iter().filter(|k| k.starts_with("runs/resume/Weights_"));
    assert_eq!(
        last.filter(|k| k.ends_with("/checkpoint_000006/.tune_manifest.json")).count(),
        2,
        "{keys:?}"
    );

    // Deleted by the run: one checkpoint kept per trial, the others' blobs go.
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("kept");
    let a = weights(dir.path(), "kept")
        .keep_checkpoints_num(1)
        .checkpoint_store(store())
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 2);
    let kept: Vec<PathBuf> = a.trials().iter().map(|t| t.checkpoints()[0].path.clone()).collect();
    assert!(kept.iter().all(|ck| ck.ends_with("checkpoint_000006")), "{kept:?}");
    let keys: Vec<String> =
        server.keys(&container).into_iter().filter(|k| k.starts_with("runs/kept/")).collect();
    for ck in &kept {
        for file in [".tune_manifest.json", "weights.bin"] {
            assert!(keys.contains(&key(&exp, ck, file)), "{file} of {ck:?} in {keys:?}");
        }
    }
    let prefixes: Vec<String> = kept.iter().map(|ck| key(&exp, ck, "")).collect();
    assert!(
        keys.iter().all(|k| prefixes.iter().any(|p| k.starts_with(p))),
        "only the kept checkpoints stay: {keys:?}"
    );

    // Deleted through another store object (another machine): every blob of it goes.
    let other = store();
    other.attach(&exp).unwrap();
    other.delete(&kept[0]).unwrap();
    let keys = server.keys(&container);
    assert!(!keys.iter().any(|k| k.starts_with(&prefixes[0])), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with(&prefixes[1])), "{keys:?}");
    let err = other.open(&kept[0]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert!(other.open(&kept[1]).unwrap().join("weights.bin").is_file());
}

/// Runs an experiment in which trial 0 or 1 errors at iteration 5 with checkpoints at 2
/// and 4, and returns it with the errored trial's checkpoint at 4.
fn errored_run(server: &S3Server, bucket: &str, dir: &Path) -> (Analysis<Lr, Loss>, PathBuf) {
    errored_run_with(dir, store(server, bucket))
}

fn errored_run_with(
    dir: &Path,
    checkpoints: impl CheckpointStore + 'static,
) -> (Analysis<Lr, Loss>, PathBuf) {
    FAILS_LEFT.store(1, Ordering::SeqCst);
    let a = weights(dir, "exp").checkpoint_store(checkpoints).run().unwrap();
    let t = a.errored_trials()[0];
    let ck4 = t.checkpoints().last().unwrap().path.clone();
    assert!(ck4.ends_with("checkpoint_000004"), "{}", ck4.display());
    (a, ck4)
}

/// An object changed in the store after its upload is caught by the manifest's checksum:
/// opening the checkpoint names the file, and a resume falls back to the older checkpoint.
#[test]
fn a_corrupted_object_is_detected_by_the_manifest() {
    let (_serial, Some(server)) = serial() else { return };
    let bucket = server.new_bucket();
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let (_, ck4) = errored_run(server, &bucket, dir.path());
    server.put_object(&bucket, &key(&exp, &ck4, "weights.bin"), &99u64.to_le_bytes());

    let reader = store(server, &bucket);
    reader.attach(&exp).unwrap();
    let err = reader.open(&ck4).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("weights.bin") && msg.contains("corrupt"), "{msg}");
    let ck2 = ck4.with_file_name("checkpoint_000002");
    reader.open(&ck2).unwrap();

    let c = weights(dir.path(), "exp")
        .resume(true)
        .resume_errored(true)
        .checkpoint_store(store(server, &bucket))
        .run()
        .unwrap();
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 2, "restored from the older checkpoint");
    assert_eq!(c.count(TrialStatus::Terminated), 2);
}

/// A checkpoint whose files are in the store but not its manifest (an upload that stopped
/// before its end) does not exist for a reader: it is never restored.
#[test]
fn a_partially_uploaded_checkpoint_is_never_restored() {
    let (_serial, Some(server)) = serial() else { return };
    let bucket = server.new_bucket();
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let (_, ck4) = errored_run(server, &bucket, dir.path());
    server.delete_object(&bucket, &key(&exp, &ck4, ".tune_manifest.json"));
    let keys = server.keys(&bucket);
    assert!(keys.contains(&key(&exp, &ck4, "weights.bin")), "the files are there: {keys:?}");

    let reader = store(server, &bucket);
    reader.attach(&exp).unwrap();
    let err = reader.open(&ck4).unwrap_err();
    assert!(err.to_string().contains("has no `.tune_manifest.json`"), "{err}");

    let before = RESTORES.load(Ordering::SeqCst);
    let c = weights(dir.path(), "exp")
        .resume(true)
        .resume_errored(true)
        .checkpoint_store(store(server, &bucket))
        .run()
        .unwrap();
    assert_eq!(RESTORES.load(Ordering::SeqCst), before + 1);
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 2, "restored from the complete checkpoint");
    assert_eq!(c.count(TrialStatus::Terminated), 2);
}

/// `MirroredCheckpoints` keeps each checkpoint on the local disk and in the bucket: with
/// the local copies gone (a lost machine), a resume restores from the bucket.
#[test]
fn mirrored_checkpoints_are_local_and_in_the_store() {
    let (_serial, Some(server)) = serial() else { return };
    let bucket = server.new_bucket();
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("exp");
    let mirrored = || MirroredCheckpoints::new(store(server, &bucket));
    let (_, ck4) = errored_run_with(dir.path(), mirrored());
    assert!(ck4.join("weights.bin").is_file(), "the local copy");
    assert!(server.keys(&bucket).contains(&key(&exp, &ck4, ".tune_manifest.json")));
    for local in local_checkpoints(dir.path()) {
        std::fs::remove_dir_all(local).unwrap();
    }
    let before = RESTORES.load(Ordering::SeqCst);
    let c = weights(dir.path(), "exp")
        .resume(true)
        .resume_errored(true)
        .checkpoint_store(mirrored())
        .run()
        .unwrap();
    assert_eq!(RESTORES.load(Ordering::SeqCst), before + 1);
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 4, "restored from the bucket's copy");
    assert_eq!(c.count(TrialStatus::Terminated), 2);
    assert!(ck4.with_file_name("checkpoint_000006").join("weights.bin").is_file());
}

search_space! {
    pub struct Rate {
        rate: f64 = uniform(0.01, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Acc {
    accuracy: f64,
    steps: f64,
}

#[trainable(config = Rate, metrics = Acc, test = false)]
pub struct Learner {
    steps: u64,
    acc: f64,
    #[checkpoint(skip)]
    rate: f64,
}

impl Trainable for Learner {
    fn setup(config: &Rate, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Learner { steps: 0, acc: 0.0, rate: config.rate })
    }

    fn step(&mut self) -> TrainResult<Acc> {
        self.steps += 1;
        self.acc += self.rate * (1.0 - self.acc) * 0.1;
        Ok(Acc { accuracy: self.acc, steps: self.steps as f64 })
    }
}

/// PBT's exploits copy the source's checkpoint to the target through the store: the
/// target continues from the source's state, and the copy is a checkpoint of the target
/// in the bucket (nothing on the local disk).
#[test]
fn pbt_exploits_copy_checkpoints_through_the_store() {
    let (_serial, Some(server)) = serial() else { return };
    let bucket = server.new_bucket();
    let dir = tempfile::tempdir().unwrap();
    let pbt = Pbt::builder(Acc::ACCURACY, Mode::Max)
        .perturbation_interval(2.0)
        .quantile_fraction(0.25)
        .mutate("rate", Mutation::perturb())
        .build()
        .unwrap();
    let a = Tuner::<Learner>::new()
        .num_samples(4)
        .scheduler(pbt)
        .stop(Stop::iterations(12))
        .total_cpus(4.0)
        .max_concurrent_trials(2)
        .local_dir(dir.path())
        .name("pbt")
        .seed(21)
        .verbose(0)
        .checkpoint_store(store(server, &bucket))
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 4);
    let exp = dir.path().join("pbt");
    let entries: Vec<PbtLogEntry> = std::fs::read_to_string(exp.join(PBT_LOG_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!entries.is_empty(), "the worst trial exploits at the first boundaries");
    assert!(local_checkpoints(dir.path()).is_empty());
    let reader = store(server, &bucket);
    reader.attach(&exp).unwrap();
    let mut seen = 0;
    for e in &entries {
        let t = &a.trials()[e.target as usize];
        // The target's first result after the exploit continues the source's step count.
        let next = t.results().find(|r| r.get(Acc::STEPS) == (e.source_iteration + 1) as f64);
        assert!(next.is_some(), "trial {} continued from the copied state: {e:?}", e.target);
        let copy = t.dir().unwrap().join(format!("checkpoint_{:06}", e.source_iteration));
        if let Ok(local) = reader.open(&copy) {
            // (A later checkpoint of the target at that iteration may have replaced it.)
            let meta = read_meta(&local).unwrap();
            assert_eq!(meta.trial.as_deref(), Some(&*t.id().to_string()), "{e:?}");
            seen += 1;
        }
    }
    assert!(seen > 0, "the copies are in the store");
}

/// A bucket that does not exist stops the run before its first trial, with an error that
/// names the store and says what to check (not a local directory error).
#[test]
fn a_missing_bucket_is_a_clear_error_before_the_first_trial() {
    let (_serial, Some(server)) = serial() else { return };
    let dir = tempfile::tempdir().unwrap();
    let missing =
        ObjectStoreCheckpoints::from_url("s3://no-such-bucket-tune/runs", server.options())
            .unwrap();
    let err = weights(dir.path(), "exp").checkpoint_store(missing).run().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::CheckpointStore { .. }), "{msg}");
    assert!(
        msg.contains("s3://no-such-bucket-tune/runs")
            && msg.contains("check that the bucket exists"),
        "{msg}"
    );
    assert!(!msg.contains("testing"), "no credentials in messages: {msg}");
}

/// The S3 server going away mid-run stops the run like a full disk: no trial is marked
/// ERROR, the error names the store and says to resume, and a resume (here on a new
/// server, the old one's objects lost with it) finishes every trial with the results of an
/// uninterrupted run.
#[test]
fn a_refused_upload_stops_the_run_resumably() {
    let (_serial, Some(server)) = serial() else { return };
    let reference = tempfile::tempdir().unwrap();
    let expected = rows(&weights(reference.path(), "exp").run().unwrap());
    let Some(doomed) = S3Server::start() else { return };
    let bucket = doomed.new_bucket();
    let url = format!("s3://{bucket}/runs");
    let checkpoints = ObjectStoreCheckpoints::from_url(&url, doomed.options()).unwrap();
    *DOOMED.lock().unwrap() = Some(doomed);
    KILL_SERVER.store(true, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let err = weights(dir.path(), "exp").checkpoint_store(checkpoints).run().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RunError::CheckpointStore { .. }), "{msg}");
    assert!(msg.contains(&url) && msg.contains(".resume(true)"), "{msg}");
    let partial = Analysis::<Lr, Loss>::from_dir(dir.path().join("exp")).unwrap();
    for t in partial.trials() {
        assert_ne!(t.status(), TrialStatus::Error, "{:?}", t.error());
        assert_ne!(t.status(), TrialStatus::Terminated, "stopped before its end");
    }
    let bucket = server.new_bucket();
    let a = weights(dir.path(), "exp")
        .resume(true)
        .checkpoint_store(store(server, &bucket))
        .run()
        .unwrap();
    assert_eq!(rows(&a), expected);
}

/// The S3 endpoint goes away mid-run as during a restart of a server that keeps its
/// objects (open connections reset, new ones refused for 3 s, then the same port again):
/// the checkpoint uploaded right after the outage began is retried until the server is
/// back, the run goes on to the end without an error, and nothing written is lost: the
/// retry of a trial that fails after the outage restores that checkpoint from the store,
/// and every result equals an uninterrupted run's.
#[test]
fn a_restart_of_the_store_is_retried_and_the_run_goes_on() {
    let (_serial, Some(server)) = serial() else { return };
    let reference = tempfile::tempdir().unwrap();
    let expected = rows(&weights(reference.path(), "exp").run().unwrap());
    let bucket = server.new_bucket();
    let relay = Relay::start(server.endpoint().trim_start_matches("http://")).unwrap();
    // Retries that outlast the outage (the shared server's options retry for 5 s only).
    let options: Vec<(&str, String)> = server
        .options()
        .into_iter()
        .map(|(k, v)| match k {
            "endpoint" => (k, relay.endpoint()),
            "max_retries" => (k, "20".to_string()),
            "retry_timeout_s" => (k, "120".to_string()),
            _ => (k, v),
        })
        .collect();
    let url = format!("s3://{bucket}/runs");
    let checkpoints = ObjectStoreCheckpoints::from_url(&url, options).unwrap();
    *RELAY.lock().unwrap() = Some(relay);
    CUT_RELAY.store(true, Ordering::SeqCst);
    FAILS_LEFT.store(1, Ordering::SeqCst);
    let before = RESTORES.load(Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let run = weights(dir.path(), "exp").max_failures(1).checkpoint_store(checkpoints).run();
    let relay = RELAY.lock().unwrap().take().unwrap();
    let a = run.expect("the run rides out the outage");
    assert_eq!(relay.outages(), 1, "the outage happened");
    assert!(relay.accepted() > 0);
    assert_eq!(rows(&a), expected);
    assert!(a.trials().iter().all(|t| t.status() == TrialStatus::Terminated));
    // The failure at iteration 5 went back to the checkpoint of iteration 4, uploaded
    // across the outage.
    assert_eq!(RESTORES.load(Ordering::SeqCst), before + 1);
    assert_eq!(RESTORED_AT.load(Ordering::SeqCst), 4);
    let keys = server.keys(&bucket);
    for t in a.trials() {
        let iterations: Vec<u64> = t.checkpoints().iter().map(|c| c.iteration).collect();
        assert_eq!(iterations, [2, 4, 6], "every checkpoint is recorded");
        for c in t.checkpoints() {
            let key = key(&dir.path().join("exp"), &c.path, ".tune_manifest.json");
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
    }
}
