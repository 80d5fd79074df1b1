//! TensorBoard event files: per trial, `events.out.tfevents.*` with every numeric result
//! as a scalar (step = training iteration) and, when the trial ends, the HParams plugin's
//! summaries, so TensorBoard's HParams tab compares trials (what Ray Tune's TBX logger
//! writes).
//!
//! The format is TFRecord (each record: its length, a masked CRC-32C of the length, the
//! bytes, a masked CRC-32C of the bytes) holding `Event` protocol buffers; the few
//! messages needed are encoded here by hand.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::json::{Slots, open};
use super::ray::{self, Since};
use crate::callback::{
    Callback, CallbackError, ExperimentView, KeptView, ResultView, StartView, TrialView,
};

/// The tag prefix of every scalar, as Ray Tune writes them (`ray/tune/loss`).
pub const TAG_PREFIX: &str = "ray/tune/";

/// The end of the names of the event files this logger writes (and may replace).
const FILE_SUFFIX: &str = ".tune-rs";

/// A protocol buffer message being encoded.
#[derive(Default)]
pub(crate) struct Proto(pub Vec<u8>);

impl Proto {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    pub fn uint(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 0);
        self.varint(v);
        self
    }

    pub fn double(&mut self, field: u32, v: f64) -> &mut Self {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    pub fn message(&mut self, field: u32, m: &Proto) -> &mut Self {
        self.bytes(field, &m.0)
    }

    fn build(f: impl FnOnce(&mut Proto)) -> Proto {
        let mut p = Proto::default();
        f(&mut p);
        p
    }
}

/// The CRC-32C of TFRecord, masked as TensorFlow does.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Appends one TFRecord holding `data`.
pub(crate) fn write_record(out: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc(&len).to_le_bytes())?;
    out.write_all(data)?;
    out.write_all(&masked_crc(data).to_le_bytes())
}

// Field numbers of tensorboard's event.proto, summary.proto, tensor.proto and the HParams
// plugin's api.proto and plugin_data.proto.
const EVENT_WALL_TIME: u32 = 1;
const EVENT_STEP: u32 = 2;
const EVENT_FILE_VERSION: u32 = 3;
const EVENT_SUMMARY: u32 = 5;
const SUMMARY_VALUE: u32 = 1;
const VALUE_TAG: u32 = 1;
const VALUE_SIMPLE: u32 = 2;
const VALUE_TENSOR: u32 = 8;
const VALUE_METADATA: u32 = 9;
const METADATA_PLUGIN_DATA: u32 = 1;
const PLUGIN_NAME: u32 = 1;
const PLUGIN_CONTENT: u32 = 2;

/// An `Event` with a wall time and a step around `summary`.
fn event(wall_time: f64, step: u64, summary: &Proto) -> Proto {
    Proto::build(|e| {
        e.double(EVENT_WALL_TIME, wall_time).uint(EVENT_STEP, step).message(EVENT_SUMMARY, summary);
    })
}

/// The HParams plugin's `HParamsPluginData` as a summary value of `tag`, with the empty
/// tensor TensorBoard's own writer puts beside it.
fn hparams_value(tag: &str, plugin_data: &Proto) -> Proto {
    let plugin = Proto::build(|p| {
        p.bytes(PLUGIN_NAME, b"hparams").bytes(PLUGIN_CONTENT, &plugin_data.0);
    });
    let metadata = Proto::build(|m| {
        m.message(METADATA_PLUGIN_DATA, &plugin);
    });
    // DT_FLOAT, shape [0].
    let null_tensor = Proto::build(|t| {
        t.uint(1, 1).message(
            2,
            &Proto::build(|s| {
                s.message(
                    2,
                    &Proto::build(|d| {
                        d.uint(1, 0);
                    }),
                );
            }),
        );
    });
    Proto::build(|v| {
        v.bytes(VALUE_TAG, tag.as_bytes())
            .message(VALUE_METADATA, &metadata)
            .message(VALUE_TENSOR, &null_tensor);
    })
}

/// A hyperparameter value as TensorBoard compares it.
#[derive(Debug, Clone, PartialEq)]
enum HValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

/// The hyperparameters of a config: its leaves by `/`-joined path (numbers, strings,
/// booleans; arrays as their JSON text), plus, for an enum's variant with fields
/// (`{"optimizer": {"Sgd": {...}}}`), the variant's name under the enum's path.
fn hparams_of(config: &Value) -> Vec<(String, HValue)> {
    let mut out = Vec::new();
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, HValue)>) {
        let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}/{k}") };
        match v {
            Value::Object(map) => {
                if let (1, Some((variant, Value::Object(_)))) = (map.len(), map.iter().next()) {
                    if variant.starts_with(|c: char| c.is_ascii_uppercase()) && !path.is_empty() {
                        out.push((path.to_string(), HValue::Text(variant.clone())));
                    }
                }
                for (k, inner) in map {
                    walk(inner, &join(k), out);
                }
            }
            Value::Number(n) => {
                out.push((path.to_string(), HValue::Number(n.as_f64().unwrap_or(f64::NAN))))
            }
            Value::Bool(b) => out.push((path.to_string(), HValue::Bool(*b))),
            Value::String(s) => out.push((path.to_string(), HValue::Text(s.clone()))),
            Value::Array(_) => out.push((path.to_string(), HValue::Text(v.to_string()))),
            Value::Null => {}
        }
    }
    walk(config, "", &mut out);
    out.retain(|(k, _)| !k.is_empty());
    out
}

/// The three HParams summaries of a finished trial: the experiment (its hyperparameters
/// and metrics), the session start (the values) and the session end (its status).
fn hparams_events(
    config: &Value,
    metric_tags: &[String],
    success: bool,
    wall_time: f64,
) -> [Proto; 3] {
    let hparams = hparams_of(config);
    let experiment = Proto::build(|x| {
        for (name, value) in &hparams {
            let ty = match value {
                HValue::Text(_) => 1,
                HValue::Bool(_) => 2,
                HValue::Number(_) => 3,
            };
            x.message(
                4,
                &Proto::build(|h| {
                    h.bytes(1, name.as_bytes()).uint(4, ty);
                }),
            );
        }
        for tag in metric_tags {
            let name = Proto::build(|n| {
                n.bytes(2, tag.as_bytes());
            });
            x.message(
                5,
                &Proto::build(|m| {
                    m.message(1, &name);
                }),
            );
        }
        x.double(3, wall_time);
    });
    let start = Proto::build(|s| {
        for (name, value) in &hparams {
            let v = Proto::build(|v| match value {
                HValue::Number(n) => {
                    v.double(2, *n);
                }
                HValue::Text(t) => {
                    v.bytes(3, t.as_bytes());
                }
                HValue::Bool(b) => {
                    v.uint(4, u64::from(*b));
                }
            });
            s.message(
                1,
                &Proto::build(|e| {
                    e.bytes(1, name.as_bytes()).message(2, &v);
                }),
            );
        }
        s.double(5, wall_time);
    });
    let end = Proto::build(|e| {
        e.uint(1, if success { 1 } else { 2 }).double(2, wall_time);
    });
    let wrap = |field: u32, tag: &str, inner: &Proto| {
        let data = Proto::build(|d| {
            d.uint(1, 0).message(field, inner);
        });
        let value = hparams_value(tag, &data);
        let summary = Proto::build(|s| {
            s.message(SUMMARY_VALUE, &value);
        });
        event(wall_time, 0, &summary)
    };
    [
        wrap(2, "_hparams_/experiment", &experiment),
        wrap(3, "_hparams_/session_start_info", &start),
        wrap(4, "_hparams_/session_end_info", &end),
    ]
}

/// The built-in TensorBoard logger: per trial, an event file in the trial's directory with
/// a scalar per metric and result (tag `ray/tune/<metric>`, step = `training_iteration`),
/// plus `time_this_iter_s`, `time_total_s`, `time_since_restore` and
/// `iterations_since_restore`; when the trial ends, the HParams summaries (its config as
/// hyperparameters, its metrics), so `tensorboard --logdir <experiment>` shows the
/// learning curves of every trial and compares them in the HParams tab.
///
/// A trial that goes back to a checkpoint gets a new event file written from the results
/// it keeps; the files this logger wrote before for it are removed.
///
/// ```
/// use tune_runtime::callback::{Callback, ExperimentView, ResultView, StartView, TrialView};
/// use tune_runtime::logger::TensorBoardLogger;
///
/// let dir = tempfile::tempdir().unwrap();
/// let names = vec!["loss".to_string()];
/// let mut tb = TensorBoardLogger::new();
/// tb.on_experiment_start(&ExperimentView::new("exp", dir.path(), "Model", &names, 0)).unwrap();
/// let config = serde_json::json!({"lr": 0.1});
/// let trial_dir = dir.path().join("Model_00000");
/// let trial = TrialView::new(0, "4f1c2_00000", Some(&trial_dir), &config);
/// tb.on_trial_start(&trial, &StartView::first()).unwrap();
/// tb.on_trial_result(&trial, &ResultView::new(&[0.5, 1.0, 0.2, 0.2, 1.7e9], true)).unwrap();
/// tb.on_trial_complete(&trial).unwrap();
/// let files: Vec<_> = std::fs::read_dir(&trial_dir).unwrap()
///     .filter_map(|e| e.ok())
///     .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
///     .collect();
/// assert_eq!(files.len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct TensorBoardLogger {
    /// `ray/tune/<metric>` of every metric.
    tags: Vec<String>,
    trials: Slots<TbTrial>,
    /// Event files created by this process so far (part of their names).
    created: u64,
    buf: Proto,
}

impl std::fmt::Debug for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proto({} bytes)", self.0.len())
    }
}

#[derive(Debug)]
struct TbTrial {
    path: PathBuf,
    out: BufWriter<File>,
    since: Since,
}

impl super::json::TrialFile for TbTrial {
    fn file(&mut self) -> (&Path, &mut BufWriter<File>) {
        (&self.path, &mut self.out)
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Whether `name` is an event file this logger wrote.
fn is_ours(name: &str) -> bool {
    name.starts_with("events.out.tfevents.") && name.ends_with(FILE_SUFFIX)
}

impl TensorBoardLogger {
    /// A logger; it learns the metric names from [`Callback::on_experiment_start`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a new event file for the trial (after removing the ones written before for
    /// it when `replace`).
    fn open(&mut self, trial: &TrialView<'_>, replace: bool) -> Result<bool, CallbackError> {
        let Some(dir) = trial.dir else { return Ok(false) };
        if replace {
            remove_ours(dir)?;
        }
        self.created += 1;
        let host = ray::host();
        let name = format!(
            "events.out.tfevents.{}.{}.{}.{}{FILE_SUFFIX}",
            now() as u64,
            host.hostname.replace(['/', '\\'], "_"),
            host.pid,
            self.created
        );
        let path = dir.join(name);
        let mut out = open(&path, false)?;
        let version = Proto::build(|e| {
            e.double(EVENT_WALL_TIME, now()).bytes(EVENT_FILE_VERSION, b"brain.Event:2");
        });
        write_record(&mut out, &version.0).map_err(CallbackError::at(&path))?;
        self.trials.set(trial.index, TbTrial { path, out, since: Since::default() });
        Ok(true)
    }

    fn write(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        if self.trials.get(trial.index).is_none() && !self.open(trial, false)? {
            return Ok(());
        }
        let Self { tags, trials, buf, .. } = self;
        let Some(t) = trials.get(trial.index) else { return Ok(()) };
        let it = result.training_iteration();
        let since = t.since;
        let extra = [
            ("time_this_iter_s", result.time_this_iter_s()),
            ("time_total_s", result.time_total_s()),
            ("time_since_restore", since.time(result.time_total_s())),
            ("iterations_since_restore", since.iterations(it) as f64),
        ];
        let mut summary = Proto::default();
        let mut value = |tag: &str, v: f64, summary: &mut Proto| {
            if v.is_nan() {
                return;
            }
            buf.0.clear();
            buf.bytes(VALUE_TAG, tag.as_bytes()).float(VALUE_SIMPLE, v as f32);
            summary.message(SUMMARY_VALUE, buf);
        };
        for (tag, v) in tags.iter().zip(result.metrics()) {
            value(tag, *v, &mut summary);
        }
        for (name, v) in extra {
            value(&format!("{TAG_PREFIX}{name}"), v, &mut summary);
        }
        let e = event(result.timestamp() as f64, it, &summary);
        write_record(&mut t.out, &e.0).map_err(CallbackError::at(&t.path))
    }

    fn end(&mut self, trial: &TrialView<'_>, success: bool) -> Result<(), CallbackError> {
        let Some(mut t) = self.trials.take(trial.index) else { return Ok(()) };
        let mut tags = self.tags.clone();
        tags.extend(["time_this_iter_s", "time_total_s"].map(|n| format!("{TAG_PREFIX}{n}")));
        for e in hparams_events(trial.config, &tags, success, now()) {
            write_record(&mut t.out, &e.0).map_err(CallbackError::at(&t.path))?;
        }
        t.out.flush().map_err(CallbackError::at(&t.path))
    }
}

/// Removes the event files this logger wrote in `dir` (a trial that is rewritten).
fn remove_ours(dir: &Path) -> Result<(), CallbackError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CallbackError::new(dir, e)),
    };
    for entry in entries.flatten() {
        if is_ours(&entry.file_name().to_string_lossy()) {
            let path = entry.path();
            fs::remove_file(&path).map_err(CallbackError::at(&path))?;
        }
    }
    Ok(())
}

impl Callback for TensorBoardLogger {
    fn on_experiment_start(&mut self, e: &ExperimentView<'_>) -> Result<(), CallbackError> {
        self.tags = e.metric_names.iter().map(|n| format!("{TAG_PREFIX}{n}")).collect();
        Ok(())
    }

    fn on_trial_start(
        &mut self,
        trial: &TrialView<'_>,
        start: &StartView<'_>,
    ) -> Result<(), CallbackError> {
        if self.trials.get(trial.index).is_none() {
            self.open(trial, false)?;
        }
        if let Some(t) = self.trials.get(trial.index) {
            t.since = Since { iteration: start.iteration, time_total_s: start.time_total_s };
        }
        Ok(())
    }

    fn on_trial_result(
        &mut self,
        trial: &TrialView<'_>,
        result: &ResultView<'_>,
    ) -> Result<(), CallbackError> {
        self.write(trial, result)
    }

    fn on_trial_reset(
        &mut self,
        trial: &TrialView<'_>,
        kept: &KeptView<'_>,
    ) -> Result<(), CallbackError> {
        self.trials.take(trial.index);
        if !self.open(trial, true)? {
            return Ok(());
        }
        for result in kept.results() {
            self.write(trial, &result)?;
        }
        self.trials.flush(trial.index)
    }

    fn on_trial_complete(&mut self, trial: &TrialView<'_>) -> Result<(), CallbackError> {
        self.end(trial, true)
    }

    fn on_trial_error(&mut self, trial: &TrialView<'_>, _error: &str) -> Result<(), CallbackError> {
        self.end(trial, false)
    }

    fn flush(&mut self) -> Result<(), CallbackError> {
        self.trials.flush_all()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    // The mask as TensorFlow's record writer states it, independent of `rotate_right`.
    #[allow(clippy::manual_rotate)]
    fn records_are_framed_with_masked_crc32c() {
        let mut out = Vec::new();
        write_record(&mut out, b"abc").unwrap();
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        // The mask of TensorFlow's record writer, checked against a known value: the masked
        // CRC of the empty string.
        assert_eq!(masked_crc(b""), 0xa282_ead8);
        let crc = crc32c::crc32c(b"abc");
        let masked = u32::from_le_bytes(out[15..19].try_into().unwrap());
        assert_eq!(masked, ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8));
    }

    #[test]
    fn varints_and_fields_encode_as_protobuf() {
        let mut p = Proto::default();
        p.uint(2, 300).bytes(3, b"hi");
        assert_eq!(p.0, [0x10, 0xac, 0x02, 0x1a, 0x02, b'h', b'i']);
    }

    #[test]
    fn enum_variants_become_a_text_hyperparameter() {
        let c =
            serde_json::json!({"lr": 0.5, "opt": {"Sgd": {"m": 0.9}}, "plain": "Adam", "on": true});
        let h = hparams_of(&c);
        assert!(h.contains(&("opt".into(), HValue::Text("Sgd".into()))));
        assert!(h.contains(&("opt/Sgd/m".into(), HValue::Number(0.9))));
        assert!(h.contains(&("lr".into(), HValue::Number(0.5))));
        assert!(h.contains(&("on".into(), HValue::Bool(true))));
    }
}
