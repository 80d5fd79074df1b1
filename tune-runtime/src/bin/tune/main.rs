//! `tune`: list, inspect, export and report the experiments of tune-runtime, and serve the
//! live dashboard. Reads experiments through their journals; writes nothing in them.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tune_runtime::report::{Report, ReportOptions, headline, status_counts};
use tune_runtime::{
    Mode,
    storage::{ExperimentLog, JOURNAL_FILE},
};

/// Inspect tune-runtime experiments: list them, show their trials, pick the best, export
/// tables, write an HTML report or serve a live dashboard.
#[derive(Parser, Debug)]
#[command(name = "tune", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the experiments under a directory, or in a PostgreSQL database: trials by
    /// status, best value, age.
    Ls {
        /// The directory holding experiment directories (default: ~/tune_results), or a
        /// PostgreSQL URL (`postgres://user@host:5432/database`; feature `postgres`).
        root: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the trials table of an experiment.
    Show {
        #[command(flatten)]
        exp: Source,
        /// Sort by this column (a metric, a hyperparameter, `iter`, `status`, `trial_id`).
        #[arg(long)]
        sort: Option<String>,
        /// Sort in descending order.
        #[arg(long)]
        desc: bool,
        /// Keep the trials where a column compares to a value: `status=ERROR`,
        /// `lr<0.01`, `loss<=0.5` (operators = != < <= > >=); repeat to combine.
        #[arg(long)]
        filter: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The best trial by a metric: its id, value, config (JSON) and latest checkpoint.
    Best {
        #[command(flatten)]
        exp: Source,
        /// The metric.
        #[arg(long)]
        metric: String,
        /// Maximize or minimize it.
        #[arg(long, value_enum)]
        mode: ModeArg,
        /// Compare trials by their last result or by the best they ever reported.
        #[arg(long, value_enum, default_value_t = ScopeArg::Last)]
        scope: ScopeArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export the trials table (one row per trial: id, status, iteration, last metrics,
    /// config) as CSV or JSON.
    Export {
        #[command(flatten)]
        exp: Source,
        /// CSV (the default).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// JSON: an array of objects.
        #[arg(long)]
        json: bool,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Print what a trial wrote to its standard output (or error), as captured in its
    /// directory (`Tuner::capture_output`); with no trial, the experiment's own capture
    /// (output not attributed to a single trial). With a PostgreSQL URL, the files are
    /// read under `--local-dir` on this machine (each process captures on its own machine).
    Logs {
        #[command(flatten)]
        exp: Source,
        /// The trial: its id as `tune show` lists it (`83b65_00003`), or its index
        /// (`00003`, `3`).
        trial: Option<String>,
        /// Standard error instead of standard output.
        #[arg(long)]
        stderr: bool,
    },
    /// Write a self-contained HTML report (no network needed to open it).
    Report {
        #[command(flatten)]
        exp: Source,
        /// The file to write.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
        /// The metric shown first (default: the first one).
        #[arg(long)]
        metric: Option<String>,
        /// Its mode (default: min for losses and errors, else max).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
    },
    /// Serve the live dashboard of the experiments under a directory, or in a PostgreSQL
    /// database (read-only).
    Dashboard {
        /// The directory holding experiment directories, or one experiment directory
        /// (default: ~/tune_results), or a PostgreSQL URL (feature `postgres`).
        root: Option<PathBuf>,
        /// With a PostgreSQL URL: the runs' `local_dir`, under which trial and checkpoint
        /// paths are shown (default: ~/tune_results).
        #[arg(long)]
        local_dir: Option<PathBuf>,
        /// The address to listen on; keep 127.0.0.1 unless others must reach it.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The port (0 picks a free one).
        #[arg(long, default_value_t = 8265)]
        port: u16,
    },
}

/// Where an experiment is read from.
#[derive(clap::Args, Debug)]
struct Source {
    /// The experiment directory (or its name under ~/tune_results), or the URL of the
    /// PostgreSQL database of a shared experiment (`postgres://user@host:5432/database`,
    /// with `--experiment`; feature `postgres`).
    #[arg(value_name = "EXP")]
    path: PathBuf,
    /// The experiment's name in the PostgreSQL database (with a `postgres://` URL).
    #[arg(short, long)]
    experiment: Option<String>,
    /// With a PostgreSQL URL: the run's `local_dir`, under which trial and checkpoint
    /// paths are shown (default: ~/tune_results).
    #[arg(long)]
    local_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Min,
    Max,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Min => Mode::Min,
            ModeArg::Max => Mode::Max,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum ScopeArg {
    Last,
    All,
}

fn default_root() -> PathBuf {
    std::env::var_os("HOME")
        .map(|h| Path::new(&h).join("tune_results"))
        .unwrap_or_else(|| "tune_results".into())
}

/// The experiment directory of `exp`: the path itself, or a name under the default root.
fn experiment_dir(exp: &Path) -> Result<PathBuf, String> {
    if exp.join(JOURNAL_FILE).is_file() {
        return Ok(exp.to_path_buf());
    }
    let under = default_root().join(exp);
    if exp.components().count() == 1 && under.join(JOURNAL_FILE).is_file() {
        return Ok(under);
    }
    Err(format!(
        "`{}` is not an experiment directory (it has no `{JOURNAL_FILE}`); pass the directory \
         of an experiment, e.g. one listed by `tune ls`",
        exp.display()
    ))
}

/// `path` when it is a PostgreSQL URL.
fn postgres_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|p| p.starts_with("postgres://") || p.starts_with("postgresql://"))
}

fn load(exp: &Source) -> Result<ExperimentLog, String> {
    let Some(url) = postgres_url(&exp.path) else {
        if exp.experiment.is_some() || exp.local_dir.is_some() {
            return Err(format!(
                "`--experiment` and `--local-dir` go with a PostgreSQL URL; `{}` is a directory \
                 (drop them, or pass the database's `postgres://` URL)",
                exp.path.display()
            ));
        }
        let dir = experiment_dir(&exp.path)?;
        return ExperimentLog::from_dir(&dir).map_err(|e| e.to_string());
    };
    let Some(name) = &exp.experiment else {
        let held = match pg::experiments(url) {
            Ok(names) if names.is_empty() => " (the database holds none)".to_string(),
            Ok(names) => format!("; the database holds: {}", names.join(", ")),
            Err(e) => format!(" ({e})"),
        };
        return Err(format!("name the experiment to read with `--experiment NAME`{held}"));
    };
    let local = exp.local_dir.clone().unwrap_or_else(default_root);
    pg::load(url, name, &local.join(name))
}

/// Reading experiments from PostgreSQL (feature `postgres`).
#[cfg(feature = "postgres")]
mod pg {
    use std::path::{Path, PathBuf};

    use tune_runtime::dashboard::Dashboard;
    use tune_runtime::shared::PostgresJournal;
    use tune_runtime::storage::ExperimentLog;

    pub fn experiments(url: &str) -> Result<Vec<String>, String> {
        PostgresJournal::experiments(url).map_err(|e| e.to_string())
    }

    pub fn load(url: &str, name: &str, dir: &Path) -> Result<ExperimentLog, String> {
        let mut journal = PostgresJournal::open_existing(url, name).map_err(|e| e.to_string())?;
        ExperimentLog::from_shared(&mut journal, dir).map_err(|e| e.to_string())
    }

    pub fn dashboard(
        url: &str,
        local_dir: PathBuf,
        host: &str,
        port: u16,
    ) -> Result<Dashboard, String> {
        Dashboard::start_postgres(url, local_dir, (host, port))
            .map_err(|e| format!("cannot serve `{url}` on {host}:{port}: {e}"))
    }
}

/// Without the `postgres` feature, a PostgreSQL URL says how to get it.
#[cfg(not(feature = "postgres"))]
mod pg {
    use std::path::{Path, PathBuf};

    use tune_runtime::dashboard::Dashboard;
    use tune_runtime::storage::ExperimentLog;

    const MISSING: &str = "this `tune` was built without PostgreSQL support; install it with \
        `cargo install --path tune-runtime --features cli,postgres`";

    pub fn experiments(_url: &str) -> Result<Vec<String>, String> {
        Err(MISSING.to_string())
    }

    pub fn load(_url: &str, _name: &str, _dir: &Path) -> Result<ExperimentLog, String> {
        Err(MISSING.to_string())
    }

    pub fn dashboard(
        _url: &str,
        _local_dir: PathBuf,
        _host: &str,
        _port: u16,
    ) -> Result<Dashboard, String> {
        Err(MISSING.to_string())
    }
}

struct Style {
    color: bool,
}

impl Style {
    fn stdout() -> Self {
        Self { color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
    }

    fn status(&self, s: &str) -> String {
        let code = match s {
            "RUNNING" => "32",
            "ERROR" => "31",
            "PAUSED" | "PENDING" => "33",
            _ => return s.to_string(),
        };
        if self.color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_string() }
    }
}

/// A value with 6 significant digits.
fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-4..1e6).contains(&a) {
        let s = format!("{v:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'));
    }
    let digits = (5 - a.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// The trials table: column names and one row of JSON values per trial.
fn table(log: &ExperimentLog) -> (Vec<String>, Vec<Vec<Value>>) {
    let report = Report::from_log(log, &ReportOptions::default());
    let data = report.data();
    let metrics: Vec<String> = log.metric_names().to_vec();
    let params: Vec<(String, bool, Vec<String>)> = data["params"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let cats = p["cats"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(String::from))
                .collect();
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["numeric"].as_bool().unwrap_or(false),
                cats,
            )
        })
        .collect();
    let mut cols = vec!["trial_id".to_string(), "status".into(), "iter".into()];
    cols.extend(metrics.iter().cloned());
    cols.extend(params.iter().map(|(n, _, _)| format!("config/{n}")));
    cols.push("time_total_s".into());
    let rows = data["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut row = vec![t["id"].clone(), t["status"].clone(), t["iter"].clone()];
            for k in 0..metrics.len() {
                row.push(t["last"].get(k).cloned().unwrap_or(Value::Null));
            }
            for (k, (_, numeric, cats)) in params.iter().enumerate() {
                let v = t["p"].get(k).cloned().unwrap_or(Value::Null);
                row.push(match (numeric, v.as_f64()) {
                    (false, Some(i)) => {
                        cats.get(i as usize).map_or(Value::Null, |c| Value::from(c.as_str()))
                    }
                    _ => v,
                });
            }
            row.push(t["time"].clone());
            row
        })
        .collect();
    (cols, rows)
}

/// A `--filter` condition.
fn parse_filter(text: &str) -> Result<(String, &'static str, String), String> {
    for op in ["<=", ">=", "!=", "=", "<", ">"] {
        if let Some((col, val)) = text.split_once(op) {
            return Ok((col.trim().to_string(), op, val.trim().to_string()));
        }
    }
    Err(format!(
        "`--filter {text}` has no comparison; write COLUMN OP VALUE with OP one of = != < <= > >="
    ))
}

fn column_index(cols: &[String], name: &str) -> Result<usize, String> {
    cols.iter()
        .position(|c| c == name || c.strip_prefix("config/") == Some(name))
        .ok_or_else(|| format!("no column `{name}`; the columns are: {}", cols.join(", ")))
}

fn compare(v: &Value, op: &str, want: &str) -> bool {
    let ord = match (v.as_f64(), want.parse::<f64>()) {
        (Some(a), Ok(b)) => a.partial_cmp(&b),
        _ => {
            let text = v.as_str().map_or_else(|| v.to_string(), String::from);
            Some(text.as_str().cmp(want))
        }
    };
    let Some(ord) = ord else { return false };
    match op {
        "=" => ord.is_eq(),
        "!=" => ord.is_ne(),
        "<" => ord.is_lt(),
        "<=" => ord.is_le(),
        ">" => ord.is_gt(),
        _ => ord.is_ge(),
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), fmt),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints rows as an aligned text table, numbers right-aligned.
fn print_table(
    out: &mut impl Write,
    style: &Style,
    cols: &[String],
    rows: &[Vec<Value>],
) -> std::io::Result<()> {
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let width: Vec<usize> = (0..cols.len())
        .map(|k| {
            cells.iter().map(|r| r[k].chars().count()).chain([cols[k].len()]).max().unwrap_or(0)
        })
        .collect();
    let numeric: Vec<bool> =
        (0..cols.len()).map(|k| rows.iter().all(|r| r[k].is_number() || r[k].is_null())).collect();
    let line: Vec<String> = cols.iter().zip(&width).map(|(c, w)| format!("{c:<w$}")).collect();
    writeln!(out, "{}", line.join("  ").trim_end())?;
    for r in &cells {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let pad = width[k].saturating_sub(c.chars().count());
                let shown = if cols[k] == "status" { style.status(c) } else { c.clone() };
                if numeric[k] {
                    format!("{}{shown}", " ".repeat(pad))
                } else {
                    format!("{shown}{}", " ".repeat(pad))
                }
            })
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// The experiments under `root`: name, where, the folded log or why not, age in seconds.
type Listed = Vec<(String, Value, Result<ExperimentLog, String>, Option<u64>)>;

fn list_dir(root: &Path) -> Result<Listed, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| {
            format!(
                "cannot list `{}`: {e}; pass the directory holding your experiments",
                root.display()
            )
        })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(JOURNAL_FILE).is_file())
        .collect();
    dirs.sort();
    let now = SystemTime::now();
    Ok(dirs
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let modified =
                std::fs::metadata(dir.join(JOURNAL_FILE)).and_then(|m| m.modified()).ok();
            let age_s = modified.and_then(|m| now.duration_since(m).ok()).map(|d| d.as_secs());
            let log = ExperimentLog::from_dir(&dir).map_err(|e| e.to_string());
            (name, json!(dir), log, age_s)
        })
        .collect())
}

/// The experiments of a PostgreSQL database (their age is that of their last result).
fn list_postgres(url: &str) -> Result<Listed, String> {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let root = default_root();
    Ok(pg::experiments(url)?
        .into_iter()
        .map(|name| {
            let log = pg::load(url, &name, &root.join(&name));
            let last = log.as_ref().ok().and_then(|l| {
                let run = l.runs().iter().map(|r| r.ended.unwrap_or(r.started)).max();
                let k = l.column("timestamp")?;
                let result = l
                    .trials()
                    .iter()
                    .filter_map(|t| t.rows().last().map(|r| r[k]))
                    .filter(|t| t.is_finite())
                    .fold(0.0, f64::max) as u64;
                run.map(|e| e.max(result))
            });
            let age_s = last.map(|t| now.saturating_sub(t));
            (name, json!(url), log, age_s)
        })
        .collect())
}

fn ls(root: &Path, json_out: bool) -> Result<(), String> {
    let listed = match postgres_url(root) {
        Some(url) => list_postgres(url)?,
        None => list_dir(root)?,
    };
    let mut list = Vec::new();
    for (name, path, log, age_s) in listed {
        match log {
            Ok(log) => {
                // Only the statuses some trial has, to keep the listing short.
                let mut counts = status_counts(&log);
                counts.retain(|_, n| n.as_u64() != Some(0));
                let (metric, best) = headline(&log);
                list.push(json!({"name": name, "path": path, "trials": log.trials().len(), "counts": counts,
                    "metric": metric, "best": best, "finished": log.is_finished(), "age_s": age_s}));
            }
            Err(e) => list.push(json!({"name": name, "path": path, "error": e, "age_s": age_s})),
        }
    }
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| e.to_string();
    if json_out {
        return writeln!(out, "{}", Value::Array(list)).map_err(w);
    }
    if list.is_empty() {
        return writeln!(out, "no experiments in `{}`", root.display()).map_err(w);
    }
    let style = Style::stdout();
    let cols: Vec<String> =
        ["experiment", "trials", "status", "best", "age"].map(String::from).to_vec();
    let rows: Vec<Vec<Value>> = list
        .iter()
        .map(|e| {
            let counts = e["counts"].as_object().map_or_else(
                || e["error"].as_str().unwrap_or_default().to_string(),
                |c| c.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", "),
            );
            let best = match (e["metric"].as_str(), e["best"].as_f64()) {
                (Some(m), Some(b)) => format!("{m}={}", fmt(b)),
                _ => String::new(),
            };
            vec![
                e["name"].clone(),
                e["trials"].clone(),
                counts.into(),
                best.into(),
                e["age_s"].as_u64().map_or(String::new(), age).into(),
            ]
        })
        .collect();
    print_table(&mut out, &style, &cols, &rows).map_err(w)
}

fn show(
    exp: &Source,
    sort: Option<&str>,
    desc: bool,
    filters: &[String],
    json_out: bool,
) -> Result<(), String> {
    let log = load(exp)?;
    let (cols, mut rows) = table(&log);
    for f in filters {
        let (col, op, val) = parse_filter(f)?;
        let k = column_index(&cols, &col)?;
        rows.retain(|r| compare(&r[k], op, &val));
    }
    if let Some(s) = sort {
        let k = column_index(&cols, s)?;
        rows.sort_by(|a, b| {
            let ord = match (a[k].as_f64(), b[k].as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                _ => cell(&a[k]).cmp(&cell(&b[k])),
            };
            if desc { ord.reverse() } else { ord }
        });
    }
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| e.to_string();
    if json_out {
        let objects: Vec<Value> = rows
            .iter()
            .map(|r| Value::Object(cols.iter().cloned().zip(r.iter().cloned()).collect()))
            .collect();
        return writeln!(out, "{}", Value::Array(objects)).map_err(w);
    }
    print_table(&mut out, &Style::stdout(), &cols, &rows).map_err(w)
}

fn logs(exp: &Source, trial: Option<&str>, stderr: bool) -> Result<(), String> {
    let log = load(exp)?;
    let dir = match trial {
        None => log.dir().to_path_buf(),
        Some(t) => {
            let index = t
                .rsplit('_')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok())
                .ok_or_else(|| {
                    format!(
                        "`{t}` is not a trial id: give one as `tune show` lists it, or its index"
                    )
                })?;
            let trial = log
                .trials()
                .iter()
                .find(|tr| tr.index() == index)
                .ok_or_else(|| format!("the experiment has no trial {index:05}"))?;
            let dir = trial.dir().ok_or_else(|| {
                format!("trial {index:05} has no directory (file logging was off)")
            })?;
            log.dir().join(dir)
        }
    };
    let path = dir.join(if stderr { "stderr" } else { "stdout" });
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no captured output at `{}`: nothing was printed there, or the output was not \
                 captured (`Tuner::capture_output`)",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    std::io::copy(&mut file, &mut std::io::stdout().lock())
        .map(drop)
        .map_err(|e| format!("cannot print `{}`: {e}", path.display()))
}

fn best(
    exp: &Source,
    metric: &str,
    mode: Mode,
    scope: ScopeArg,
    json_out: bool,
) -> Result<(), String> {
    let log = load(exp)?;
    let Some(k) = log.column(metric) else {
        return Err(format!(
            "the experiment has no metric `{metric}`; it reports: {}",
            log.metric_names().join(", ")
        ));
    };
    let name = log.header().map(|h| (h.name.clone(), h.started)).unwrap_or_default();
    let mut best: Option<(usize, f64)> = None;
    for (i, t) in log.trials().iter().enumerate() {
        let values = t.rows().map(|r| r[k]).filter(|v| v.is_finite());
        let v = match scope {
            ScopeArg::Last => t.rows().last().map(|r| r[k]).filter(|v| v.is_finite()),
            ScopeArg::All => values.reduce(|a, b| if mode.better(b, a) { b } else { a }),
        };
        if let Some(v) = v {
            if best.is_none_or(|(_, b)| mode.better(v, b)) {
                best = Some((i, v));
            }
        }
    }
    let Some((i, v)) = best else {
        return Err(format!("no trial has a result with `{metric}` yet"));
    };
    let t = &log.trials()[i];
    let info = json!({
        "trial_id": tune_runtime::logger::trial_id(&name.0, name.1, t.index()),
        "status": t.status().as_str(),
        "metric": metric,
        "value": v,
        "config": t.config(),
        "checkpoint": t.checkpoints().last().map(|c| c.path.clone()),
        "dir": t.dir(),
    });
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| e.to_string();
    if json_out {
        return writeln!(out, "{info}").map_err(w);
    }
    writeln!(
        out,
        "trial {} ({}) with {metric}={}",
        info["trial_id"].as_str().unwrap_or(""),
        t.status(),
        fmt(v)
    )
    .map_err(w)?;
    writeln!(out, "config: {}", t.config()).map_err(w)?;
    match t.checkpoints().last() {
        Some(c) => writeln!(out, "checkpoint: {}", c.path.display()).map_err(w),
        None => writeln!(out, "checkpoint: none").map_err(w),
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn export(exp: &Source, json_out: bool, output: Option<&Path>) -> Result<(), String> {
    let log = load(exp)?;
    let (cols, rows) = table(&log);
    let mut text = String::new();
    if json_out {
        let objects: Vec<Value> = rows
            .iter()
            .map(|r| Value::Object(cols.iter().cloned().zip(r.iter().cloned()).collect()))
            .collect();
        text = Value::Array(objects).to_string();
        text.push('\n');
    } else {
        text.push_str(&cols.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","));
        text.push('\n');
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) => csv_field(s),
                    other => csv_field(&other.to_string()),
                })
                .collect();
            text.push_str(&cells.join(","));
            text.push('\n');
        }
    }
    match output {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display())),
        None => std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| e.to_string()),
    }
}

fn report(
    exp: &Source,
    output: &Path,
    metric: Option<String>,
    mode: Option<ModeArg>,
) -> Result<(), String> {
    let log = load(exp)?;
    if let Some(m) = &metric {
        if !log.metric_names().contains(m) {
            return Err(format!(
                "the experiment has no metric `{m}`; it reports: {}",
                log.metric_names().join(", ")
            ));
        }
    }
    let report = Report::from_log(&log, &ReportOptions::new(metric, mode.map(Mode::from)));
    report.write_html(output).map_err(|e| format!("cannot write `{}`: {e}", output.display()))?;
    println!("wrote {} ({} trials)", output.display(), log.trials().len());
    Ok(())
}

fn dashboard(root: &Path, local_dir: Option<&Path>, host: &str, port: u16) -> Result<(), String> {
    if let Some(url) = postgres_url(root) {
        let d =
            pg::dashboard(url, local_dir.map_or_else(default_root, Path::to_path_buf), host, port)?;
        println!("dashboard of `{url}` at {} (Ctrl-C to stop)", d.url());
        let _ = std::io::stdout().flush();
        d.wait();
        return Ok(());
    }
    if local_dir.is_some() {
        return Err("`--local-dir` goes with a PostgreSQL URL; drop it for a directory".into());
    }
    if !root.is_dir() {
        return Err(format!(
            "`{}` is not a directory; pass the directory holding your experiments",
            root.display()
        ));
    }
    let d = tune_runtime::dashboard::Dashboard::start(root, (host, port))
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}; pick another `--port`"))?;
    println!("dashboard of `{}` at {} (Ctrl-C to stop)", root.display(), d.url());
    let _ = std::io::stdout().flush();
    d.wait();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { root, json } => ls(&root.unwrap_or_else(default_root), json),
        Command::Show { exp, sort, desc, filter, json } => {
            show(&exp, sort.as_deref(), desc, &filter, json)
        }
        Command::Best { exp, metric, mode, scope, json } => {
            best(&exp, &metric, mode.into(), scope, json)
        }
        Command::Export { exp, csv: _, json, output } => export(&exp, json, output.as_deref()),
        Command::Logs { exp, trial, stderr } => logs(&exp, trial.as_deref(), stderr),
        Command::Report { exp, output, metric, mode } => report(&exp, &output, metric, mode),
        Command::Dashboard { root, local_dir, host, port } => {
            dashboard(&root.unwrap_or_else(default_root), local_dir.as_deref(), &host, port)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
