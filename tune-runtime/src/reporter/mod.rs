//! Live status: the `== Status ==` block, a progress bar, plain lines when stdout is not a
//! terminal, and the final summary.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use comfy_table::{Table, presets::ASCII_MARKDOWN};
use indicatif::{ProgressBar, ProgressStyle};

use crate::trial::TrialStatus;

mod table;

#[allow(unused_imports)] // The driver fills a `StatusReport` once it is wired to it.
pub(crate) use table::{BestTrial, StatusReport, TrialRow, render, render_line, sig6};

/// Statuses in display order.
pub(crate) const STATUSES: [TrialStatus; 5] = [
    TrialStatus::Running,
    TrialStatus::Pending,
    TrialStatus::Paused,
    TrialStatus::Terminated,
    TrialStatus::Error,
];

/// Rows shown in the status table at most.
pub(crate) const MAX_ROWS: usize = 20;

pub(crate) struct StatusRow {
    pub name: String,
    pub status: TrialStatus,
    pub params: Vec<(String, String)>,
    pub metric: Option<f64>,
    pub time_total_s: f64,
    pub iteration: u64,
}

pub(crate) struct StatusView<'a> {
    pub scheduler: &'a str,
    pub cpu: (f64, f64),
    pub gpu: (f64, f64),
    pub dir: &'a Path,
    /// Counts in the order of [`STATUSES`].
    pub counts: [usize; 5],
    pub metric_name: Option<&'static str>,
    pub rows: Vec<StatusRow>,
    pub elapsed: Duration,
    pub best: Option<(String, f64)>,
}

impl StatusView<'_> {
    fn total(&self) -> usize {
        self.counts.iter().sum()
    }

    fn counts_text(&self) -> String {
        let parts: Vec<String> = STATUSES
            .iter()
            .zip(self.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        parts.join(", ")
    }
}

/// "11.4/16.0 GiB" from `/proc/meminfo`, "n/a" where it does not exist.
pub(crate) fn memory_usage() -> String {
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return "n/a".into() };
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(avail)) => {
            let gib = 1024.0 * 1024.0;
            format!("{:.1}/{:.1} GiB", (total - avail) / gib, total / gib)
        }
        _ => "n/a".into(),
    }
}

/// The seed's status block.
pub(crate) fn status_block(view: &StatusView<'_>) -> String {
    let mut out = String::from("== Status ==\n");
    out.push_str(&format!("Memory usage on this node: {}\n", memory_usage()));
    out.push_str(&format!("Using {} scheduling algorithm.\n", view.scheduler));
    out.push_str(&format!(
        "Resources requested: {}/{} CPUs, {}/{} GPUs\n",
        view.cpu.0, view.cpu.1, view.gpu.0, view.gpu.1
    ));
    out.push_str(&format!("Result logdir: {}\n", view.dir.display()));
    out.push_str(&format!("Number of trials: {} ({})\n", view.total(), view.counts_text()));
    if view.rows.is_empty() {
        return out;
    }
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    let mut header = vec!["Trial name".to_string(), "status".to_string()];
    header.extend(view.rows[0].params.iter().map(|(k, _)| k.clone()));
    if let Some(m) = view.metric_name {
        header.push(m.to_string());
    }
    header.push("total time (s)".into());
    header.push("iter".into());
    table.set_header(header);
    for r in &view.rows {
        let mut cells = vec![r.name.clone(), r.status.to_string()];
        cells.extend(r.params.iter().map(|(_, v)| v.clone()));
        if view.metric_name.is_some() {
            cells.push(r.metric.map(|v| format!("{v:.6}")).unwrap_or_default());
        }
        cells.push(format!("{:.5}", r.time_total_s));
        cells.push(r.iteration.to_string());
        table.add_row(cells);
    }
    out.push_str(&table.to_string());
    let shown = view.rows.len();
    if view.total() > shown {
        out.push_str(&format!("\n... {} more trials not shown", view.total() - shown));
    }
    out.push('\n');
    out
}

pub(crate) struct Reporter {
    verbosity: u8,
    tty: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    pub fn new(verbosity: u8, total_trials: Option<usize>) -> Self {
        let tty = std::io::stdout().is_terminal();
        let bar = (tty && verbosity >= 2).then(|| {
            let bar = match total_trials {
                Some(n) => ProgressBar::new(n as u64),
                None => ProgressBar::no_length(),
            };
            if let Ok(style) = ProgressStyle::with_template(
                "{bar:40} {pos}/{len} trials finished [{elapsed_precise}] {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self { verbosity, tty, bar }
    }

    pub fn wants_status(&self) -> bool {
        self.verbosity >= 2
    }

    pub fn wants_results(&self) -> bool {
        self.verbosity >= 3
    }

    pub fn finished(&self, n: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(n as u64);
        }
    }

    fn print(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text.trim_end()),
            None => println!("{}", text.trim_end()),
        }
    }

    pub fn status(&self, view: &StatusView<'_>) {
        if !self.wants_status() {
            return;
        }
        if self.tty {
            self.print(&status_block(view));
        } else {
            let best = view
                .best
                .as_ref()
                .map(|(id, v)| format!(" | best {} {v:.6} ({id})", view.metric_name.unwrap_or("")))
                .unwrap_or_default();
            self.print(&format!(
                "== Status == {:.1}s | {} trials ({}) | {}/{} CPUs, {}/{} GPUs | {}{best}",
                view.elapsed.as_secs_f64(),
                view.total(),
                view.counts_text(),
                view.cpu.0,
                view.cpu.1,
                view.gpu.0,
                view.gpu.1,
                view.dir.display()
            ));
        }
    }

    pub fn result_line(&self, line: &str) {
        if self.wants_results() {
            self.print(line);
        }
    }

    pub fn summary(&self, view: &StatusView<'_>, headline: &str, best: Option<String>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.verbosity == 0 {
            return;
        }
        let mut text = if self.verbosity >= 2 { status_block(view) } else { String::new() };
        text.push_str(&format!(
            "{headline} in {:.2}s: {} trials ({}). Results in {}\n",
            view.elapsed.as_secs_f64(),
            view.total(),
            view.counts_text(),
            view.dir.display()
        ));
        if let Some(best) = best {
            text.push_str(&best);
            text.push('\n');
        }
        println!("{}", text.trim_end());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn status_block_has_the_seed_layout() {
        let view = StatusView {
            scheduler: "FIFO",
            cpu: (1.0, 2.0),
            gpu: (0.0, 0.0),
            dir: Path::new("/tmp/results/exp"),
            counts: [1, 0, 0, 2, 0],
            metric_name: Some("acc"),
            rows: vec![StatusRow {
                name: "Train_00000".into(),
                status: TrialStatus::Running,
                params: vec![("lr".into(), "0.01".into())],
                metric: Some(0.5),
                time_total_s: 1.25,
                iteration: 3,
            }],
            elapsed: Duration::from_secs(2),
            best: None,
        };
        let text = status_block(&view);
        assert!(text.starts_with("== Status ==\nMemory usage on this node: "), "{text}");
        for line in [
            "Using FIFO scheduling algorithm.",
            "Resources requested: 1/2 CPUs, 0/0 GPUs",
            "Result logdir: /tmp/results/exp",
            "Number of trials: 3 (1 RUNNING, 2 TERMINATED)",
            "| Trial name  | status  | lr   | acc      | total time (s) | iter |",
            "| Train_00000 | RUNNING | 0.01 | 0.500000 | 1.25000        | 3    |",
        ] {
            assert!(text.contains(line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("2 more trials not shown"));
        let mem = memory_usage();
        assert!(mem == "n/a" || mem.ends_with(" GiB"), "{mem}");
    }
}
