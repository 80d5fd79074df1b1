//! Upload and download throughput of one checkpoint through `ObjectStoreCheckpoints`, to
//! moto's S3 server on loopback (started here, or the one of `TUNE_TEST_S3_ENDPOINT`).
//!
//! `cargo run --release -p tune-tests --features object-store --bin objstore_bench [MB] [rounds]`
//! (default 100 MB, 3 rounds). Upload: `commit` of a checkpoint (a `weights.bin` of MB
//! random bytes, `state.json`, the manifest; multipart above 16 MiB). Download: `open` of
//! it into the local cache, with the manifest's checksums verified. Prints the median.

use std::path::Path;
use std::time::Instant;

use rand::{RngCore, SeedableRng};
use tune_runtime::storage::{CheckpointStore, MANIFEST_FILE, ObjectStoreCheckpoints};
use tune_tests::s3::S3Server;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mb: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3);
    let Some(server) = S3Server::start() else {
        return Err("no S3 server: install moto (see tests/src/s3.rs)".into());
    };
    let bucket = server.new_bucket();
    let store =
        ObjectStoreCheckpoints::from_url(&format!("s3://{bucket}/bench"), server.options())?;
    let exp = tempfile::tempdir()?;
    store.attach(exp.path())?;
    let mut weights = vec![0u8; mb << 20];
    rand_chacha::ChaCha8Rng::seed_from_u64(1).fill_bytes(&mut weights);

    let (mut up, mut down) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let dir = exp.path().join("trial").join(format!("checkpoint_{round:06}"));
        let scratch = store.begin(&dir)?;
        write_checkpoint(&scratch, &weights)?;
        let t = Instant::now();
        store.commit(&scratch, &dir)?;
        up.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let local = store.open(&dir)?;
        down.push(t.elapsed().as_secs_f64());
        assert_eq!(std::fs::metadata(local.join("weights.bin"))?.len(), weights.len() as u64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (u, d) = (median(&mut up), median(&mut down));
    println!("checkpoint of {mb} MB to {} ({rounds} rounds, median):", server.endpoint());
    println!("  upload   (commit) {u:7.3} s  {:7.1} MB/s", mb as f64 / u);
    println!("  download (open)   {d:7.3} s  {:7.1} MB/s", mb as f64 / d);
    Ok(())
}

/// A checkpoint as the runner writes one: state, the trainable's file, the manifest.
fn write_checkpoint(dir: &Path, weights: &[u8]) -> std::io::Result<()> {
    let state = br#"{"steps":1}"#;
    std::fs::write(dir.join("state.json"), state)?;
    std::fs::write(dir.join("weights.bin"), weights)?;
    let entry = |path: &str, bytes: &[u8]| serde_json::json!({"path": path, "len": bytes.len(), "crc32": crc32fast::hash(bytes)});
    let manifest = serde_json::json!({
        "version": 1,
        "files": [entry("state.json", state), entry("weights.bin", weights)],
    });
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_string())
}
