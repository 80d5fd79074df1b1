//! The `tune` command on experiments written by a real `Tuner`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

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

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn ls_show_best_export_and_report() {
    let root = tempfile::tempdir().unwrap();
    let exp = support::fixture::run(root.path(), "exp", 4);
    support::fixture::run(root.path(), "other", 2);
    let (root_s, exp_s) = (s(root.path()), s(&exp));

    // ls: both experiments with their counts and best loss.
    let list = json(&["ls", &root_s, "--json"]);
    let names: Vec<&str> =
        list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["exp", "other"]);
    assert_eq!(list[0]["trials"], 3);
    assert_eq!(list[0]["counts"]["TERMINATED"], 2);
    assert_eq!(list[0]["counts"]["ERROR"], 1);
    assert_eq!(list[0]["metric"], "loss");
    assert_eq!(list[0]["best"], 0.025, "lr 0.1 after 4 iterations: 1 / (4 * 0.1 * 100)");
    let text = ok(&["ls", &root_s]);
    assert!(text.lines().next().unwrap().starts_with("experiment  trials  status"), "{text}");
    assert!(text.contains("1 ERROR, 2 TERMINATED"), "{text}");
    assert!(text.contains("loss=0.025"), "{text}");
    assert!(!text.contains('\x1b'), "no colour when stdout is not a terminal");

    // show: sorted, filtered, JSON.
    let rows = json(&["show", &exp_s, "--sort", "loss", "--json"]);
    let lrs: Vec<f64> =
        rows.as_array().unwrap().iter().map(|r| r["config/lr"].as_f64().unwrap()).collect();
    assert_eq!(lrs, [0.1, 0.01, 0.001]);
    assert_eq!(rows[0]["status"], "TERMINATED");
    assert_eq!(rows[0]["iter"], 4);
    assert!(rows[0]["trial_id"].as_str().unwrap().ends_with("_00002"));
    let errored = json(&["show", &exp_s, "--filter", "status=ERROR", "--json"]);
    assert_eq!(errored.as_array().unwrap().len(), 1);
    assert_eq!(errored[0]["config/lr"], 0.001);
    assert_eq!(errored[0]["iter"], 1);
    let small = json(&["show", &exp_s, "--filter", "lr<0.05", "--filter", "loss>=0", "--json"]);
    assert_eq!(small.as_array().unwrap().len(), 2);
    let text = ok(&["show", &exp_s, "--sort", "loss", "--desc"]);
    let header = text.lines().next().unwrap();
    for col in
        ["trial_id", "status", "iter", "loss", "acc", "config/lr", "config/opt", "time_total_s"]
    {
        assert!(header.contains(col), "{col} in {header}");
    }
    assert!(text.lines().nth(1).unwrap().contains("ERROR"), "{text}");
    let bad = tune(&["show", &exp_s, "--filter", "nope=1"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("no column `nope`; the columns are: trial_id")
    );

    // best: config as JSON and the checkpoint.
    let best = json(&["best", &exp_s, "--metric", "loss", "--mode", "min", "--json"]);
    assert_eq!(best["config"]["lr"], 0.1);
    assert_eq!(best["value"], 0.025);
    assert!(Path::new(best["checkpoint"].as_str().unwrap()).is_dir(), "{best}");
    let by_acc =
        json(&["best", &exp_s, "--metric", "acc", "--mode", "min", "--scope", "all", "--json"]);
    assert_eq!(by_acc["config"]["lr"], 0.001, "{by_acc}");
    let text = ok(&["best", &exp_s, "--metric", "loss", "--mode", "min"]);
    assert!(text.contains("with loss=0.025") && text.contains("config: {\"lr\":0.1"), "{text}");
    let unknown = tune(&["best", &exp_s, "--metric", "los", "--mode", "min"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no metric `los`; it reports: loss, acc")
    );

    // export: CSV and JSON of the trials table.
    let csv = ok(&["export", &exp_s, "--csv"]);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("trial_id,status,iter,loss,acc,config/lr"));
    assert_eq!(lines.count(), 3);
    let out = root.path().join("trials.json");
    ok(&["export", &exp_s, "--json", "-o", &s(&out)]);
    let exported: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 3);

    // report: one file, nothing fetched from the network.
    let html = root.path().join("report.html");
    ok(&["report", &exp_s, "-o", &s(&html), "--metric", "acc", "--mode", "max"]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<canvas id=\"curves\"") && page.contains("\"metric\":\"acc\""));
    for external in ["http://", "https://", "src=\"", "<link"] {
        assert!(!page.contains(external), "the report refers to `{external}`");
    }

    // logs: a trial's captured output (written here as the runner would), by the id
    // `show` lists or by index; the experiment's own; a clear error when there is none.
    let id = rows[0]["trial_id"].as_str().unwrap().to_string();
    let tdir = std::fs::read_dir(&exp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().contains("_00002_"))
        .unwrap();
    std::fs::write(tdir.join("stdout"), "epoch 1\nepoch 2\n").unwrap();
    std::fs::write(tdir.join("stderr"), "warning: slow\n").unwrap();
    std::fs::write(exp.join("stdout"), "shared line\n").unwrap();
    assert_eq!(ok(&["logs", &exp_s, &id]), "epoch 1\nepoch 2\n");
    assert_eq!(ok(&["logs", &exp_s, "2", "--stderr"]), "warning: slow\n");
    assert_eq!(ok(&["logs", &exp_s]), "shared line\n");
    let none = tune(&["logs", &exp_s, "00001"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no captured output at"));
    let bad = tune(&["logs", &exp_s, "7"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the experiment has no trial 00007"));

    // Not an experiment: the error says what to pass.
    let missing = tune(&["show", &root_s]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not an experiment directory"));
}

#[test]
fn the_dashboard_serves_experiments_read_only() {
    let root = tempfile::tempdir().unwrap();
    support::fixture::run(root.path(), "exp", 3);
    let (_server, addr) = support::start_dashboard(root.path());
    let (status, list) = support::http("GET", &addr, "/api/experiments");
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["name"], "exp");
    assert_eq!(list[0]["trials"], 3);
    let (status, body) = support::http("GET", &addr, "/api/exp/exp");
    assert_eq!(status, 200);
    let msg: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(msg["data"]["trials"].as_array().unwrap().len(), 3);
    let version = msg["gen"].as_u64().unwrap();
    // Nothing changed: no data.
    let (_, again) = support::http("GET", &addr, &format!("/api/exp/exp?since={version}"));
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["gen"], version);
    assert!(again.get("data").is_none());
    let (status, page) = support::http("GET", &addr, "/exp/exp");
    assert_eq!(status, 200);
    assert!(page.contains("var TUNE_LIVE = \"/api/exp/exp\""));
    assert_eq!(support::http("POST", &addr, "/api/exp/exp").0, 405);
    assert_eq!(support::http("GET", &addr, "/exp/..%2F..%2Fetc").0, 404);
    assert_eq!(support::http("GET", &addr, "/api/exp/nope").0, 404);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
}
