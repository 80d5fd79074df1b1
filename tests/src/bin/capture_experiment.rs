//! An experiment whose trials print, run as a separate process by `tests/capture.rs`: the
//! test harness captures `println!` at the std level, so the runner's capture of file
//! descriptors 1 and 2 can only be seen from outside the process.
//!
//! `capture_experiment <local_dir> <name> [--isolate] [--capture on|off] [--workers n]
//! [--resume]`
//!
//! Every trial prints `setup-out <trial>` and `setup-err <trial>` in `setup`, then
//! `step-out <trial> <iteration>` and `step-err <trial> <iteration>` in each of its 3
//! steps (stdout with `println!`, stderr with `eprintln!`). `PANIC_AT=<iter>`: the trial
//! with `k == 2` panics at that iteration, once (a marker file in its directory); with
//! `MAX_FAILURES=n` it is retried. `STEP_MS`: sleep per step. `ITERS`: steps per trial
//! (default 3). After `run()` returns, the
//! program prints `after-run-out` and `after-run-err`, which must reach the terminal.

use std::time::Duration;

use tune_runtime::prelude::*;

search_space! {
    pub struct Cfg {
        k: i64 = grid([1, 2, 3]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Score {
    score: f64,
}

#[trainable(config = Cfg, metrics = Score, test = false)]
pub struct Printer {
    k: i64,
    iter: u64,
    #[checkpoint(skip)]
    id: String,
    #[checkpoint(skip)]
    dir: Option<std::path::PathBuf>,
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Trainable for Printer {
    fn setup(config: &Cfg, ctx: &TrialContext) -> TrainResult<Self> {
        println!("setup-out {}", ctx.trial_id);
        eprintln!("setup-err {}", ctx.trial_id);
        Ok(Printer { k: config.k, iter: 0, id: ctx.trial_id.clone(), dir: ctx.trial_dir.clone() })
    }

    fn step(&mut self) -> TrainResult<Score> {
        std::thread::sleep(Duration::from_millis(env_u64("STEP_MS")));
        self.iter += 1;
        println!("step-out {} {}", self.id, self.iter);
        eprintln!("step-err {} {}", self.id, self.iter);
        if self.k == 2 && self.iter == env_u64("PANIC_AT") {
            let marker = self.dir.as_ref().map(|d| d.join("panicked-once"));
            if let Some(marker) = marker.filter(|m| !m.exists()) {
                std::fs::write(marker, "")?;
                panic!("injected panic in {}", self.id);
            }
        }
        Ok(Score { score: self.k as f64 * self.iter as f64 })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (local, name) = (&args[1], &args[2]);
    let value = |flag: &str| {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
    };
    let workers = value("--workers").and_then(|v| v.parse::<usize>().ok()).unwrap_or(1);
    let mut tuner = Tuner::<Printer>::new()
        .stop(Stop::iterations(
            std::env::var("ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3),
        ))
        .seed(3)
        .verbose(2)
        .status_interval(Duration::from_millis(5))
        .max_concurrent_trials(workers)
        .total_cpus(workers as f64)
        .max_failures(env_u64("MAX_FAILURES") as u32)
        .local_dir(local)
        .name(name.as_str())
        .isolate_trials(args.iter().any(|a| a == "--isolate"))
        .resume(args.iter().any(|a| a == "--resume"));
    match value("--capture") {
        Some("on") => tuner = tuner.capture_output(true),
        Some("off") => tuner = tuner.capture_output(false),
        _ => {}
    }
    let result = tuner.run();
    println!("after-run-out");
    eprintln!("after-run-err");
    match result {
        Ok(a) => println!("trials: {}", a.trials().len()),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
