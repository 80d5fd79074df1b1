//! What the driver does for schedulers beyond continue and stop: pausing in memory or to
//! disk, and ending trials a scheduler gives up on.

use super::driver::Driver;
use super::model::Instance;
use super::state::{AfterPause, End, Phase};
use super::worker::Task;
use crate::checkpoint::SaveError;
use crate::scheduler::Pausing;
use crate::trial::{TrialId, TrialStatus};

impl Driver {
    /// Ends the trials the scheduler gave up on (paused or pending ones). Returns whether
    /// any ended.
    pub fn apply_scheduler_stops(&mut self) -> bool {
        let mut any = false;
        let mut stops = Vec::new();
        loop {
            self.model.take_stops(&mut stops);
            if stops.is_empty() {
                return any;
            }
            for id in stops.drain(..) {
                let Some(live) = self.trials.get_mut(id.index()).and_then(|t| t.live.as_mut())
                else {
                    continue;
                };
                if let Phase::PausingToDisk { then } = &mut live.phase {
                    // Its pause checkpoint is being written: end it once written.
                    *then = AfterPause::Stop;
                    continue;
                }
                if live.seen_upto > live.iteration {
                    // A resume rolled it back past results the scheduler had when it
                    // stopped it: it reports them again (decided as then, without the
                    // scheduler) and stops at the last.
                    live.then = crate::scheduler::Decision::Stop;
                    if self.paused.contains(&id) {
                        self.paused.retain(|p| *p != id);
                        self.pending.push(id);
                    }
                    continue;
                }
                let waiting = self.pending.contains(&id) || self.paused.contains(&id);
                if !waiting {
                    // A running trial is ended by its own next decision.
                    continue;
                }
                any = true;
                self.pending.retain(|p| *p != id);
                self.paused.retain(|p| *p != id);
                self.end_waiting(id, End::Terminated);
            }
        }
    }

    fn in_memory_paused(&self) -> usize {
        self.paused
            .iter()
            .filter(|p| {
                self.trials[p.index()]
                    .live
                    .as_ref()
                    .is_some_and(|l| matches!(l.phase, Phase::PausedInMemory(_)))
            })
            .count()
    }

    /// `Decision::Pause`: release the resources; keep the instance in memory, or save it
    /// and drop it, as [`Pausing`] says.
    pub fn pause(&mut self, id: TrialId, inst: Box<dyn Instance>) {
        let to_disk = match self.s.pausing {
            Pausing::Memory => false,
            Pausing::Disk => true,
            Pausing::Auto { max_in_memory } => self.in_memory_paused() >= max_in_memory,
        };
        self.pool_release(id);
        let i = id.index();
        let Some(mut live) = self.trials[i].live.take() else { return };
        if !to_disk {
            live.phase = Phase::PausedInMemory(inst);
            self.trials[i].live = Some(live);
            self.set_status(id, TrialStatus::Paused, None);
            self.paused.push(id);
            return;
        }
        // The PAUSED status is journaled after the pause checkpoint (`on_suspended`), and
        // no saved state is written meanwhile: a crash before the checkpoint leaves the
        // trial running in the journal, to be rolled back, never paused without it.
        let checkpoint = self.end_checkpoint(id, &live);
        live.ticket += 1;
        live.phase = Phase::PausingToDisk { then: AfterPause::Wait };
        let task = Task::Suspend { trial: id.0, ticket: live.ticket, inst, checkpoint };
        self.trials[i].live = Some(live);
        self.send(task);
    }

    /// The pause checkpoint of a trial is written (or failed).
    pub fn on_suspended(&mut self, id: TrialId, checkpoint: Option<Result<(), SaveError>>) {
        let i = id.index();
        let Some(live) = self.trials[i].live.as_mut() else { return };
        let then = match std::mem::replace(&mut live.phase, Phase::Busy) {
            Phase::PausingToDisk { then } => then,
            _ => AfterPause::Wait,
        };
        let iteration = live.iteration;
        if matches!(checkpoint, Some(Ok(())))
            && crate::faultpoint::hit(crate::faultpoint::Point::PauseCheckpoint)
        {
            crate::faultpoint::die();
        }
        match checkpoint {
            Some(Err(SaveError::Trial(e))) => {
                return self.end_trial(id, End::Error(format!("pausing to disk failed: {e}")));
            }
            Some(Err(SaveError::Storage { path, source })) => {
                // The run stops; the instance is gone, so a resume continues the trial
                // from its latest checkpoint written before.
                self.storage_refused(path, source);
                return self.end_trial(id, End::Suspended);
            }
            Some(Ok(())) => self.register_checkpoint(id, iteration, false),
            None => {}
        }
        let Some(from) = self.trials[i].restore_point().map(|c| c.path.clone()) else {
            return self.end_trial(id, End::Error("the trial paused without a checkpoint".into()));
        };
        self.set_status(id, TrialStatus::Paused, None);
        self.flush_journal();
        if crate::faultpoint::hit(crate::faultpoint::Point::Paused) {
            crate::faultpoint::die();
        }
        let end = if self.interrupted.is_some() {
            Some(End::Suspended)
        } else if self.stopping || then == AfterPause::Stop {
            Some(End::Terminated)
        } else {
            None
        };
        match end {
            Some(end) => self.end_trial(id, end),
            None => {
                if let Some(live) = self.trials[i].live.as_mut() {
                    live.phase = Phase::PausedOnDisk { from };
                }
                self.paused.push(id);
            }
        }
    }
}
