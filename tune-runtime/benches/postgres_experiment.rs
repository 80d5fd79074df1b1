//! Whole experiments shared through PostgreSQL (feature `postgres`), each process a real
//! OS process (this binary, run again as a peer):
//!
//! * `scaling`: 1, 2 and 4 processes on one experiment of 48 trials, each trial 10 steps
//!   of `sleep(50 ms)` and one trial at a time per process (as one GPU per machine would
//!   run), so that the two cores of a small machine are not the limit: trials per second
//!   of the whole experiment, from the start of the first process to the end of the last.
//! * `large [N]`: an experiment of N trials (default 100,000) of one trivial step: the
//!   runner writes the first 200, the rest are appended in batches with the records,
//!   claims and ownership the runner writes; then a process joins it late (it replays the whole log, then runs one
//!   more trial), and another loads it with `Analysis::from_postgres`: the time and peak
//!   resident memory (`VmHWM`) of each.
//!
//! * `tpe [P] [N]`: P processes (default 4) on one experiment of N trials (default 1,000) of
//!   one step of a trivial objective, with TPE, one trial at a time per process: the wall
//!   time, to compare with Optuna's RDB storage (`benches/optuna/distributed.py`).
//!
//! `cargo bench -p tune-runtime --features postgres --bench postgres_experiment -- scaling`
//! (or `-- large`, `-- tpe`) against `TUNE_TEST_POSTGRES_URL` (default
//! `postgres://root@127.0.0.1:5432/test`), in scratch schemas dropped at the end. Figures
//! in `docs/benchmarks.md`.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tune_runtime::Analysis;
use tune_runtime::prelude::*;
use tune_runtime::searcher::Tpe;
use tune_runtime::shared::PostgresJournal;
use tune_runtime::shared::postgres_testing::TestSchema;

search_space! {
    pub struct Cfg {
        x: f64 = uniform(0.0, 1.0),
        k: i64 = randint(1, 10),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Out {
    score: f64,
}

/// Sleeps `STEP_MS` milliseconds per step (0: none).
#[trainable(config = Cfg, metrics = Out, test = false)]
#[derive(Debug)]
pub struct Sleeper {
    x: f64,
    k: i64,
    iter: u64,
    #[checkpoint(skip)]
    ms: u64,
}

impl Trainable for Sleeper {
    fn setup(c: &Cfg, _: &TrialContext) -> TrainResult<Self> {
        let ms = std::env::var("STEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(Sleeper { x: c.x, k: c.k, iter: 0, ms })
    }
    fn step(&mut self) -> TrainResult<Out> {
        if self.ms > 0 {
            std::thread::sleep(Duration::from_millis(self.ms));
        }
        self.iter += 1;
        Ok(Out { score: self.x * self.k as f64 + self.iter as f64 })
    }
}

/// Trials of the scaling experiment, steps per trial, and milliseconds per step.
const TRIALS: usize = 48;
const STEPS: u64 = 10;
const STEP_MS: u64 = 50;

/// This process's peak resident memory in MiB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A peer: `peer <url> <name> <local_dir> <trials> <steps> <cpus>`; prints
/// `secs=<run time> rss=<MiB> trials=<trials in the analysis>`.
fn peer(args: &[String]) {
    let [url, name, local, trials, steps, cpus] = args else {
        panic!("peer <url> <name> <local_dir> <trials> <steps> <cpus>");
    };
    let start = Instant::now();
    let journal = PostgresJournal::connect(url, name).unwrap();
    let mut tuner = Tuner::<Sleeper>::new()
        .num_samples(trials.parse().unwrap())
        .stop(Stop::iterations(steps.parse().unwrap()))
        .total_cpus(cpus.parse().unwrap())
        .seed(3)
        .verbose(0)
        .local_dir(local)
        .name(name.as_str())
        .metric(Out::SCORE, Mode::Min);
    if std::env::var("SEARCHER").is_ok_and(|s| s == "tpe") {
        tuner = tuner.searcher(Tpe::new());
    }
    let a = tuner.shared_journal(journal).run().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!("secs={secs:.3} rss={:.1} trials={}", peak_rss_mib(), a.trials().len());
}

/// `load <url> <name> <local_dir>`: loads the experiment with `Analysis::from_postgres`.
fn load(args: &[String]) {
    let [url, name, local] = args else { panic!("load <url> <name> <local_dir>") };
    let start = Instant::now();
    let a = Analysis::<Cfg, Out>::from_postgres(url, name, Path::new(local).join(name)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!("secs={secs:.3} rss={:.1} trials={}", peak_rss_mib(), a.trials().len());
}

fn field(out: &str, key: &str) -> f64 {
    out.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `{key}` in {out:?}"))
}

fn spawn(args: &[&str], step_ms: u64) -> std::process::Child {
    spawn_with(args, step_ms, "random")
}

fn spawn_with(args: &[&str], step_ms: u64, searcher: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(args)
        .env("STEP_MS", step_ms.to_string())
        .env("SEARCHER", searcher)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "a peer failed");
    String::from_utf8(out.stdout).unwrap()
}

fn scaling() {
    println!(
        "{TRIALS} trials of {STEPS} steps of {STEP_MS} ms, one trial at a time per process; \
         load average before: {}",
        load_average()
    );
    println!(
        "| processes | wall time | trials/s | x one process | of ideal N x {:.2}/s |",
        1000.0 / (STEPS * STEP_MS) as f64
    );
    println!("|---|---|---|---|---|");
    let mut one = None;
    for n in [1usize, 2, 4] {
        let db = TestSchema::create("postgres_experiment_scaling").expect("a PostgreSQL server");
        let local = tempfile::tempdir().unwrap();
        let local_s = local.path().to_string_lossy().to_string();
        let (trials, steps) = (TRIALS.to_string(), STEPS.to_string());
        let start = Instant::now();
        let peers: Vec<_> = (0..n)
            .map(|_| spawn(&["peer", &db.url, "exp", &local_s, &trials, &steps, "1"], STEP_MS))
            .collect();
        for p in peers {
            let out = output(p);
            assert_eq!(field(&out, "trials") as usize, TRIALS, "every peer sees every trial");
        }
        let wall = start.elapsed().as_secs_f64();
        let rate = TRIALS as f64 / wall;
        let base = *one.get_or_insert(rate);
        let ideal = n as f64 * 1000.0 / (STEPS * STEP_MS) as f64;
        println!(
            "| {n} | {wall:.2} s | {rate:.2} | {:.2} | {:.0} % |",
            rate / base,
            100.0 * rate / ideal
        );
    }
    println!("load average after: {}", load_average());
}

/// Trials the runner writes before the rest of a large log is appended in batches.
const REAL_TRIALS: usize = 200;

/// Appends trials `from..to` to experiment `name` in batches of 500, with the records,
/// claims and ownership the runner writes for a trial of one step that ends (`trial`,
/// `status` RUNNING, `result`, `status` TERMINATED), configs drawn uniformly.
fn append_trials(url: &str, name: &str, from: usize, to: usize) -> f64 {
    use tune_runtime::shared::{Append, SharedJournal};
    let start = Instant::now();
    let mut j = PostgresJournal::connect(url, name).unwrap();
    j.join(Duration::from_secs(600)).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let ids: Vec<usize> = (from..to).collect();
    for batch in ids.chunks(500) {
        let mut records = Vec::new();
        for &t in batch {
            let (x, k) = (uniform(), 1 + (uniform() * 9.0) as i64);
            let trial = format!(
                "{{\"type\":\"trial\",\"trial\":{t},\"id\":\"{t:05}\",\"dir\":\
                 \"Sleeper_{t:05}_k={k},x={x:.4}\",\"config\":{{\"k\":{k},\"x\":{x}}}}}"
            );
            records.push(trial.into_bytes());
            let running = format!("{{\"type\":\"status\",\"trial\":{t},\"status\":\"RUNNING\"}}");
            records.push(running.into_bytes());
            let v = x * k as f64 + 1.0;
            let result = format!(
                "{{\"type\":\"result\",\"trial\":{t},\"v\":[{v},1.0,1.5e-6,1.5e-6,{now}.0],\
                 \"done\":true}}"
            );
            records.push(result.into_bytes());
            let end = format!("{{\"type\":\"status\",\"trial\":{t},\"status\":\"TERMINATED\"}}");
            records.push(end.into_bytes());
        }
        let claims: Vec<String> = batch.iter().map(|t| format!("trial:{t}")).collect();
        let created: Vec<u32> = batch.iter().map(|&t| t as u32).collect();
        j.append(Append {
            records: &records,
            claims: &claims,
            creates: &created,
            ends: &created,
            ..Default::default()
        })
        .unwrap();
    }
    j.leave().unwrap();
    start.elapsed().as_secs_f64()
}

fn large(trials: usize) {
    let db = TestSchema::create("postgres_experiment_large").expect("a PostgreSQL server");
    let local = tempfile::tempdir().unwrap();
    let local_s = local.path().to_string_lossy().to_string();
    println!("{trials} trials of one step; load average before: {}", load_average());
    // The runner writes the header and the first trials; the rest are appended in batches
    // (through the runner, one process writes about 40 trials a second: see the docs).
    let real = REAL_TRIALS.min(trials);
    let n = real.to_string();
    let out = output(spawn(&["peer", &db.url, "exp", &local_s, &n, "1", "2"], 0));
    println!(
        "the runner writes the first {real} trials (one process, 2 at a time): {:.1} s",
        field(&out, "secs")
    );
    if trials > real {
        let secs = append_trials(&db.url, "exp", real, trials);
        println!("the other {} trials appended in batches of 500: {secs:.1} s", trials - real);
    }
    let more = (trials + 1).to_string();
    let out = output(spawn(&["peer", &db.url, "exp", &local_s, &more, "1", "2"], 0));
    println!(
        "a process joining late (replays it, runs 1 more trial): {:.2} s, peak RSS {:.0} MiB",
        field(&out, "secs"),
        field(&out, "rss")
    );
    let out = output(spawn(&["load", &db.url, "exp", &local_s], 0));
    println!(
        "Analysis::from_postgres: {:.2} s, peak RSS {:.0} MiB ({} trials)",
        field(&out, "secs"),
        field(&out, "rss"),
        field(&out, "trials")
    );
    let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let row = c
        .query_one("SELECT count(*), pg_total_relation_size('tune_records') FROM tune_records", &[])
        .unwrap();
    let (records, bytes): (i64, i64) = (row.get(0), row.get(1));
    println!("the log: {records} records, {:.0} MiB in tune_records", bytes as f64 / 1048576.0);
    println!("load average after: {}", load_average());
}

/// `processes` processes on one experiment of `trials` one-step trials of a trivial
/// objective with TPE, one trial at a time per process (the shape of
/// `benches/optuna/distributed.py`).
fn tpe(processes: usize, trials: usize) {
    let db = TestSchema::create("postgres_experiment_tpe").expect("a PostgreSQL server");
    let local = tempfile::tempdir().unwrap();
    let local_s = local.path().to_string_lossy().to_string();
    let load = load_average();
    let n = trials.to_string();
    let start = Instant::now();
    let peers: Vec<_> = (0..processes)
        .map(|_| spawn_with(&["peer", &db.url, "exp", &local_s, &n, "1", "1"], 0, "tpe"))
        .collect();
    let mut slowest: f64 = 0.0;
    for p in peers {
        let out = output(p);
        assert_eq!(field(&out, "trials") as usize, trials);
        slowest = slowest.max(field(&out, "secs"));
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "tune-rs: {processes} processes, {trials} trials, TPE: wall {wall:.2} s \
         ({:.0} trials/s; slowest process's run {slowest:.2} s); load average before {load}, \
         after {}",
        trials as f64 / wall,
        load_average()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("peer") => peer(&args[1..]),
        Some("load") => load(&args[1..]),
        Some("large") => large(args.get(1).map_or(100_000, |n| n.parse().unwrap())),
        Some("tpe") => tpe(
            args.get(1).map_or(4, |n| n.parse().unwrap()),
            args.get(2).map_or(1000, |n| n.parse().unwrap()),
        ),
        Some("scaling") | None => scaling(),
        Some(other) => panic!("unknown mode `{other}`: scaling, large [N], tpe [P] [N]"),
    }
}
