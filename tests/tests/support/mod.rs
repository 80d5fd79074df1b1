//! Shared test helpers: hand-written trait impls (what the macros generate) used by the
//! runner tests, and a config type for the trainable tests.
#![allow(dead_code, clippy::unwrap_used)]

pub mod config;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tune_runtime::{
    CheckpointError, Checkpointable, Metric, Metrics, Resources, Space, TrainError, TrainResult,
    Trainable, TrainableSpec, TrialContext,
    space::{Condition, Dim, DimKind, DomainViolation, SpaceError},
};

/// `x = uniform(0, 1)`, `k = grid([1, 2, 3])`; the other fields are constants that tests
/// set through config overrides to steer the trainable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cfg {
    pub x: f64,
    pub k: i64,
    /// Selects the [`Probe`] that records what the trainable did.
    pub tag: u64,
    /// CPUs each trial asks for.
    pub cpu: f64,
    /// GPUs each trial asks for.
    pub gpu: f64,
    /// Milliseconds each step sleeps.
    pub sleep_ms: u64,
    /// Iteration at which `step` fails (0: never); with `k == fail_k` only when `fail_k > 0`.
    pub fail_at: u64,
    pub panic_at: u64,
    pub nan_at: u64,
    /// Iteration at which the trainable ends by itself (a function trainable returning).
    pub finish_at: u64,
    /// Only trials with this `k` fail/panic/NaN (0: all).
    pub fail_k: i64,
}

impl Space for Cfg {
    fn grid_size() -> usize {
        3
    }
    fn sample_at<R: Rng + ?Sized>(rng: &mut R, grid_index: usize) -> Self {
        Cfg::base(rng.random::<f64>(), [1, 2, 3][grid_index % 3])
    }
    fn num_dims() -> usize {
        2
    }
    fn describe(dims: &mut Vec<Dim>, prefix: &str, condition: Option<Condition>) {
        dims.push(Dim {
            name: format!("{prefix}x"),
            kind: DimKind::Float { low: 0.0, high: 1.0, log: false, q: None },
            condition,
        });
        dims.push(Dim {
            name: format!("{prefix}k"),
            kind: DimKind::Categorical { choices: vec!["1".into(), "2".into(), "3".into()] },
            condition,
        });
    }
    fn encode_into(&self, out: &mut [f64]) {
        out[0] = self.x;
        out[1] = (self.k - 1) as f64;
    }
    fn decode_from(x: &[f64]) -> Result<Self, SpaceError> {
        Ok(Cfg::base(x[0], x[1] as i64 + 1))
    }
    fn check_domains(&self, prefix: &str, errors: &mut Vec<DomainViolation>) {
        if !(0.0..1.0).contains(&self.x) {
            errors.push(DomainViolation {
                path: format!("{prefix}x"),
                message: format!("{} is outside uniform(0.0, 1.0)", self.x),
            });
        }
        if !(1..=3).contains(&self.k) {
            errors.push(DomainViolation {
                path: format!("{prefix}k"),
                message: format!("{} is not one of grid([1, 2, 3])", self.k),
            });
        }
    }
}

impl Cfg {
    /// A config with every knob off.
    pub fn base(x: f64, k: i64) -> Self {
        Cfg {
            x,
            k,
            tag: 0,
            cpu: 1.0,
            gpu: 0.0,
            sleep_ms: 0,
            fail_at: 0,
            panic_at: 0,
            nan_at: 0,
            finish_at: 0,
            fail_k: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Score {
    pub score: f64,
    pub iter_seen: f64,
}

pub const SCORE: Metric<Score> = Metric::new(0, "score");
pub const ITER_SEEN: Metric<Score> = Metric::new(1, "iter_seen");

impl Metrics for Score {
    const NAMES: &'static [&'static str] = &["score", "iter_seen"];
    fn value(&self, index: usize) -> f64 {
        if index == 0 { self.score } else { self.iter_seen }
    }
    fn from_values(values: &[f64]) -> Option<Self> {
        match values {
            [score, iter_seen] => Some(Score { score: *score, iter_seen: *iter_seen }),
            _ => None,
        }
    }
}

/// What the trainables of one test did.
#[derive(Debug, Default)]
pub struct Probe {
    pub running: AtomicUsize,
    pub max_running: AtomicUsize,
    pub steps: AtomicUsize,
    pub setups: AtomicUsize,
    pub resets: AtomicUsize,
    pub cleanups: AtomicUsize,
    pub restored_files: AtomicUsize,
    /// CPUs held by live instances, in thousandths.
    pub cpu_milli: AtomicU64,
    pub max_cpu_milli: AtomicU64,
    pub gpu_ids: Mutex<Vec<(String, Vec<usize>)>>,
    pub seeds: Mutex<Vec<u64>>,
}

static PROBES: OnceLock<Mutex<HashMap<u64, Arc<Probe>>>> = OnceLock::new();
static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

/// A fresh probe and its tag (put the tag in the config with `overrides`).
pub fn new_probe() -> (u64, Arc<Probe>) {
    let tag = NEXT_TAG.fetch_add(1, Ordering::SeqCst);
    let p = Arc::new(Probe::default());
    PROBES.get_or_init(Default::default).lock().unwrap().insert(tag, Arc::clone(&p));
    (tag, p)
}

pub fn probe(tag: u64) -> Arc<Probe> {
    let mut map = PROBES.get_or_init(Default::default).lock().unwrap();
    Arc::clone(map.entry(tag).or_default())
}

fn bump_max(max: &AtomicUsize, v: usize) {
    max.fetch_max(v, Ordering::SeqCst);
}

/// The trainable: `score = x * k + iter`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Toy {
    pub iter: u64,
    pub acc: f64,
    #[serde(skip)]
    pub config: Option<Cfg>,
    #[serde(skip)]
    pub probe: Option<Arc<Probe>>,
    #[serde(skip)]
    pub cpu_milli: u64,
}

impl TrainableSpec for Toy {
    type Config = Cfg;
    type Metrics = Score;
    type Data = ();
    const NAME: &'static str = "Toy";
    fn resources(config: &Cfg) -> Resources {
        Resources { cpu: config.cpu, gpu: config.gpu, ..Resources::default() }
    }
}

impl Checkpointable for Toy {
    fn save_state(&self) -> Result<Vec<u8>, CheckpointError> {
        serde_json::to_vec(self)
            .map_err(|source| CheckpointError::Serialize { trainable: "Toy", source })
    }
    fn load_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let s: Toy = serde_json::from_slice(bytes)
            .map_err(|source| CheckpointError::Deserialize { trainable: "Toy", source })?;
        self.iter = s.iter;
        self.acc = s.acc;
        Ok(())
    }
}

impl Toy {
    fn p(&self) -> &Probe {
        self.probe.as_deref().unwrap()
    }
    fn cfg(&self) -> &Cfg {
        self.config.as_ref().unwrap()
    }
    fn take_cpu(&mut self, ctx: &TrialContext) {
        self.cpu_milli = (ctx.resources.total_cpu() * 1000.0).round() as u64;
        let now = self.p().cpu_milli.fetch_add(self.cpu_milli, Ordering::SeqCst) + self.cpu_milli;
        self.p().max_cpu_milli.fetch_max(now, Ordering::SeqCst);
        self.p().gpu_ids.lock().unwrap().push((ctx.trial_id.clone(), ctx.gpu_ids.clone()));
        self.p().seeds.lock().unwrap().push(ctx.seed);
    }
    fn give_cpu(&mut self) {
        let held = std::mem::take(&mut self.cpu_milli);
        self.p().cpu_milli.fetch_sub(held, Ordering::SeqCst);
    }
}

impl Trainable for Toy {
    fn setup(config: &Cfg, ctx: &TrialContext) -> TrainResult<Self> {
        let probe = probe(config.tag);
        probe.setups.fetch_add(1, Ordering::SeqCst);
        let mut t = Toy {
            iter: 0,
            acc: 0.0,
            config: Some(config.clone()),
            probe: Some(probe),
            cpu_milli: 0,
        };
        t.take_cpu(ctx);
        Ok(t)
    }

    fn step(&mut self) -> TrainResult<Score> {
        let running = self.p().running.fetch_add(1, Ordering::SeqCst) + 1;
        bump_max(&self.p().max_running, running);
        let c = self.cfg().clone();
        if c.sleep_ms > 0 {
            std::thread::sleep(Duration::from_millis(c.sleep_ms));
        }
        self.iter += 1;
        self.acc += c.x;
        self.p().steps.fetch_add(1, Ordering::SeqCst);
        self.p().running.fetch_sub(1, Ordering::SeqCst);
        let targeted = c.fail_k == 0 || c.fail_k == c.k;
        if targeted && self.iter == c.panic_at {
            panic!("boom at iteration {}", self.iter);
        }
        if targeted && self.iter == c.fail_at {
            return Err(TrainError::msg(format!("diverged at iteration {}", self.iter)));
        }
        if self.iter == c.finish_at {
            return Err(tune_runtime::Finished.into());
        }
        let score = if targeted && self.iter == c.nan_at {
            f64::NAN
        } else {
            c.x * c.k as f64 + self.iter as f64
        };
        Ok(Score { score, iter_seen: self.iter as f64 })
    }

    fn reset_config(&mut self, config: &Cfg, ctx: &TrialContext) -> TrainResult<bool> {
        self.p().resets.fetch_add(1, Ordering::SeqCst);
        self.give_cpu();
        self.config = Some(config.clone());
        self.probe = Some(probe(config.tag));
        self.iter = 0;
        self.acc = 0.0;
        self.take_cpu(ctx);
        Ok(true)
    }

    fn cleanup(&mut self) {
        self.p().cleanups.fetch_add(1, Ordering::SeqCst);
        self.give_cpu();
    }

    fn save_files(&self, dir: &Path) -> TrainResult<()> {
        std::fs::write(dir.join("extra.txt"), self.iter.to_string())?;
        Ok(())
    }

    fn restore_files(&mut self, dir: &Path) -> TrainResult<()> {
        let text = std::fs::read_to_string(dir.join("extra.txt"))?;
        assert_eq!(text, self.iter.to_string(), "files and state agree");
        self.p().restored_files.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Config overrides JSON selecting `tag` plus extra fields.
pub fn overrides(tag: u64, extra: &str) -> String {
    if extra.is_empty() {
        format!("{{\"tag\": {tag}}}")
    } else {
        format!("{{\"tag\": {tag}, {extra}}}")
    }
}

/// A journal file on a disk that fills up after `left` records (ENOSPC from then on).
pub struct FillsUp {
    pub inner: tune_runtime::storage::FileJournal,
    pub left: Arc<AtomicUsize>,
}

impl tune_runtime::storage::JournalStore for FillsUp {
    fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.left.load(Ordering::SeqCst) == 0 {
            return Err(std::io::Error::from_raw_os_error(28));
        }
        self.left.fetch_sub(1, Ordering::SeqCst);
        self.inner.append(record)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
    fn read(
        &mut self,
        visit: &mut dyn FnMut(&[u8]) -> std::ops::ControlFlow<()>,
    ) -> std::io::Result<()> {
        self.inner.read(visit)
    }
}
