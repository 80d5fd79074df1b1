//! The "Search Algorithms" block of the seed guide *Tune in 60 Seconds*, in Rust: TPE over
//! `momentum` in [0, 20] and `lr` in [0, 1], maximizing `accuracy`, 20 samples, each
//! stopped after 20 iterations.
//!
//! ```text
//! cargo run --release --example search_algorithm
//! ```

use tune_runtime::Tpe;
use tune_runtime::prelude::*;

search_space! {
    /// The guide's HyperOpt space: `hp.uniform("momentum", 0, 20)`, `hp.uniform("lr", 0, 1)`.
    pub struct Config {
        momentum: f64 = uniform(0.0, 20.0),
        lr: f64 = uniform(0.0, 1.0),
    }
}

#[derive(Metrics, Debug, Clone)]
struct Accuracy {
    accuracy: f64,
}

/// A stand-in for training: accuracy climbs towards a ceiling set by the config (best
/// near `momentum = 9`, `lr = 0.1`), faster with a larger learning rate.
#[trainable(config = Config, metrics = Accuracy)]
struct Model {
    iter: u64,
    momentum: f64,
    lr: f64,
}

impl Trainable for Model {
    fn setup(config: &Config, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Model { iter: 0, momentum: config.momentum, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Accuracy> {
        self.iter += 1;
        let ceiling = 1.0 - ((self.momentum - 9.0) / 20.0).powi(2) - (self.lr - 0.1).powi(2);
        let progress = 1.0 - (-(self.iter as f64) * (0.05 + self.lr)).exp();
        Ok(Accuracy { accuracy: ceiling * progress })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Pass the searcher to the tuner and maximize accuracy; 20 trials, 20 iterations each.
    let analysis = Tuner::<Model>::new()
        .local_dir(std::env::temp_dir().join("tune-examples"))
        .searcher(Tpe::new())
        .metric(Accuracy::ACCURACY, Mode::Max)
        .num_samples(20)
        .stop(Stop::iterations(20))
        .run()?;
    let best = analysis
        .best_config(Accuracy::ACCURACY, Mode::Max, Scope::Last)
        .ok_or("no trial reported")?;
    println!("Best config: {best:?}");
    Ok(())
}
