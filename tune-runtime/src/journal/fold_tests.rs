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
        space: None,
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

/// The replay tail a resume gets (the events after the saved states), as the journal of
/// an experiment with one metric builds it.
mod replay_events {
    use super::*;
    use crate::journal::Event;
    use crate::trial::TrialStatus;

    fn trial(trial: u32, searcher: Option<Value>) -> Record {
        Record::Trial {
            trial,
            id: format!("{trial:05}"),
            dir: Some(format!("t{trial}")),
            config: json!({"x": 0.5, "k": trial + 1}),
            searcher,
        }
    }

    /// A row: score, iteration, time this iteration, time total, timestamp.
    fn row(iteration: u64) -> Vec<f64> {
        let it = iteration as f64;
        vec![10.0 * it, it, 1.0, it, 0.0]
    }

    fn result(trial: u32, iteration: u64, done: bool) -> Record {
        Record::Result { trial, v: row(iteration), done }
    }

    fn status(trial: u32, status: TrialStatus) -> Record {
        Record::Status { trial, status, error: None }
    }

    fn state(searcher: Value, scheduler: Value) -> Record {
        Record::State { searcher, scheduler }
    }

    fn load_records(records: &[Record]) -> ExperimentLog<Value> {
        fold_records(records).unwrap()
    }

    /// A result event at `pos` given to both; `Some(iteration)` for one a retry rolled
    /// back.
    fn res(trial: u32, pos: usize, retried: Option<u64>) -> Event {
        res_to(trial, pos, retried, Who::Both)
    }

    fn res_to(trial: u32, pos: usize, retried: Option<u64>, who: Who) -> Event {
        Event::Result { trial, pos, done: false, retried: retried.map(row), who }
    }

    fn added(trial: u32) -> Event {
        Event::Added { trial, config: json!({"x": 0.5, "k": trial + 1}) }
    }

    #[test]
    fn the_events_start_after_the_older_of_the_two_saved_states() {
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            // The scheduler saved its state, the searcher none yet: everything is kept.
            state(Value::Null, json!({"s": 1})),
            result(0, 2, false),
            trial(1, Some(json!({"q": 1}))),
            result(1, 1, false),
            status(0, TrialStatus::Terminated),
            // Null states are no cuts.
            state(Value::Null, Value::Null),
        ]);
        let e = &r.events;
        assert_eq!((e.base, e.sched_from, e.search_from), (2, 2, 4));
        let end = Event::End { trial: 0, error: false, last: Some((row(2), false)) };
        assert_eq!(e.list, [res(0, 1, None), added(1), res(1, 0, None), end]);
        assert_eq!(r.scheduler, Some(json!({"s": 1})));
        assert_eq!(r.searcher, Some(json!({"q": 1})));

        // Once both saved a state, what both hold is dropped.
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            state(json!({"q": 0}), json!({"s": 0})),
            result(0, 2, false),
        ]);
        assert_eq!((r.events.base, r.events.sched_from, r.events.search_from), (2, 2, 2));
        assert_eq!(r.events.list, [res(0, 1, None)]);

        // No saved state at all: the whole experiment.
        let r = load_records(&[experiment(), trial(0, None), result(0, 1, false)]);
        assert_eq!((r.events.base, r.events.sched_from, r.events.search_from), (0, 0, 0));
        assert_eq!(r.events.list, [added(0), res(0, 0, None)]);
        assert_eq!((r.scheduler, r.searcher), (None, None));
    }

    #[test]
    fn a_retry_marks_the_results_it_rolls_back_seen_and_a_resume_keeps_them_for_the_scheduler() {
        let failure = |trial| Record::Failure { trial, attempt: 1, error: "boom".into() };
        let rollback =
            |trial, iteration| Record::Rollback { trial, iteration, rows: None, checkpoint: None };
        let r = load_records(&[
            experiment(),
            trial(0, None),
            result(0, 1, false),
            result(0, 2, false),
            result(0, 3, false),
            // A retry: the scheduler saw 2 and 3, and sees 2 and 3 again below.
            failure(0),
            rollback(0, 1),
            result(0, 2, false),
            result(0, 3, false),
            trial(1, None),
            result(1, 1, false),
            result(1, 2, false),
            failure(1),
            // Not right after a failure of trial 0: a resume's rollback. The scheduler had
            // the results it undoes; the resumed run reports them again to the searcher.
            rollback(0, 2),
            rollback(1, 0),
            Record::Resume { started: 0 },
            result(0, 3, false),
            result(0, 4, false),
            status(0, TrialStatus::Error),
            // A retry clears the last result, and keeps the result it rolls back.
            trial(2, None),
            result(2, 1, false),
            failure(2),
            rollback(2, 0),
            status(2, TrialStatus::Error),
        ]);
        assert_eq!(
            r.events.list,
            [
                added(0),
                res(0, 0, None),
                res(0, 1, Some(2)),
                res(0, 2, Some(3)),
                res(0, 1, None),
                res_to(0, 2, Some(3), Who::Scheduler),
                added(1),
                res_to(1, 0, Some(1), Who::Scheduler),
                res_to(1, 1, Some(2), Who::Scheduler),
                res_to(0, 2, None, Who::Searcher),
                res(0, 3, None),
                Event::End { trial: 0, error: true, last: Some((row(4), false)) },
                added(2),
                res(2, 0, Some(1)),
                Event::End { trial: 2, error: true, last: None },
            ]
        );
        let iterations =
            |t: usize| -> Vec<f64> { r.trials[t].history.chunks_exact(5).map(|r| r[1]).collect() };
        assert_eq!(iterations(0), [1.0, 2.0, 3.0, 4.0]);
        assert_eq!((r.replay[0].redo_upto, r.replay[1].redo_upto), (3, 2));
        assert!(iterations(1).is_empty() && iterations(2).is_empty());
    }
}
