//! What new users ran into: the analysis table with an enum hyperparameter, errors
//! returned from `main`, a second fresh run of an experiment, numbers other tools cannot
//! read, and resource requests that can never be granted.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use tune_runtime::prelude::*;
use tune_runtime::{
    TrainableSpec,
    scheduler::{Asha, Pbt, PbtReplay, Scheduler},
    storage::{ExperimentLog, JOURNAL_FILE},
};

search_space! {
    pub struct Opt {
        lr: f64 = uniform(0.0, 1.0),
        optimizer: Optimizer,
    }

    pub enum Optimizer {
        Sgd { momentum: f64 = uniform(0.0, 0.9) },
        Adam { beta1: f64 = uniform(0.8, 0.99), beta2: f64 = 0.999 },
        Plain,
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Fit {
    loss: f64,
}

#[trainable(config = Opt, metrics = Fit, test = false)]
pub struct Fitter {
    lr: f64,
}

impl Trainable for Fitter {
    fn setup(config: &Opt, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Fitter { lr: config.lr })
    }

    fn step(&mut self) -> TrainResult<Fit> {
        Ok(Fit { loss: self.lr })
    }
}

fn fitter(dir: &Path) -> Tuner<Fitter> {
    Tuner::<Fitter>::new()
        .num_samples(12)
        .stop(Stop::iterations(1))
        .total_cpus(2.0)
        .local_dir(dir)
        .name("exp")
        .seed(1)
        .verbose(0)
}

/// The config columns of `Analysis::table()` come from every trial: each variant's fields
/// get columns, and `config/optimizer` names the variant each trial used. (Before, they
/// came from the first trial only: the other variants' trials lost their columns.)
#[test]
fn the_table_has_the_config_columns_of_every_trial_and_names_the_variant() {
    let dir = tempfile::tempdir().unwrap();
    let a = fitter(dir.path()).run().unwrap();
    let loaded = Analysis::<Opt, Fit>::from_dir(dir.path().join("exp")).unwrap();
    for table in [a.table(Rows::Last), loaded.table(Rows::Last)] {
        let col = |name: &str| {
            table.columns.iter().position(|c| c == name).unwrap_or_else(|| {
                panic!("no column {name} in {:?}", table.columns);
            })
        };
        let (variant, momentum, beta1, beta2, lr) = (
            col("config/optimizer"),
            col("config/optimizer.Sgd.momentum"),
            col("config/optimizer.Adam.beta1"),
            col("config/optimizer.Adam.beta2"),
            col("config/lr"),
        );
        // The variants' fields stay beside the enum's column (in the order the trials
        // first used the variants).
        let mut beside: Vec<&str> =
            table.columns[variant + 1..variant + 4].iter().map(String::as_str).collect();
        beside.sort_unstable();
        assert_eq!(
            beside,
            [
                "config/optimizer.Adam.beta1",
                "config/optimizer.Adam.beta2",
                "config/optimizer.Sgd.momentum"
            ]
        );
        assert!(beta1 < beta2, "a variant's fields in declaration order");
        let mut seen = std::collections::BTreeSet::new();
        for (t, row) in a.trials().iter().zip(&table.rows) {
            assert_eq!(row.len(), table.columns.len());
            assert_eq!(row[lr], t.config().lr.to_string());
            let empty = |cols: &[usize]| cols.iter().all(|&c| row[c].is_empty());
            match &t.config().optimizer {
                Optimizer::Sgd { momentum: m } => {
                    assert_eq!(
                        (row[variant].as_str(), row[momentum].clone()),
                        ("Sgd", m.to_string())
                    );
                    assert!(empty(&[beta1, beta2]), "{row:?}");
                }
                Optimizer::Adam { beta1: b1, beta2: b2 } => {
                    assert_eq!(row[variant], "Adam");
                    assert_eq!(
                        (row[beta1].clone(), row[beta2].clone()),
                        (b1.to_string(), b2.to_string())
                    );
                    assert!(empty(&[momentum]), "{row:?}");
                }
                Optimizer::Plain => {
                    assert_eq!(row[variant], "Plain");
                    assert!(empty(&[momentum, beta1, beta2]), "{row:?}");
                }
            }
            seen.insert(row[variant].clone());
        }
        assert_eq!(seen.len(), 3, "the experiment has trials of every variant: {seen:?}");
        let csv = table.to_csv();
        let widths: Vec<usize> = csv.lines().map(|l| l.split(',').count()).collect();
        assert!(widths.iter().all(|w| *w == table.columns.len()), "{csv}");
    }
}

/// Errors returned from `main` (and `unwrap`ped) print their message, with its advice,
/// in their `Debug` form: not the variant and its fields.
#[test]
fn errors_print_their_message_in_their_debug_form() {
    fn same<E: std::fmt::Debug + std::fmt::Display>(e: E) -> String {
        assert_eq!(format!("{e:?}"), e.to_string());
        e.to_string()
    }
    let dir = tempfile::tempdir().unwrap();
    // RunError: an interrupted run's advice to resume, and the others.
    let interrupted =
        RunError::Interrupted { experiment_dir: dir.path().join("exp"), unfinished: 3 };
    assert!(same(interrupted).contains(".resume(true)"));
    same(fitter(dir.path()).num_samples(0).run().unwrap_err());
    fitter(dir.path()).run().unwrap();
    assert!(same(fitter(dir.path()).run().unwrap_err()).contains(".resume(true)"));
    // The errors of loading an experiment, a config, a checkpoint, a replay, a scheduler.
    let missing = dir.path().join("missing");
    same(Analysis::<Opt, Fit>::from_dir(&missing).unwrap_err());
    same(ExperimentLog::from_dir(&missing).unwrap_err());
    same(Opt::from_json_str("{\"lr\": 2.0}").unwrap_err());
    let mut f = Fitter { lr: 0.1 };
    same(tune_runtime::storage::restore_checkpoint(&mut f, &missing).unwrap_err());
    same(PbtReplay::<Opt>::from_log(&missing, tune_runtime::TrialId::new(0)).unwrap_err());
    same(Asha::<Fit>::builder(Fit::LOSS, Mode::Min).reduction_factor(0.5).build().unwrap_err());
    let mut pbt = Pbt::<Opt, Fit>::builder(Fit::LOSS, Mode::Min)
        .mutate("lr", tune_runtime::scheduler::Mutation::perturb())
        .build()
        .unwrap();
    same(pbt.restore_state(serde_json::json!({"kind": "Asha"})).unwrap_err());
    same(TrainError::msg("diverged"));
    same(tune_runtime::Resources::default().with_custom("tpu", -1.0).validate().unwrap_err());
}

/// A second fresh run of an experiment that exists is refused with the advice to resume
/// it, and changes nothing.
#[test]
fn a_second_fresh_run_suggests_resume() {
    let dir = tempfile::tempdir().unwrap();
    fitter(dir.path()).run().unwrap();
    let journal = std::fs::read(dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
    let err = fitter(dir.path()).run().unwrap_err();
    assert!(matches!(err, RunError::ExperimentExists { .. }), "{err}");
    assert!(err.to_string().contains("`.resume(true)`"), "{err}");
    assert_eq!(std::fs::read(dir.path().join("exp").join(JOURNAL_FILE)).unwrap(), journal);
    fitter(dir.path()).resume(true).run().unwrap();
}

search_space! {
    pub struct Nothing {
        x: f64 = 1.0,
    }
}

#[derive(Metrics, Debug, Clone)]
pub struct Extremes {
    huge: f64,
    tiny: f64,
    /// 2^70: above every 64-bit integer.
    past_u64: f64,
    plain: f64,
}

#[trainable(config = Nothing, metrics = Extremes, test = false)]
pub struct Extreme {}

impl Trainable for Extreme {
    fn setup(_config: &Nothing, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Extreme {})
    }

    fn step(&mut self) -> TrainResult<Extremes> {
        Ok(Extremes { huge: -1e300, tiny: 2.5e-300, past_u64: 2f64.powi(70), plain: 0.5 })
    }
}

/// The number tokens of a JSON line or CSV row (the text between separators that starts
/// like a number).
fn number_tokens(line: &str) -> Vec<&str> {
    line.split([',', ':', '[', ']', '{', '}'])
        .map(str::trim)
        .filter(|t| t.starts_with(|c: char| c.is_ascii_digit() || c == '-'))
        // Only numbers: not Ray's `date` (`2026-12-01_17-03-55`), trial id or `node_ip`.
        .filter(|t| t.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)))
        .filter(|t| t.matches('.').count() <= 1)
        .collect()
}

/// What pandas (and JSON readers built on 64-bit integers) read: a number written
/// without a fraction or an exponent must fit in 64 bits; a float is written with an
/// exponent when it is very large or very small.
fn readable(token: &str) -> bool {
    if token.contains(['.', 'e', 'E']) {
        token.parse::<f64>().is_ok() && token.len() <= 24
    } else {
        token.parse::<i64>().is_ok() || token.parse::<u64>().is_ok()
    }
}

/// Floats at or above 2^64 and tiny ones are written with an exponent in `result.json`,
/// `progress.csv` and the journal, and read back as the same numbers. (Before, `1e300`
/// was written as a 301-digit integer, which pandas cannot read.)
#[test]
fn huge_and_tiny_floats_are_written_with_an_exponent() {
    let dir = tempfile::tempdir().unwrap();
    let a = Tuner::<Extreme>::new()
        .num_samples(1)
        .stop(Stop::iterations(2))
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .run()
        .unwrap();
    let tdir = a.trials()[0].dir().unwrap();
    let expect = [-1e300, 2.5e-300, 2f64.powi(70), 0.5];
    let result = std::fs::read_to_string(tdir.join("result.json")).unwrap();
    for line in result.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        for (name, want) in Extremes::NAMES.iter().zip(expect) {
            assert_eq!(v[name].as_f64(), Some(want), "{name} in {line}");
        }
        for t in number_tokens(line) {
            assert!(readable(t), "result.json: `{t}` in {line}");
        }
    }
    let csv = std::fs::read_to_string(tdir.join("progress.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len());
        for (name, want) in Extremes::NAMES.iter().zip(expect) {
            let k = header.iter().position(|h| h == name).unwrap();
            assert_eq!(cells[k].parse::<f64>().ok(), Some(want), "{name} in {line}");
        }
        for t in number_tokens(line) {
            assert!(readable(t), "progress.csv: `{t}` in {line}");
        }
    }
    let journal = std::fs::read_to_string(dir.path().join("exp").join(JOURNAL_FILE)).unwrap();
    for line in journal.lines().filter(|l| l.starts_with("{\"type\":\"result\"")) {
        for t in number_tokens(line) {
            assert!(readable(t), "journal: `{t}` in {line}");
        }
    }
    let loaded = Analysis::<Nothing, Extremes>::from_dir(dir.path().join("exp")).unwrap();
    let r = loaded.trials()[0].last_result().unwrap();
    assert_eq!(
        [r.get(Extremes::HUGE), r.get(Extremes::TINY), r.get(Extremes::PAST_U64)],
        expect[..3]
    );
}

#[derive(Metrics, Debug, Clone)]
pub struct Nil {
    v: f64,
}

/// Asks for 8 CPUs whatever its config.
#[trainable(config = Nothing, metrics = Nil, resources(cpu = 8, gpu = 0), test = false)]
pub struct Greedy {}

impl Trainable for Greedy {
    fn setup(_config: &Nothing, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(Greedy {})
    }

    fn step(&mut self) -> TrainResult<Nil> {
        Ok(Nil { v: 1.0 })
    }
}

/// Asks for CPUs by its config.
#[trainable(config = Nothing, metrics = Nil, resources(cpu = |c: &Nothing| c.x * 8.0), test = false)]
pub struct ByConfig {}

impl Trainable for ByConfig {
    fn setup(_config: &Nothing, _ctx: &TrialContext) -> TrainResult<Self> {
        Ok(ByConfig {})
    }

    fn step(&mut self) -> TrainResult<Nil> {
        Ok(Nil { v: 1.0 })
    }
}

/// A literal resource request that can never be granted (`cpu = 8` on 2 CPUs) is refused
/// by `run()` before the first trial, with what to change; nothing is written. (Before,
/// the run returned `Ok` with every trial in ERROR.)
#[test]
fn an_impossible_literal_resource_request_is_refused_before_the_first_trial() {
    let eight = tune_runtime::Resources { cpu: 8.0, gpu: 0.0, ..Default::default() };
    assert_eq!(Greedy::static_resources(), Some(eight));
    assert_eq!(Fitter::static_resources(), Some(tune_runtime::Resources::default()));
    assert_eq!(ByConfig::static_resources(), None, "depends on the config");
    let dir = tempfile::tempdir().unwrap();
    let err = Tuner::<Greedy>::new()
        .num_samples(2)
        .stop(Stop::iterations(1))
        .total_cpus(2.0)
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .run()
        .unwrap_err();
    assert!(matches!(err, RunError::Resources(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("cpu") && msg.contains("resources(..)") && msg.contains("total_cpus"),
        "{msg}"
    );
    assert!(!dir.path().join("exp").exists(), "nothing was written");
    // The same request with enough CPUs runs.
    let a = Tuner::<Greedy>::new()
        .num_samples(1)
        .stop(Stop::iterations(1))
        .total_cpus(8.0)
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(a.count(TrialStatus::Terminated), 1);
}
