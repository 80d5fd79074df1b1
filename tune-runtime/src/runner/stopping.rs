//! Stopping a run early, resumably: Ctrl-C or SIGTERM, a failed write, a step that hangs.

use std::time::{Duration, Instant};

use super::driver::Driver;
use super::state::{End, Phase};
use crate::trial::{TrialId, TrialStatus};

impl Driver {
    /// Ctrl-C (or SIGTERM): no new trials; running trials stop after their current step,
    /// paused ones at once, each with a checkpoint, and are left resumable. Steps that do
    /// not return within the grace period are given up on.
    pub fn interrupt(&mut self) {
        self.interrupted = Some(Instant::now());
        self.stopping = true;
        for id in std::mem::take(&mut self.paused) {
            self.end_waiting(id, End::Suspended);
        }
    }

    /// A write failed (`fatal`): stop as on Ctrl-C, so that the experiment stays
    /// resumable, and report the failure from `run`.
    pub fn halt(&mut self) {
        if self.interrupted.is_none() {
            self.interrupt();
        }
    }

    /// Ends the run's part of a trial stopped by Ctrl-C or a failed write: PENDING (PAUSED
    /// when the scheduler had paused it), its files flushed, for a resume to continue it.
    pub fn suspend(&mut self, id: TrialId) {
        let i = id.index();
        self.pool_release(id);
        self.pending.retain(|p| *p != id);
        self.paused.retain(|p| *p != id);
        self.trials[i].live = None;
        self.flush_callbacks();
        let status = match self.trials[i].log.status {
            TrialStatus::Paused => TrialStatus::Paused,
            _ => TrialStatus::Pending,
        };
        self.set_status(id, status, None);
        self.flush_journal();
    }

    /// When the driver must next look at hung steps: the earliest step deadline, or the
    /// end of the grace period after Ctrl-C.
    pub fn next_step_deadline(&self) -> Option<Instant> {
        let grace = self.interrupted.map(|t| t + self.s.faults.interrupt_grace);
        let step = self.s.faults.step_timeout.and_then(|timeout| {
            self.trials
                .iter()
                .filter_map(|t| t.live.as_ref()?.sent)
                .min()
                .map(|sent| sent + timeout)
        });
        match (grace, step) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Gives up on steps that ran past the step timeout (their trials fail; an isolated
    /// trial's process is killed), and after Ctrl-C's grace period on every task still
    /// running (their trials are left resumable from their latest checkpoint).
    pub fn check_hung(&mut self, now: Instant) {
        if let Some(timeout) = self.s.faults.step_timeout {
            let hung: Vec<TrialId> = self
                .trials
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    t.live.as_ref().and_then(|l| l.sent).is_some_and(|s| now >= s + timeout)
                })
                .map(|(i, _)| TrialId(i as u32))
                .collect();
            for id in hung {
                let what = match self.give_up(id) {
                    // Ending anyway: its results are in; its checkpoint at the end or its
                    // `cleanup` is what hung.
                    Some(Phase::Finishing(end)) => {
                        self.warn(&format!(
                            "trial {}_{id}: its checkpoint or `cleanup` at the end did not \
                             return within {} (`Tuner::step_timeout`); ending it without them",
                            self.model.trainable(),
                            human(timeout)
                        ));
                        self.end_trial(id, end);
                        continue;
                    }
                    Some(Phase::PausingToDisk { .. }) => "its pause checkpoint",
                    _ => "`step`",
                };
                let message = format!(
                    "{what} did not return within {} (`Tuner::step_timeout`); the trial was \
                     given up on",
                    human(timeout)
                );
                self.warn(&format!("trial {}_{id}: {message}", self.model.trainable()));
                self.end_trial(id, End::Error(message));
            }
        }
        let Some(at) = self.interrupted else { return };
        if now < at + self.s.faults.interrupt_grace {
            return;
        }
        let busy: Vec<TrialId> = self
            .trials
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.live.as_ref().is_some_and(|l| {
                    matches!(
                        l.phase,
                        Phase::Busy | Phase::Finishing(_) | Phase::PausingToDisk { .. }
                    )
                })
            })
            .map(|(i, _)| TrialId(i as u32))
            .collect();
        if busy.is_empty() {
            return;
        }
        self.warn(&format!(
            "{} trial(s) did not finish their step within {} of the interrupt; stopping \
             without them (they continue from their latest checkpoint on a resume)",
            busy.len(),
            human(self.s.faults.interrupt_grace)
        ));
        for id in busy {
            // A trial that failed keeps its failure; the others continue on a resume.
            let end = match self.give_up(id) {
                Some(Phase::Finishing(End::Error(e))) => End::Error(e),
                _ => End::Suspended,
            };
            self.end_trial(id, end);
        }
    }

    /// Stops waiting for the trial's task: its answer, if it ever comes, is ignored, and
    /// an isolated trial's process is killed. Returns the phase the trial was in.
    fn give_up(&mut self, id: TrialId) -> Option<Phase> {
        let phase = self.trials[id.index()].live.as_mut().map(|live| {
            live.ticket += 1;
            live.sent = None;
            std::mem::replace(&mut live.phase, Phase::Busy)
        });
        self.abandoned += 1;
        super::isolation::kill_worker_of(&id.to_string());
        phase
    }
}

fn human(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
