//! Binary checkpoints of large state: a trainable holding a 10-million-parameter `Vec<f32>`
//! (`#[checkpoint(binary)]`, 40 MB) saved with `save_checkpoint` and restored with
//! `restore_checkpoint`, against writing the same numbers as raw bytes to one file (and
//! syncing it, as the checkpoint does) and reading them back into a `Vec<f32>`. Before the
//! timings it prints the file sizes: the checkpoint directory against the raw bytes.
//!
//! `cargo bench -p tune-runtime --bench checkpoint`

use std::io::Write as _;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use tune_runtime::prelude::*;
use tune_runtime::storage::{restore_checkpoint, save_checkpoint};

const PARAMS: usize = 10_000_000;

search_space! {
    /// Nothing to tune: the benchmark only saves and restores.
    pub struct Empty {
        seed: u64 = constant(1),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Loss {
    loss: f64,
}

#[trainable(config = Empty, metrics = Loss, test = false)]
#[derive(Debug)]
pub struct Big {
    #[checkpoint(binary)]
    weights: Vec<f32>,
    iter: u64,
}

impl Trainable for Big {
    fn setup(config: &Empty, _ctx: &TrialContext) -> TrainResult<Self> {
        let weights = (0..PARAMS).map(|i| (i as f32).sin() * config.seed as f32).collect();
        Ok(Big { weights, iter: 0 })
    }

    fn step(&mut self) -> TrainResult<Loss> {
        self.iter += 1;
        Ok(Loss { loss: f64::from(self.weights[0]) })
    }
}

/// The baseline: the numbers' bytes to one file, synced.
fn write_raw(weights: &[f32], path: &Path) {
    let mut file = std::fs::File::create(path).expect("create");
    file.write_all(bytemuck::cast_slice(weights)).expect("write");
    file.sync_all().expect("sync");
}

fn read_raw(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("read");
    bytemuck::pod_collect_to_vec(&bytes)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

fn bench(c: &mut Criterion) {
    let config = Empty { seed: 1 };
    let ctx = TrialContext::detached("bench", 0);
    let big = Big::setup(&config, &ctx).expect("setup");
    let mut restored = Big::setup(&Empty { seed: 2 }, &ctx).expect("setup");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (ckpt, raw) = (tmp.path().join("checkpoint"), tmp.path().join("raw.bin"));

    save_checkpoint(&big, &ckpt).expect("save");
    write_raw(&big.weights, &raw);
    let (ckpt_bytes, raw_bytes) = (dir_size(&ckpt), std::fs::metadata(&raw).expect("raw").len());
    println!(
        "checkpoint directory: {ckpt_bytes} bytes; raw: {raw_bytes} bytes; ratio {:.4}",
        ckpt_bytes as f64 / raw_bytes as f64
    );
    restore_checkpoint(&mut restored, &ckpt).expect("restore");
    assert_eq!(restored.weights, big.weights);

    let mut group = c.benchmark_group("checkpoint_10M_f32");
    group.sample_size(10);
    group.bench_function("save_checkpoint", |b| {
        b.iter(|| save_checkpoint(&big, &ckpt).expect("save"));
    });
    group.bench_function("raw_write", |b| b.iter(|| write_raw(&big.weights, &raw)));
    group.bench_function("restore_checkpoint", |b| {
        b.iter(|| restore_checkpoint(&mut restored, &ckpt).expect("restore"));
    });
    group.bench_function("raw_read", |b| b.iter(|| read_raw(&raw)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
