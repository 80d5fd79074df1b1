//! The on-disk layout: per-trial files parse and match the results; the journal reloads
//! into the same analysis; seeds reproduce experiments.
#![allow(clippy::unwrap_used)]

mod support;

use support::{Cfg, SCORE, Score, Toy, new_probe, overrides};
use tune_runtime::{
    Analysis, Mode, Scope, Stop, TrialStatus, Tuner, analysis::Rows, storage::JOURNAL_FILE,
    trial::Auto,
};

fn run(dir: &std::path::Path, seed: u64) -> Analysis<Cfg, Score> {
    let (tag, _) = new_probe();
    Tuner::<Toy>::new()
        .local_dir(dir)
        .name("exp")
        .seed(seed)
        .verbose(0)
        .total_cpus(2.0)
        .num_samples(2)
        .stop(Stop::iterations(3))
        .config_overrides_json(overrides(tag, ""))
        .run()
        .unwrap()
}

#[test]
fn trial_files_parse_and_match_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), 1);
    assert_eq!(a.trials().len(), 6);
    let exp = dir.path().join("exp");
    assert_eq!(a.experiment_dir(), exp);
    assert!(exp.join(JOURNAL_FILE).is_file());
    for t in a.trials() {
        let tdir = t.dir().unwrap();
        assert_eq!(tdir.parent().unwrap(), exp, "trial dirs sit in the experiment dir");
        let name = tdir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("Toy_{}_", t.id())), "{name}");
        assert!(name.contains(&format!("k={}", t.config().k)), "{name}");
        // params.json is the config.
        let params: Cfg =
            serde_json::from_slice(&std::fs::read(tdir.join("params.json")).unwrap()).unwrap();
        assert_eq!(&params, t.config());
        // result.json: one JSON object per result with metrics and automatic fields.
        let text = std::fs::read_to_string(tdir.join("result.json")).unwrap();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        for (line, r) in lines.iter().zip(t.results()) {
            assert_eq!(line["score"].as_f64().unwrap(), r.get(SCORE));
            assert_eq!(line["training_iteration"].as_u64().unwrap(), r.training_iteration());
            assert_eq!(line["time_total_s"].as_f64().unwrap(), r.time_total_s());
            // Ray's trial id: an experiment tag, then the trial's index in five digits.
            let id = line["trial_id"].as_str().unwrap();
            assert!(id.ends_with(&format!("_{}", t.id())), "{id}");
            assert!(line["timestamp"].as_u64().unwrap() > 1_600_000_000);
        }
        assert_eq!(
            lines.iter().map(|l| l["done"].as_bool().unwrap()).collect::<Vec<_>>(),
            [false, false, true]
        );
        // progress.csv: header then one row per result, Ray's columns and the config.
        let csv = std::fs::read_to_string(tdir.join("progress.csv")).unwrap();
        let rows: Vec<&str> = csv.lines().collect();
        let header: Vec<&str> = rows[0].split(',').collect();
        for col in ["score", "training_iteration", "time_total_s", "trial_id", "done", "config/k"] {
            assert!(header.contains(&col), "{col} missing from {header:?}");
        }
        let at = |name: &str| header.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows.len(), 4);
        let cells: Vec<&str> = rows[3].split(',').collect();
        assert_eq!(cells.len(), header.len());
        assert_eq!(cells[at("score")].parse::<f64>().unwrap(), t.last_result().unwrap().get(SCORE));
        assert_eq!(cells[at("training_iteration")], "3");
        assert_eq!(cells[at("done")], "True"); // Python's spelling, as Ray writes it
        assert_eq!(cells[at("config/k")], t.config().k.to_string());
        assert!(!tdir.join("error.txt").exists());
    }
}

#[test]
fn the_journal_reloads_into_the_same_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), 2);
    let b = Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
    assert_eq!(a.trials().len(), b.trials().len());
    for (x, y) in a.trials().iter().zip(b.trials()) {
        assert_eq!(x.id(), y.id());
        assert_eq!(x.config(), y.config());
        assert_eq!(x.status(), y.status());
        assert_eq!(x.dir(), y.dir());
        let xs: Vec<Vec<f64>> = x.results().map(|r| r.values().to_vec()).collect();
        let ys: Vec<Vec<f64>> = y.results().map(|r| r.values().to_vec()).collect();
        assert_eq!(xs, ys);
    }
    for scope in [Scope::Last, Scope::All, Scope::LastAvg(2)] {
        assert_eq!(
            a.best_trial(SCORE, Mode::Max, scope).unwrap().id(),
            b.best_trial(SCORE, Mode::Max, scope).unwrap().id()
        );
    }
    assert_eq!(a.table(Rows::Last), b.table(Rows::Last));
    // A crash mid-write leaves a partial last line, which is ignored.
    let journal = dir.path().join("exp").join(JOURNAL_FILE);
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"type\":\"result\",\"tri");
    std::fs::write(&journal, text).unwrap();
    assert_eq!(Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap().trials().len(), 6);
}

#[test]
fn analysis_table_and_best() {
    let dir = tempfile::tempdir().unwrap();
    let a = run(dir.path(), 3);
    let best = a.best_trial(SCORE, Mode::Max, Scope::Last).unwrap();
    let top =
        a.trials().iter().map(|t| t.last_result().unwrap().get(SCORE)).fold(f64::MIN, f64::max);
    assert_eq!(best.last_result().unwrap().get(SCORE), top);
    let cfg: &Cfg = a.best_config(SCORE, Mode::Max, Scope::Last).unwrap();
    assert_eq!(cfg, best.config());
    let worst = a.best_result(SCORE, Mode::Min, Scope::All).unwrap();
    assert_eq!(worst.get(Auto::TrainingIteration), 1.0);
    let table = a.table(Rows::Best(SCORE.into(), Mode::Max));
    assert_eq!(table.rows.len(), 6);
    assert!(table.columns.contains(&"config/x".to_string()));
    let path = dir.path().join("table.csv");
    table.write_csv(&path).unwrap();
    let csv = std::fs::read_to_string(&path).unwrap();
    assert_eq!(csv.lines().count(), 7);
    assert!(csv.lines().skip(1).all(|l| l.split(',').count() == table.columns.len()));
    assert_eq!(a.count(TrialStatus::Terminated), 6);
}

#[test]
fn a_seed_reproduces_the_experiment() {
    let (d1, d2, d3) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let configs = |a: &Analysis<Cfg, Score>| {
        a.trials().iter().map(|t| (t.config().x, t.config().k)).collect::<Vec<_>>()
    };
    let (a, b, c) = (run(d1.path(), 42), run(d2.path(), 42), run(d3.path(), 43));
    assert_eq!(configs(&a), configs(&b));
    assert_ne!(configs(&a), configs(&c));
}

#[test]
fn file_logging_off_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (tag, _) = new_probe();
    let a = Tuner::<Toy>::new()
        .local_dir(dir.path())
        .name("exp")
        .verbose(0)
        .file_logging(false)
        .stop(Stop::iterations(2))
        .config_overrides_json(overrides(tag, ""))
        .run()
        .unwrap();
    assert_eq!(a.trials().len(), 3);
    assert!(a.trials().iter().all(|t| t.dir().is_none() && t.num_results() == 2));
    assert!(!dir.path().join("exp").exists());
}
