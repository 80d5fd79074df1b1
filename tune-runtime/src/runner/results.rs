//! Results: what the driver does with the steps a worker ran, and how many steps it lets a
//! worker run before it must see a result.

use super::driver::Driver;
use super::model::{Ask, AutoFields, Instance, Results, Verdict};
use super::state::{End, Live, Phase};
use super::worker::{Ending, Failure, Work};
use crate::checkpoint::SaveError;
use crate::scheduler::Decision;
use crate::trial::TrialId;

/// Most steps a worker runs before reporting back (see [`Driver::work`]).
const MAX_BATCH: u64 = 64;

impl Driver {
    /// A `Start`/`Run` task returned: its results are applied in order, then the trial
    /// goes on, ends, or fails.
    pub fn on_stepped(
        &mut self,
        id: TrialId,
        inst: Option<Box<dyn Instance>>,
        mut results: Results,
        failure: Option<Failure>,
        checkpoint: Option<Result<(), SaveError>>,
        ended: Option<Option<Result<(), SaveError>>>,
    ) {
        let i = id.index();
        if let Some(live) = self.trials[i].live.as_mut() {
            live.phase = Phase::Busy;
        }
        let mut decision = Decision::Continue;
        let mut invalid = None;
        // The checkpoint written after the last step is announced with its result.
        let written = matches!(checkpoint, Some(Ok(())));
        let n = results.dts.len();
        for k in 0..n {
            let announce = written && k + 1 == n;
            match self.apply(id, &mut *results.metrics, results.dts[k], announce) {
                Ok(v) => decision = v.decision,
                Err(message) => {
                    invalid = Some(message);
                    break;
                }
            }
            // The work was sized so that only its last result can end the trial; an
            // earlier end (the time budget, Ctrl-C) drops the rest.
            if decision != Decision::Continue {
                break;
            }
        }
        self.model.clear_batch(&mut *results.metrics);
        if let Some(live) = self.trials[i].live.as_mut() {
            live.batch = Some(results);
        }
        if let Some(message) = invalid {
            return match inst {
                Some(inst) => self.finish(id, inst, End::Error(message)),
                None => self.end_trial(id, End::Error(message)),
            };
        }
        match failure {
            Some(Failure::Finished) => return self.end_trial(id, End::Terminated),
            Some(failure) => {
                if let (Failure::Restore { path, .. }, Some(live)) =
                    (&failure, self.trials[i].live.as_mut())
                {
                    live.rejected = Some(path.clone());
                }
                return self.end_trial(id, End::Error(failure.message()));
            }
            None => {}
        }
        match checkpoint {
            Some(Ok(())) => {
                let iteration = self.trials[i].live.as_ref().map_or(0, |l| l.iteration);
                self.register_checkpoint(id, iteration, true);
            }
            Some(Err(e)) => self.checkpoint_failed(id, e),
            None => {}
        }
        if let Some(checkpoint) = ended {
            // The worker ended the trial after its last step, as planned.
            let end = self.trials[i].live.as_mut().and_then(|l| l.ending.take());
            let end = self.ended_checkpoint(id, checkpoint, end.unwrap_or(End::Terminated));
            if let Some(inst) = inst {
                self.idle.push(inst);
            }
            return self.end_trial(id, end);
        }
        let Some(inst) = inst else {
            return self.end_trial(
                id,
                End::Error("internal: the worker lost the trial's instance".into()),
            );
        };
        match self.trials[i].live.as_mut().and_then(|l| l.ending.take()) {
            Some(end) => self.finish(id, inst, end),
            None => self.dispatch(id, inst, decision),
        }
    }

    /// Records one result: its row in the history, the trial's files and the journal.
    /// `Err` when the result is invalid (the trial must end in ERROR).
    fn apply(
        &mut self,
        id: TrialId,
        metrics: &mut (dyn std::any::Any + Send),
        dt: f64,
        checkpointed: bool,
    ) -> Result<Verdict, String> {
        let t = &mut self.trials[id.index()];
        let Some(live) = t.live.as_mut() else {
            return Err("internal: a result of an ended trial".into());
        };
        let auto = AutoFields {
            iteration: live.iteration + 1,
            dt,
            time_total: live.time_total + dt,
            timestamp: self.unix_now,
        };
        let ask = Ask { stopping: self.stopping, seen_upto: live.seen_upto, then: live.then };
        let verdict = self.model.on_result(id, metrics, auto, ask, &mut self.row)?;
        live.iteration = auto.iteration;
        live.time_total = auto.time_total;
        if self.interrupted.is_some() && !verdict.natural {
            live.ending = Some(End::Suspended);
        }
        self.searcher_waiting = false;
        let done = verdict.decision == Decision::Stop;
        t.log.history.extend_from_slice(&self.row);
        // Ended by its own criteria or its scheduler, not by a stop of the whole run.
        let ended = verdict.natural || (!self.stopping && done);
        if let Some(j) = &mut self.journal {
            match j.result(id.0, &self.row, ended) {
                Ok(n) => self.snapshot.appended(n),
                Err(source) => {
                    let path = self.s.experiment_dir.join(crate::journal::JOURNAL_FILE);
                    self.fatal.get_or_insert(crate::logger::LogError { path, source });
                    self.journal = None;
                }
            }
        }
        if checkpointed {
            let path = live.checkpoint_dir(auto.iteration);
            self.emit_checkpoint(id, auto.iteration, path);
            let name = crate::logger::checkpoint_dir_name(auto.iteration);
            self.emit_result(id, done, Some(&name));
        } else {
            self.emit_result(id, done, None);
        }
        if self.reporter.wants_results() {
            self.result_line(id, done);
        }
        Ok(verdict)
    }

    fn result_line(&self, id: TrialId, done: bool) {
        let names = self.model.metric_names();
        let fields: Vec<String> =
            names.iter().zip(&self.row).map(|(n, v)| format!("{n}={v}")).collect();
        let m = names.len();
        self.reporter.result_line(&format!(
            "Result for {}_{id}: training_iteration={} {} time_total_s={:.4} done={done}",
            self.model.trainable(),
            self.row[m] as u64,
            fields.join(" "),
            self.row[m + 2],
        ));
    }

    /// The work of the trial's next task: how many steps (more than one only when no
    /// decision can come earlier: the scheduler's `safe_steps`, stop criteria on the
    /// iteration alone, no checkpoint due), the checkpoint after them, and whether the
    /// trial certainly ends there (then the worker ends it in the same task).
    pub fn work(&mut self, id: TrialId, live: &mut Live) -> Work {
        let results = live
            .batch
            .take()
            .unwrap_or_else(|| Results { metrics: self.model.new_batch(), dts: Vec::new() });
        let steps = self.batch_len(id, live);
        let checkpoint = if steps == 1 { self.checkpoint_request(id, live) } else { None };
        let then = (checkpoint.is_none()).then(|| self.planned_end(id, live, steps)).flatten();
        Work { steps, checkpoint, then, results }
    }

    fn batch_len(&self, id: TrialId, live: &Live) -> u32 {
        if self.stopping || self.s.checkpoint_freq > 0 {
            return 1;
        }
        match self.model.safe_steps(id, live.iteration) {
            Some(n) => n.clamp(1, MAX_BATCH) as u32,
            None => 1,
        }
    }

    /// How the trial ends after `steps` more steps, when that is certain: its stop
    /// criteria end it there whatever it reports, its scheduler never stops or pauses it,
    /// and nothing else (Ctrl-C, a resume's earlier decisions) is pending. Not with a step
    /// timeout: the end (checkpoint, `cleanup`) is then a task of its own, so that one
    /// that hangs is told from a step that hangs.
    fn planned_end(&self, id: TrialId, live: &Live, steps: u32) -> Option<Ending> {
        if self.stopping
            || self.s.faults.step_timeout.is_some()
            || live.ending.is_some()
            || live.seen_upto > live.iteration
            || !self.model.always_continues()
            || self.model.ends_after(live.iteration) != Some(u64::from(steps))
        {
            return None;
        }
        let iteration = live.iteration + u64::from(steps);
        let checkpoint =
            self.s.checkpoint_at_end.then(|| self.request(id, live, iteration)).flatten();
        let more = !self.searcher_done || !self.pending.is_empty();
        Some(Ending { checkpoint, keep: self.s.reuse_actors && more })
    }
}
