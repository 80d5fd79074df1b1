//! The trial files read by the Python tools users have: TensorBoard's own reader
//! (`EventAccumulator`, with the HParams plugin's data), pandas and, when available, Ray
//! Tune's `Result.from_path`.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use serde_json::Value;

const READ: &str = r#"
import glob, json, os, sys
import pandas as pd
from google.protobuf.json_format import MessageToDict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

out = {}
for d in sorted(glob.glob(os.path.join(sys.argv[1], "Model_*"))):
    acc = EventAccumulator(d)
    acc.Reload()
    scalars = {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    try:
        contents = acc.PluginTagToContent("hparams")
    except KeyError:
        contents = {}
    hparams = {tag: MessageToDict(plugin_data_pb2.HParamsPluginData.FromString(c))
               for tag, c in contents.items()}
    js = pd.read_json(os.path.join(d, "result.json"), lines=True)
    csv = pd.read_csv(os.path.join(d, "progress.csv"))
    out[os.path.basename(d)] = {
        "scalars": scalars,
        "hparams": hparams,
        "json_len": len(js),
        "json_trial_id": [str(x) for x in js["trial_id"]],
        "json_trial_id_dtype": str(js["trial_id"].dtype),
        "json_columns": list(js.columns),
        "json_ckpt": [None if pd.isna(x) else x for x in js["checkpoint_dir_name"]],
        "json_config_lr": float(js["config"].iloc[-1]["lr"]),
        "csv_len": len(csv),
        "csv_trial_id_dtype": str(csv["trial_id"].dtype),
        "csv_done_dtype": str(csv["done"].dtype),
        "csv_done": [bool(x) for x in csv["done"]],
        "csv_columns": list(csv.columns),
        "csv_iterations": [int(x) for x in csv["training_iteration"]],
    }
print(json.dumps(out))
"#;

#[test]
fn tensorboard_and_pandas_read_the_trial_files() {
    let Some(python) = support::python_with("TUNE_PYTHON", "pandas, tensorboard") else { return };
    let dir = tempfile::tempdir().unwrap();
    let exp = support::write_experiment(dir.path());
    let out = Command::new(python).args(["-c", READ]).arg(&exp).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();

    let t0 = &read["Model_00000"];
    // Every metric as a scalar, step = training iteration (float32 values).
    let loss: Vec<(u64, f64)> = t0["scalars"]["ray/tune/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert_eq!(loss.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!((loss[3].1 - 0.25).abs() < 1e-6, "{loss:?}");
    for tag in ["ray/tune/acc", "ray/tune/time_this_iter_s", "ray/tune/iterations_since_restore"] {
        assert_eq!(t0["scalars"][tag].as_array().map(Vec::len), Some(4), "{tag}");
    }
    // The HParams plugin: the experiment (hyperparameters and metrics), the session's
    // values and its end.
    let hp = &t0["hparams"];
    let infos: Vec<&str> = hp["_hparams_/experiment"]["experiment"]["hparamInfos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    for name in ["lr", "layers", "opt", "opt/Sgd/momentum"] {
        assert!(infos.contains(&name), "{name} not in {infos:?}");
    }
    let metrics = &hp["_hparams_/experiment"]["experiment"]["metricInfos"];
    assert!(metrics.as_array().unwrap().iter().any(|m| m["name"]["tag"] == "ray/tune/loss"));
    let values = &hp["_hparams_/session_start_info"]["sessionStartInfo"]["hparams"];
    assert_eq!(values["lr"], 0.1);
    assert_eq!(values["layers"], 2.0);
    assert_eq!(values["opt"], "Sgd");
    assert_eq!(values["opt/Sgd/momentum"], 0.9);
    assert_eq!(hp["_hparams_/session_end_info"]["sessionEndInfo"]["status"], "STATUS_SUCCESS");

    // The retried trial: the results after its checkpoint were replaced, in both readers.
    let t1 = &read["Model_00001"];
    let steps: Vec<u64> = t1["scalars"]["ray/tune/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4]);
    let third = t1["scalars"]["ray/tune/loss"][2][1].as_f64().unwrap();
    assert!((third - 0.25).abs() < 1e-6, "iteration 3 is the retried result, got {third}");
    assert_eq!(t1["csv_iterations"], serde_json::json!([1, 2, 3, 4]));
    // The errored trial ends its HParams session as a failure.
    let t2 = &read["Model_00002"];
    assert_eq!(
        t2["hparams"]["_hparams_/session_end_info"]["sessionEndInfo"]["status"],
        "STATUS_FAILURE"
    );

    // pandas: trial ids stay strings, `done` is a boolean, checkpoints are named per row.
    for t in [t0, t1, t2] {
        // Text, not a number (pandas 2 says `object`, pandas 3 `str`).
        for dtype in [&t["json_trial_id_dtype"], &t["csv_trial_id_dtype"]] {
            assert!(dtype == "object" || dtype == "str", "{dtype}");
        }
        assert_eq!(t["csv_done_dtype"], "bool");
        assert_eq!(t["json_len"], t["csv_len"]);
    }
    assert_eq!(t0["json_trial_id"][0], tune_runtime::logger::trial_id("exp", support::STARTED, 0));
    assert_eq!(
        t0["json_ckpt"],
        serde_json::json!([null, "checkpoint_000002", null, "checkpoint_000004"])
    );
    assert_eq!(t0["csv_done"], serde_json::json!([false, false, false, true]));
    assert_eq!(t0["json_config_lr"], 0.1);
    for col in [
        "date",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
        "should_checkpoint",
        "trial_id",
    ] {
        assert!(t0["json_columns"].as_array().unwrap().iter().any(|c| c == col), "{col}");
    }
    assert!(t0["csv_columns"].as_array().unwrap().iter().any(|c| c == "config/opt/Sgd/momentum"));
}

const RAY: &str = r#"
import glob, json, os, sys
from ray.tune import Result
out = {}
for d in sorted(glob.glob(os.path.join(sys.argv[1], "Model_*"))):
    r = Result.from_path(d)
    out[os.path.basename(d)] = {
        "loss": float(r.metrics["loss"]),
        "trial_id": r.metrics["trial_id"],
        "checkpoint": None if r.checkpoint is None else os.path.basename(r.checkpoint.path),
        "best_checkpoints": [[os.path.basename(c.path), m.get("training_iteration")] for c, m in (r.best_checkpoints or [])],
        "rows": len(r.metrics_dataframe),
        "config": r.config,
    }
print(json.dumps(out))
"#;

/// Ray Tune is too heavy for CI (over 600 MB installed): this runs where `TUNE_RAY_PYTHON`
/// names a Python with `ray[tune]` (see `docs/inspecting-results.md`), and passes without
/// checking anything elsewhere.
#[test]
fn ray_result_from_path_loads_every_trial() {
    let Some(python) = std::env::var_os("TUNE_RAY_PYTHON") else {
        eprintln!("SKIPPED: set TUNE_RAY_PYTHON to a Python with `ray[tune]` to run this check");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let exp = support::write_experiment(dir.path());
    let out = Command::new(python).args(["-c", RAY]).arg(&exp).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t0 = &read["Model_00000"];
    assert_eq!(t0["checkpoint"], "checkpoint_000004");
    assert_eq!(
        t0["best_checkpoints"],
        serde_json::json!([["checkpoint_000002", 2], ["checkpoint_000004", 4]])
    );
    assert_eq!(t0["rows"], 4);
    assert_eq!(t0["config"]["lr"], 0.1);
    assert_eq!(read["Model_00001"]["rows"], 4);
    assert_eq!(read["Model_00002"]["checkpoint"], Value::Null);
}
