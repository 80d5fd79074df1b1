//! The built-in loggers driven through their callbacks, as the runner drives them.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{CsvLogger, JsonLogger, TensorBoardLogger};
use crate::callback::{
    Callback, Callbacks, CheckpointView, EndKind, ExperimentView, KeptView, ResultView, StartView,
    TrialView,
};

fn row(loss: f64, it: u64) -> Vec<f64> {
    vec![loss, it as f64, 0.5, 0.5 * it as f64, 1_700_000_000.0 + it as f64]
}

fn loggers(dir: &Path) -> Callbacks {
    let mut c = Callbacks::builtin_loggers(true);
    let names = vec!["loss".to_string()];
    c.on_experiment_start(&ExperimentView::new("exp", dir, "Model", &names, 7)).unwrap();
    c
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The event records of every TensorBoard file of a directory, checked frame by frame.
fn tb_records(dir: &Path) -> (usize, Vec<Vec<u8>>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."))
        .collect();
    files.sort();
    let mut records = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let masked = |d: &[u8]| crc32c::crc32c(d).rotate_right(15).wrapping_add(0xa282_ead8);
            let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
            assert_eq!(len_crc, masked(&bytes[at..at + 8]));
            let data = &bytes[at + 12..at + 12 + len];
            let data_crc =
                u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(data_crc, masked(data));
            records.push(data.to_vec());
            at += 16 + len;
        }
    }
    (files.len(), records)
}

#[test]
fn a_trial_writes_ray_rows_csv_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = loggers(dir.path());
    let config = json!({"lr": 0.01, "name": "a,b", "opt": {"Sgd": {"m": 0.9}}});
    let tdir = dir.path().join("Model_00000");
    let t = TrialView::new(0, "4f1c2_00000", Some(&tdir), &config);
    c.on_trial_start(&t, &StartView::first()).unwrap();
    c.on_trial_result(&t, &ResultView::new(&row(0.9, 1), false)).unwrap();
    let cp = tdir.join("checkpoint_000002");
    c.on_checkpoint(&t, &CheckpointView::new(2, &cp)).unwrap();
    c.on_trial_result(
        &t,
        &ResultView::new(&row(0.5, 2), false).with_checkpoint("checkpoint_000002"),
    )
    .unwrap();
    c.on_trial_result(&t, &ResultView::new(&row(0.4, 3), true)).unwrap();
    c.on_trial_complete(&t).unwrap();
    c.on_experiment_end(EndKind::Finished).unwrap();

    let rows = lines(&tdir.join("result.json"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["loss"], 0.5);
    assert_eq!(rows[1]["checkpoint_dir_name"], "checkpoint_000002");
    assert_eq!(rows[1]["should_checkpoint"], true);
    assert_eq!(rows[0]["checkpoint_dir_name"], Value::Null);
    assert_eq!(rows[2]["done"], true);
    assert_eq!(rows[0]["done"], false);
    assert_eq!(rows[2]["trial_id"], "4f1c2_00000");
    assert_eq!(rows[2]["iterations_since_restore"], 3);
    assert_eq!(rows[2]["time_since_restore"], 1.5);
    assert_eq!(rows[2]["date"], "2023-11-14_22-13-23");
    assert_eq!(rows[2]["pid"], std::process::id());
    assert_eq!(rows[2]["config"], config);
    for key in ["hostname", "node_ip", "timestamp", "time_this_iter_s", "time_total_s"] {
        assert!(!rows[2][key].is_null(), "{key}");
    }
    let params: Value =
        serde_json::from_str(&std::fs::read_to_string(tdir.join("params.json")).unwrap()).unwrap();
    assert_eq!(params, config);

    let csv = std::fs::read_to_string(tdir.join("progress.csv")).unwrap();
    let mut csv_lines = csv.lines();
    assert_eq!(
        csv_lines.next().unwrap(),
        "loss,training_iteration,time_this_iter_s,time_total_s,timestamp,trial_id,done,date,pid,\
         hostname,node_ip,time_since_restore,iterations_since_restore,checkpoint_dir_name,\
         should_checkpoint,config/lr,config/name,config/opt/Sgd/m"
    );
    let second = csv_lines.nth(1).unwrap();
    assert!(
        second.starts_with("0.5,2,0.5,1.0,1700000002,4f1c2_00000,False,2023-11-14_22-13-22,"),
        "{second}"
    );
    assert!(second.ends_with(",1.0,2,checkpoint_000002,True,0.01,\"a,b\",0.9"), "{second}");
    assert_eq!(csv.lines().count(), 4);

    let (files, records) = tb_records(&tdir);
    assert_eq!(files, 1);
    // file_version, 3 results, 3 HParams summaries.
    assert_eq!(records.len(), 7);
    assert!(records[0].windows(13).any(|w| w == b"brain.Event:2"));
    assert!(records[1].windows(13).any(|w| w == b"ray/tune/loss"));
    assert!(records[6].windows(26).any(|w| w == b"_hparams_/session_end_info"));
}

#[test]
fn a_retry_rewrites_every_file_from_the_rows_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = loggers(dir.path());
    let config = json!({"lr": 0.1});
    let tdir = dir.path().join("Model_00001");
    let t = TrialView::new(1, "4f1c2_00001", Some(&tdir), &config);
    c.on_trial_start(&t, &StartView::first()).unwrap();
    let mut kept = Vec::new();
    for it in 1..=4 {
        let r = row(1.0 / it as f64, it);
        let result = ResultView::new(&r, false);
        let result = if it == 2 { result.with_checkpoint("checkpoint_000002") } else { result };
        c.on_trial_result(&t, &result).unwrap();
        if it <= 2 {
            kept.extend(r);
        }
    }
    c.flush().unwrap();
    // The trial failed after iteration 4 and goes back to its checkpoint of iteration 2.
    let cps = [(2, "checkpoint_000002")];
    c.on_trial_reset(&t, &KeptView::new(&kept, 5, false).with_checkpoints(&cps)).unwrap();
    let cp = tdir.join("checkpoint_000002");
    c.on_trial_start(&t, &StartView::restored(&cp, 2, 1.0)).unwrap();
    for it in 3..=5 {
        c.on_trial_result(&t, &ResultView::new(&row(0.1, it), it == 5)).unwrap();
    }
    c.on_trial_complete(&t).unwrap();

    let rows = lines(&tdir.join("result.json"));
    let its: Vec<u64> = rows.iter().map(|r| r["training_iteration"].as_u64().unwrap()).collect();
    assert_eq!(its, [1, 2, 3, 4, 5]);
    assert_eq!(rows[1]["checkpoint_dir_name"], "checkpoint_000002");
    assert_eq!(rows[2]["loss"], 0.1, "iteration 3 is the retried one");
    assert_eq!(rows[2]["iterations_since_restore"], 1);
    assert_eq!(rows[4]["iterations_since_restore"], 3);
    assert_eq!(rows[4]["time_since_restore"], 1.5);
    let csv = std::fs::read_to_string(tdir.join("progress.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert_eq!(csv.lines().filter(|l| l.starts_with("loss,")).count(), 1);
    let (files, records) = tb_records(&tdir);
    assert_eq!(files, 1, "the old event file was replaced");
    // file_version, 2 kept + 3 new results, 3 HParams summaries.
    assert_eq!(records.len(), 9);
}

#[test]
fn a_resume_in_a_new_process_rewrites_then_appends_and_an_unpause_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"lr": 0.1});
    let tdir = dir.path().join("Model_00002");
    let t = TrialView::new(2, "4f1c2_00002", Some(&tdir), &config);
    let mut first = loggers(dir.path());
    first.on_trial_start(&t, &StartView::first()).unwrap();
    first.on_trial_result(&t, &ResultView::new(&row(0.5, 1), false)).unwrap();
    // Paused in memory, then going on: nothing is truncated.
    first.on_trial_start(&t, &StartView::unpaused(1, 0.5)).unwrap();
    first.on_trial_result(&t, &ResultView::new(&row(0.4, 2), false)).unwrap();
    first.on_trial_result(&t, &ResultView::new(&row(0.3, 3), false)).unwrap();
    first.flush().unwrap();
    assert_eq!(lines(&tdir.join("result.json")).len(), 3);
    drop(first);

    // A new process resumes the experiment: the journal kept 2 rows (the third was lost).
    let mut second = loggers(dir.path());
    let kept: Vec<f64> = [row(0.5, 1), row(0.4, 2)].concat();
    second.on_trial_reset(&t, &KeptView::new(&kept, 5, false)).unwrap();
    let cp = tdir.join("checkpoint_000002");
    second.on_trial_start(&t, &StartView::restored(&cp, 2, 1.0)).unwrap();
    second.on_trial_result(&t, &ResultView::new(&row(0.2, 3), true)).unwrap();
    second.on_trial_complete(&t).unwrap();
    let rows = lines(&tdir.join("result.json"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2]["loss"], 0.2);
    assert_eq!(rows[2]["iterations_since_restore"], 1);
    assert_eq!(std::fs::read_to_string(tdir.join("progress.csv")).unwrap().lines().count(), 4);
    assert_eq!(tb_records(&tdir).0, 1);
}

#[test]
fn write_failures_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // The trial directory is a file: nothing can be created in it.
    let tdir = dir.path().join("Model_00000");
    std::fs::write(&tdir, "").unwrap();
    let config = json!({});
    let t = TrialView::new(0, "x_00000", Some(&tdir), &config);
    for mut logger in [
        Box::new(JsonLogger::new()) as Box<dyn Callback>,
        Box::new(CsvLogger::new()),
        Box::new(TensorBoardLogger::new()),
    ] {
        let e = logger.on_trial_start(&t, &StartView::first()).unwrap_err();
        assert!(e.path.starts_with(&tdir), "{}", e.path.display());
        assert!(e.to_string().starts_with("writing `"), "{e}");
    }
}

#[test]
fn trials_without_a_directory_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = loggers(dir.path());
    let config = json!({});
    let t = TrialView::new(0, "x_00000", None, &config);
    c.on_trial_start(&t, &StartView::first()).unwrap();
    c.on_trial_result(&t, &ResultView::new(&row(0.1, 1), true)).unwrap();
    c.on_trial_complete(&t).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
