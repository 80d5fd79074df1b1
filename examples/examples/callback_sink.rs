//! A sink of your own: a [`Callback`] that appends every result to one tab-separated file
//! for the whole experiment (`metrics.tsv`: trial id, iteration, then every metric), the
//! way you would feed a database, a message queue or an experiment tracker.
//!
//! ```sh
//! cargo run --release -p tune-examples --example callback_sink
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use tune_runtime::callback::{
    Callback, CallbackError, EndKind, ExperimentView, ResultView, TrialView,
};
use tune_runtime::prelude::*;

/// Appends `trial_id, iteration, metrics...` to `<experiment>/metrics.tsv`.
#[derive(Debug, Default)]
pub struct TsvSink {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

impl Callback for TsvSink {
    fn on_experiment_start(&mut self, exp: &ExperimentView<'_>) -> Result<(), CallbackError> {
        self.path = exp.dir.join("metrics.tsv");
        // A resumed experiment appends to the file of the first run (rows a trial redoes
        // after going back to a checkpoint appear again: implement `on_trial_reset` to drop
        // them where your sink can).
        let file = OpenOptions::new()
            .create(true)
            .append(exp.resumed)
            .write(true)
            .truncate(!exp.resumed)
            .open(&self.path)
            .map_err(|e| CallbackError::new(&self.path, e))?;
        let mut out = BufWriter::new(file);
        if !exp.resumed {
            let header = format!("trial_id\titeration\t{}\n", exp.metric_names.join("\t"));
            out.write_all(header.as_bytes()).map_err(|e| CallbackError::new(&self.path, e))?;
        }
        self.out = Some(out);
        Ok(())
    }

    fn on_trial_result(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        let Some(out) = &mut self.out else { return Ok(()) };
        let metrics: Vec<String> = result.metrics().iter().map(f64::to_string).collect();
        let line =
            format!("{}\t{}\t{}\n", trial.id, result.training_iteration(), metrics.join("\t"));
        // Buffered: written out in `flush`, which the runner calls every status tick.
        out.write_all(line.as_bytes()).map_err(|e| CallbackError::new(&self.path, e))
    }

    fn flush(&mut self) -> Result<(), CallbackError> {
        match &mut self.out {
            Some(out) => out.flush().map_err(|e| CallbackError::new(&self.path, e)),
            None => Ok(()),
        }
    }

    fn on_experiment_end(&mut self, _end: EndKind) -> Result<(), CallbackError> {
        self.flush()?;
        self.out = None;
        Ok(())
    }
}

search_space! {
    /// One learning rate.
    pub struct Lr {
        lr: f64 = loguniform(1e-3, 1e-1),
    }
}

/// The loss of a quadratic after each gradient step.
#[derive(Debug, Clone, Metrics)]
pub struct Loss {
    loss: f64,
}

/// Gradient descent on `x^2` from `x = 1`.
#[trainable(config = Lr, metrics = Loss)]
pub struct Descent {
    x: f64,
    #[checkpoint(skip)]
    lr: f64,
}

impl Trainable for Descent {
    fn setup(config: &Lr, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Self { x: 1.0, lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Loss> {
        self.x -= self.lr * 2.0 * self.x;
        Ok(Loss { loss: self.x * self.x })
    }
}

fn main() -> Result<(), RunError> {
    let analysis = Tuner::<Descent>::new()
        .num_samples(4)
        .stop(Stop::iterations(5))
        .metric(Loss::LOSS, Mode::Min)
        .callback(TsvSink::default())
        .run()?;
    println!("best: {:?}", analysis.best_config(Loss::LOSS, Mode::Min, Scope::Last));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tune_runtime::callback::{Callbacks, StartView};

    /// The sink driven through the callbacks, as the runner drives it.
    #[test]
    fn the_sink_writes_one_line_per_result() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let names = vec!["loss".to_string()];
        let mut callbacks = Callbacks::new();
        callbacks.push(TsvSink::default());
        callbacks.on_experiment_start(&ExperimentView::new(
            "exp",
            dir.path(),
            "Descent",
            &names,
            0,
        ))?;
        let config = serde_json::json!({"lr": 0.1});
        let trial = TrialView::new(0, "4f1c2_00000", None, &config);
        callbacks.on_trial_start(&trial, &StartView::first())?;
        for it in 1..=3u32 {
            let row = [0.5 / f64::from(it), f64::from(it), 0.1, 0.1 * f64::from(it), 0.0];
            callbacks.on_trial_result(&trial, &ResultView::new(&row, it == 3))?;
        }
        callbacks.on_experiment_end(EndKind::Finished)?;
        let text = std::fs::read_to_string(dir.path().join("metrics.tsv"))?;
        assert_eq!(
            text,
            "trial_id\titeration\tloss\n4f1c2_00000\t1\t0.5\n4f1c2_00000\t2\t0.25\n\
             4f1c2_00000\t3\t0.16666666666666666\n"
        );
        Ok(())
    }
}
