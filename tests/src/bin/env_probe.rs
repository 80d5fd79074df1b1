//! An experiment of isolated trials (`Tuner::isolate_trials`) whose worker processes write
//! down what their environment says about their resources, for `tests/runner_budgets.rs`.
//!
//! `env_probe <local_dir> [--no-budgets]`: runs 4 trials (`cpu` 1 or 2, `gpu` 0 or 1) on
//! 4 CPUs and the GPU ids 3 and 5; each trial's `setup`, in its own process, writes
//! `env.json` in its trial directory: `RAYON_NUM_THREADS`, `OMP_NUM_THREADS`,
//! `CUDA_VISIBLE_DEVICES` (null when unset), the size of rayon's global pool there, and the
//! GPU ids and CPUs the trial was granted.

use std::path::Path;

use tune_runtime::prelude::*;

search_space! {
    pub struct Ask {
        cpu: f64 = grid([1.0, 2.0]),
        gpu: f64 = grid([0.0, 1.0]),
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Nil {
    nil: f64,
}

#[trainable(
    config = Ask,
    metrics = Nil,
    resources(cpu = |c: &Ask| c.cpu, gpu = |c: &Ask| c.gpu),
    test = false
)]
pub struct Probe {}

impl Trainable for Probe {
    fn setup(config: &Ask, ctx: &TrialContext) -> TrainResult<Self> {
        let var = |name: &str| std::env::var(name).ok();
        let seen = serde_json::json!({
            "RAYON_NUM_THREADS": var("RAYON_NUM_THREADS"),
            "OMP_NUM_THREADS": var("OMP_NUM_THREADS"),
            "CUDA_VISIBLE_DEVICES": var("CUDA_VISIBLE_DEVICES"),
            "rayon_threads": rayon::current_num_threads(),
            "gpu_ids": ctx.gpu_ids,
            "cpu": config.cpu,
            "worker": tune_runtime::is_worker(),
        });
        let dir = ctx.trial_dir.as_deref().ok_or_else(|| TrainError::msg("no trial dir"))?;
        std::fs::write(dir.join("env.json"), seen.to_string())?;
        Ok(Probe {})
    }

    fn step(&mut self) -> TrainResult<Nil> {
        Ok(Nil { nil: 0.0 })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(local) = args.get(1) else {
        eprintln!("usage: env_probe <local_dir> [--no-budgets]");
        std::process::exit(2);
    };
    let result = Tuner::<Probe>::new()
        .total_cpus(4.0)
        .gpu_ids(vec![3, 5])
        .stop(Stop::iterations(1))
        .cpu_budgets(!args.iter().any(|a| a == "--no-budgets"))
        .isolate_trials(true)
        .seed(1)
        .verbose(0)
        .local_dir(Path::new(local))
        .name("exp")
        .run();
    match result {
        Ok(a) if a.count(TrialStatus::Terminated) == 4 => {}
        Ok(a) => {
            eprintln!("trials failed: {:?}", a.errored_trials());
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
