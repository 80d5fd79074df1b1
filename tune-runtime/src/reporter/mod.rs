//! Live status: the `== Status ==` block, a progress bar, plain lines when stdout is not a
//! terminal, and the final summary.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::trial::TrialStatus;

mod table;

pub(crate) use table::{BestTrial, StatusReport, TrialRow, sig6};

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

pub(crate) struct Reporter {
    verbosity: u8,
    tty: bool,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// A reporter for a run; it writes to the terminal, past an output capture
    /// (`runner/capture.rs`) when one is active.
    pub fn new(verbosity: u8, total_trials: Option<usize>) -> Self {
        let terminal = crate::runner::capture::terminal_files();
        let tty = match &terminal {
            Some((out, _)) => out.is_terminal(),
            None => std::io::stdout().is_terminal(),
        };
        let bar = (tty && verbosity >= 2).then(|| {
            let bar = match total_trials {
                Some(n) => ProgressBar::new(n as u64),
                None => ProgressBar::no_length(),
            };
            #[cfg(unix)]
            if let Some((_, err)) = terminal {
                // indicatif draws on stderr: the terminal's, not the capture's pipe.
                if let Ok(read) = err.try_clone() {
                    let term = console::Term::read_write_pair(read, err);
                    bar.set_draw_target(indicatif::ProgressDrawTarget::term(term, 20));
                }
            }
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
            None => crate::runner::capture::print_out(text.trim_end()),
        }
    }

    pub fn status(&self, report: &StatusReport<'_>) {
        if !self.wants_status() {
            return;
        }
        if self.tty {
            self.print(&table::render(report));
        } else {
            self.print(&table::render_line(report));
        }
    }

    pub fn result_line(&self, line: &str) {
        if self.wants_results() {
            self.print(line);
        }
    }

    pub fn summary(&self, report: &StatusReport<'_>, headline: &str, best: Option<String>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.verbosity == 0 {
            return;
        }
        let mut text = if self.verbosity >= 2 { table::render(report) } else { String::new() };
        text.push_str(&format!(
            "{headline} in {:.2}s: {}. Results in {}\n",
            report.elapsed.as_secs_f64(),
            report.trials_line(),
            report.dir.display()
        ));
        if let Some(best) = best {
            text.push_str(&best);
            text.push('\n');
        }
        crate::runner::capture::print_out(text.trim_end());
    }
}
