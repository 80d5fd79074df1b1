//! The `tune` command and its dashboard read an experiment shared through PostgreSQL
//! (features `cli` and `postgres`) from the database's URL as they read one from its
//! directory.
//!
//! The server is `TUNE_TEST_POSTGRES_URL` (default `postgres://root@127.0.0.1:5432/test`);
//! the test works in a schema of its own, dropped at its end. Without a server it says
//! loudly that it was skipped, and fails when `CI` is set.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tune_runtime::shared::PostgresJournal;
use tune_runtime::shared::postgres_testing::TestSchema;

fn tune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tune")).args(args).env("NO_COLOR", "").output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = tune(args);
    assert!(out.status.success(), "tune {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = tune(args);
    assert!(!out.status.success(), "tune {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// The rows of `show --json` without what differs between two runs of one experiment
/// (the trial ids hold the start time; durations).
fn comparable(rows: &Value) -> Vec<Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let o = r.as_object_mut().unwrap();
            o.remove("trial_id");
            o.remove("time_total_s");
            r
        })
        .collect()
}

#[test]
fn show_best_export_report_and_dashboard_read_an_experiment_from_postgres() {
    let Some(db) = TestSchema::create("cli_reads_postgres") else { return };
    let root = tempfile::tempdir().unwrap();
    // The fixture experiment in a directory, and the same one shared through PostgreSQL.
    let files = support::fixture::run(&root.path().join("files"), "exp", 4);
    let local = root.path().join("pg");
    for (name, iterations) in [("exp", 4), ("other", 2)] {
        let journal = PostgresJournal::connect(&db.url, name).unwrap();
        support::fixture::tuner(&local, name, iterations, 1)
            .shared_journal(journal)
            .run()
            .expect("the shared fixture runs");
    }
    let (url, files_s, local_s) =
        (db.url.as_str(), files.to_string_lossy(), local.to_string_lossy());
    let from_pg = ["--experiment", "exp", "--local-dir", &local_s];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter().chain(&from_pg).map(|a| a.to_string()).collect()
    };
    let run = |args: Vec<String>| json(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // show: the same table as the directory's, sorted and filtered the same way.
    let rows = run(with(&["show", url, "--sort", "loss", "--json"]));
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert_eq!(
        comparable(&rows),
        comparable(&json(&["show", &files_s, "--sort", "loss", "--json"]))
    );
    let errored = run(with(&["show", url, "--filter", "status=ERROR", "--json"]));
    assert_eq!(errored.as_array().unwrap().len(), 1);
    assert_eq!(errored[0]["config/lr"], 0.001);

    // best: the config, and its checkpoint under the run's local_dir.
    let best = run(with(&["best", url, "--metric", "loss", "--mode", "min", "--json"]));
    assert_eq!(best["config"]["lr"], 0.1);
    assert_eq!(best["value"], 0.025);
    let checkpoint = best["checkpoint"].as_str().unwrap();
    assert!(checkpoint.starts_with(&*local_s) && Path::new(checkpoint).is_dir(), "{best}");

    // export: the same CSV as the directory's but for the trial ids and times.
    let args = with(&["export", url, "--csv"]);
    let csv = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("trial_id,status,iter,loss,acc,config/lr"));
    assert_eq!(lines.count(), 3);

    // report: an HTML file of the three trials.
    let html = root.path().join("report.html");
    let html_s = html.to_string_lossy();
    let args = with(&["report", url, "-o", &html_s, "--metric", "acc", "--mode", "max"]);
    let said = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(said.contains("(3 trials)"), "{said}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("\"metric\":\"acc\""));

    // ls: the database's experiments.
    let list = json(&["ls", url, "--json"]);
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["exp", "other"]);
    assert_eq!(list[0]["counts"]["TERMINATED"], 2);
    assert_eq!(list[0]["counts"]["ERROR"], 1);
    assert_eq!(list[1]["trials"], 3);
    assert!(ok(&["ls", url]).contains("loss=0.025"));

    // Mistakes say what to change, and create nothing in the database.
    let err = fails(&["show", url]);
    assert!(err.contains("--experiment NAME") && err.contains("holds: exp, other"), "{err}");
    let err = fails(&["show", url, "--experiment", "nope"]);
    assert!(err.contains("no experiment `nope`; it holds: exp, other"), "{err}");
    assert_eq!(PostgresJournal::experiments(url).unwrap(), ["exp", "other"]);
    let err = fails(&["show", &files_s, "--experiment", "exp"]);
    assert!(err.contains("go with a PostgreSQL URL"), "{err}");
    let empty = TestSchema::create("cli_reads_postgres_empty").unwrap();
    let err = fails(&["show", &empty.url, "--experiment", "exp"]);
    assert!(err.contains("it holds none"), "{err}");
    assert!(PostgresJournal::experiments(&empty.url).unwrap().is_empty());

    // The dashboard serves the database's experiments.
    let (_server, addr) = support::start_dashboard(Path::new(url));
    let (status, list) = support::http("GET", &addr, "/api/experiments");
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "exp");
    assert_eq!(list[0]["trials"], 3);
    assert_eq!(list[1]["name"], "other");
    let (status, body) = support::http("GET", &addr, "/api/exp/exp");
    assert_eq!(status, 200);
    let msg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(msg["data"]["trials"].as_array().unwrap().len(), 3);
    let version = msg["gen"].as_u64().unwrap();
    let (_, again) = support::http("GET", &addr, &format!("/api/exp/exp?since={version}"));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert!(again.get("data").is_none(), "nothing changed: {again}");
    assert_eq!(support::http("GET", &addr, "/api/exp/nope").0, 404);
}
