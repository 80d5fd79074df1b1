#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::journal::{JOURNAL_FILE, Record};

fn experiment() -> Record {
    Record::Experiment {
        version: 3,
        name: "exp".into(),
        trainable: "Counter".into(),
        metrics: vec!["score".into()],
        seed: 7,
        started: 100,
    }
}

fn trial(trial: u32) -> Record {
    Record::Trial {
        trial,
        id: format!("{trial:05}"),
        dir: Some(format!("t{trial}")),
        config: json!({"lr": trial}),
        searcher: None,
    }
}

fn result(trial: u32, iteration: u64) -> Record {
    let it = iteration as f64;
    Record::Result { trial, v: vec![10.0 * it, it, 1.0, it, 0.0], done: false }
}

fn checkpoint(trial: u32, iteration: u64) -> Record {
    Record::Checkpoint { trial, iteration, path: format!("t{trial}/checkpoint_{iteration}") }
}

fn fold_records(records: &[Record]) -> Result<ExperimentLog<Value>, JournalError> {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    let path = dir.path().join(JOURNAL_FILE);
    std::fs::write(&path, text).unwrap();
    fold_file(&path, dir.path(), true, &mut |_, v| Ok(v))
}

fn iterations(t: &TrialLog<Value>) -> Vec<u64> {
    (0..t.num_results()).filter_map(|p| t.iteration_at(p)).collect()
}

#[test]
fn an_exploit_to_a_lower_iteration_keeps_the_rows_and_its_lineage() {
    let exploit = Record::Exploit {
        trial: 0,
        source: 1,
        target_iteration: 6,
        source_iteration: 3,
        old_config: json!({"lr": 0}),
        new_config: json!({"lr": 9}),
        source_config: json!({"lr": 1}),
        checkpoint: Some("t0/checkpoint_3".into()),
    };
    let mut records = vec![experiment(), trial(0), trial(1)];
    records.extend((1..=6).map(|i| result(0, i)));
    records.push(checkpoint(0, 6));
    records.push(checkpoint(0, 3));
    records.push(exploit);
    records.extend([result(0, 4), result(0, 5)]);
    let log = fold_records(&records).unwrap();
    let t = &log.trials()[0];
    assert_eq!(iterations(t), [1, 2, 3, 4, 5, 6, 4, 5]);
    assert_eq!(t.config(), &json!({"lr": 9}));
    // The copy is the checkpoint of the new epoch, after all 6 earlier rows; the trial's
    // own checkpoint_6 belongs to the old epoch.
    let last = t.checkpoints().last().unwrap();
    assert_eq!((last.iteration, last.rows, last.epoch), (3, 6, 1));
    assert_eq!(t.checkpoints()[0].epoch, 0);

    // A rollback to the copy keeps every row up to the exploit and the new config.
    let mut again = records.clone();
    again.push(Record::Rollback {
        trial: 0,
        iteration: 3,
        rows: Some(6),
        checkpoint: Some("t0/checkpoint_3".into()),
    });
    let log = fold_records(&again).unwrap();
    assert_eq!(iterations(&log.trials()[0]), [1, 2, 3, 4, 5, 6]);
    assert_eq!(log.trials()[0].config(), &json!({"lr": 9}));

    // Falling back past the exploit (the copy was corrupt) restores the old config.
    let mut back = records;
    back.push(Record::Rollback {
        trial: 0,
        iteration: 6,
        rows: Some(6),
        checkpoint: Some("t0/checkpoint_6".into()),
    });
    let log = fold_records(&back).unwrap();
    let t = &log.trials()[0];
    assert_eq!(t.config(), &json!({"lr": 0}));
    assert_eq!(t.checkpoints().len(), 1);
}

#[test]
fn a_version_2_rollback_keeps_the_rows_up_to_its_iteration() {
    let mut records = vec![experiment(), trial(0)];
    records.extend((1..=5).map(|i| result(0, i)));
    records.push(checkpoint(0, 2));
    records.push(checkpoint(0, 4));
    records.push(Record::Rollback { trial: 0, iteration: 2, rows: None, checkpoint: None });
    let log = fold_records(&records).unwrap();
    let t = &log.trials()[0];
    assert_eq!(iterations(t), [1, 2]);
    assert_eq!(t.checkpoints().iter().map(|c| c.iteration).collect::<Vec<_>>(), [2]);
}

#[test]
fn a_result_row_of_the_wrong_width_is_an_error_not_dropped() {
    let records = [
        experiment(),
        trial(0),
        Record::Result { trial: 0, v: vec![1.0, 1.0, 0.5, 0.5], done: false },
    ];
    let err = fold_records(&records).unwrap_err().to_string();
    assert!(err.contains("line 3") && err.contains("4 values"), "{err}");
}

#[test]
fn records_of_unknown_trials_and_escaping_paths_are_errors() {
    let err = fold_records(&[experiment(), result(3, 1)]).unwrap_err().to_string();
    assert!(err.contains("trial 3"), "{err}");
    let evil = Record::Checkpoint { trial: 0, iteration: 1, path: "../elsewhere".into() };
    let err = fold_records(&[experiment(), trial(0), evil]).unwrap_err().to_string();
    assert!(err.contains("not inside the experiment directory"), "{err}");
    let err = fold_records(&[trial(0)]).unwrap_err().to_string();
    assert!(err.contains("does not start with"), "{err}");
}

#[test]
fn the_last_fresh_run_is_the_experiment_and_runs_are_listed() {
    let records = [
        experiment(),
        trial(0),
        result(0, 1),
        Record::End { ended: 110 },
        Record::Resume { started: 120 },
        result(0, 2),
        experiment(),
        trial(0),
    ];
    let log = fold_records(&records).unwrap();
    assert_eq!(log.fresh_runs, 2);
    assert_eq!(log.trials().len(), 1);
    assert_eq!(log.trials()[0].num_results(), 0);
    assert_eq!(log.runs().len(), 1);
    let records = [
        experiment(),
        Record::End { ended: 110 },
        Record::Resume { started: 120 },
        Record::End { ended: 130 },
    ];
    let log = fold_records(&records).unwrap();
    let ends: Vec<_> = log.runs().iter().map(|r| (r.resumed, r.ended)).collect();
    assert_eq!(ends, [(false, Some(110)), (true, Some(130))]);
    assert!(log.is_finished());
}

#[test]
fn the_untyped_view_names_columns() {
    let log = fold_records(&[experiment(), trial(0), result(0, 1)]).unwrap();
    assert_eq!(log.column("score"), Some(0));
    assert_eq!(log.column("time_total_s"), Some(3));
    assert_eq!(log.column("nope"), None);
    assert_eq!(log.trials()[0].rows().next().unwrap(), [10.0, 1.0, 1.0, 1.0, 0.0]);
}
