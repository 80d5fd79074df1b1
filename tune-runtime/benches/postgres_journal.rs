//! The PostgreSQL journal's throughput and latency (feature `postgres`): records appended
//! per second with 1 and 100 records per append (one writer, then 4 writers at once, each
//! with its own connection as separate processes would have), and the delay from the
//! start of an append on one connection to the moment another connection, waiting with
//! `wait_for` (LISTEN/NOTIFY), has read the record.
//!
//! `cargo bench -p tune-runtime --features postgres --bench postgres_journal`
//! against `TUNE_TEST_POSTGRES_URL` (default `postgres://root@127.0.0.1:5432/test`), in a
//! scratch schema dropped at the end. Figures in `docs/benchmarks.md`.
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tune_runtime::shared::postgres_testing::TestSchema;
use tune_runtime::shared::{Append, PostgresJournal, SharedJournal};

/// A result record as the runner writes it (a trial's row of metrics and auto-fields).
fn record(i: usize) -> Vec<u8> {
    format!(
        "{{\"type\":\"result\",\"trial\":{},\"v\":[0.{i:06},{i},0.0123,1.2345,1764611234.5,0]}}",
        i % 64
    )
    .into_bytes()
}

fn writer(url: &str, name: &str) -> PostgresJournal {
    let mut j = PostgresJournal::connect(url, name).unwrap();
    j.join(Duration::from_secs(600)).unwrap();
    j
}

/// Records per second of `writers` connections appending `total` records each, `batch`
/// per append.
fn throughput(url: &str, name: &str, writers: usize, batch: usize, total: usize) -> f64 {
    let start = Arc::new(std::sync::Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (url, name, start) = (url.to_string(), name.to_string(), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut j = writer(&url, &name);
                let records: Vec<Vec<u8>> = (0..batch).map(record).collect();
                start.wait();
                for _ in 0..total / batch {
                    j.append(Append { records: &records, ..Default::default() }).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let t = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    (writers * total) as f64 / t.elapsed().as_secs_f64()
}

/// The delays (µs) from the start of an append to another connection's read of it.
fn visibility(url: &str, name: &str, samples: usize) -> Vec<f64> {
    let epoch = Instant::now();
    let mut reader = PostgresJournal::connect(url, name).unwrap();
    let mut next = reader.read_from(0, &mut |_, _, _| ControlFlow::Continue(())).unwrap();
    let (url2, name2) = (url.to_string(), name.to_string());
    let w = std::thread::spawn(move || {
        let mut j = writer(&url2, &name2);
        for _ in 0..samples {
            std::thread::sleep(Duration::from_millis(3));
            let sent = epoch.elapsed().as_nanos() as u64;
            let r = [format!("{{\"sent\":{sent}}}").into_bytes()];
            j.append(Append { records: &r, ..Default::default() }).unwrap();
        }
    });
    let mut delays = Vec::with_capacity(samples);
    while delays.len() < samples {
        reader.wait_for(next, Duration::from_secs(5)).unwrap();
        next = reader
            .read_from(next, &mut |_, _, body| {
                let seen = epoch.elapsed().as_nanos() as u64;
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                let sent = v["sent"].as_u64().unwrap();
                delays.push((seen - sent) as f64 / 1e3);
                ControlFlow::Continue(())
            })
            .unwrap();
    }
    w.join().unwrap();
    delays.sort_by(f64::total_cmp);
    delays
}

fn main() {
    let Some(db) = TestSchema::create("postgres_journal bench") else { return };
    // As the server is configured (every commit waits for its WAL flush), then with
    // `synchronous_commit=off` for these sessions (a server crash may lose the last few
    // hundred milliseconds of commits; it never corrupts or reorders the log).
    let relaxed = db.url.clone() + "%20-csynchronous_commit%3Doff";
    for (label, url) in [("synchronous_commit=on", &db.url), ("synchronous_commit=off", &relaxed)] {
        println!("PostgreSQL journal, {label}");
        for (writers, batch, total) in
            [(1, 1, 2_000), (1, 100, 50_000), (4, 1, 1_000), (4, 100, 50_000)]
        {
            let name = format!("throughput-{label}-{writers}-{batch}");
            // A warm-up on the same experiment, then the measure.
            throughput(url, &name, writers, batch, total / 10);
            let rate = throughput(url, &name, writers, batch, total);
            println!(
                "  append: {writers} writer(s), {batch:>3} record(s)/append: {rate:>9.0} \
                 records/s ({:.0} appends/s)",
                rate / batch as f64
            );
        }
        let d = visibility(url, &format!("latency-{label}"), 1000);
        let q = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize];
        println!(
            "  visibility (append start -> other connection read, {} samples): p50 {:.0} µs, \
             p99 {:.0} µs, max {:.0} µs",
            d.len(),
            q(0.5),
            q(0.99),
            q(1.0)
        );
    }
}
