//! Cost per result of the callbacks: none set (the dispatcher's check), and each built-in
//! logger writing a trial's files (`result.json`, `progress.csv`, TensorBoard events) to a
//! temporary directory. Run: `cargo bench -p tune-runtime --bench callbacks`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tune_runtime::callback::{
    Callback, Callbacks, ExperimentView, ResultView, StartView, TrialView,
};
use tune_runtime::logger::{CsvLogger, JsonLogger, TensorBoardLogger};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let names: Vec<String> = ["loss", "accuracy", "lr_now"].map(String::from).to_vec();
    let exp = ExperimentView::new("bench", dir.path(), "Model", &names, 1_700_000_000);
    let config = json!({"lr": 0.01, "momentum": 0.9, "layers": 4, "activation": "relu",
                        "optimizer": {"Sgd": {"nesterov": true}}});
    let trial_dir = dir.path().join("Model_00000");
    let trial = TrialView::new(0, "4f1c2_00000", Some(&trial_dir), &config);
    let mut row = vec![0.5, 0.9, 0.01, 1.0, 0.01, 1.0, 1_700_000_001.0];

    let mut none = Callbacks::new();
    c.bench_function("callbacks/none_set", |b| {
        b.iter(|| {
            let r = ResultView::new(black_box(&row), false);
            none.on_trial_result(black_box(&trial), &r)
        })
    });

    let mut run = |name: &str, mut cb: Box<dyn Callback>| {
        cb.on_experiment_start(&exp).expect("start");
        cb.on_trial_start(&trial, &StartView::first()).expect("trial start");
        let mut it = 0u64;
        c.bench_function(name, |b| {
            b.iter(|| {
                it += 1;
                row[3] = it as f64;
                cb.on_trial_result(&trial, &ResultView::new(&row, false))
            })
        });
        cb.flush().expect("flush");
    };
    run("callbacks/json_logger", Box::new(JsonLogger::new()));
    run("callbacks/csv_logger", Box::new(CsvLogger::new()));
    run("callbacks/tensorboard_logger", Box::new(TensorBoardLogger::new()));
    run("callbacks/all_builtin_loggers", Box::new(BuiltIn(Callbacks::builtin_loggers(true))));
}

/// The three built-in loggers behind one dispatcher, as the runner holds them.
struct BuiltIn(Callbacks);

impl Callback for BuiltIn {
    fn on_experiment_start(
        &mut self,
        e: &ExperimentView<'_>,
    ) -> Result<(), tune_runtime::callback::CallbackError> {
        self.0.on_experiment_start(e)
    }
    fn on_trial_start(
        &mut self,
        t: &TrialView<'_>,
        s: &StartView<'_>,
    ) -> Result<(), tune_runtime::callback::CallbackError> {
        self.0.on_trial_start(t, s)
    }
    fn on_trial_result(
        &mut self,
        t: &TrialView<'_>,
        r: &ResultView<'_>,
    ) -> Result<(), tune_runtime::callback::CallbackError> {
        self.0.on_trial_result(t, r)
    }
    fn flush(&mut self) -> Result<(), tune_runtime::callback::CallbackError> {
        self.0.flush()
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
