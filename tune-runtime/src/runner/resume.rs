//! Resuming an experiment from its journal.
//!
//! The journal is the record. A resume folds it (the one fold, `journal/fold.rs`), keeps
//! finished trials as they were (repairing their files when they disagree with it), rolls
//! every unfinished trial back along its lineage to its latest checkpoint that verifies
//! (falling back to older ones, then to the start), rewrites that trial's files from the
//! journal's rows so no line is lost or duplicated, restores the searcher and the
//! scheduler from their saved state, and gives them back what the journal records after
//! it (trials created, results, trial ends), so that they decide as in an uninterrupted
//! run.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::driver::{Driver, status_slot};
use super::files;
use super::model::Model;
use super::rollback::Back;
use super::settings::Errored;
use super::state::{Live, Phase, Trial};
use crate::journal::{Event, Events, ExperimentLog, JournalStore, Who, fold_store};
use crate::logger;
use crate::scheduler::Decision;
use crate::trial::{Auto, TrialId, TrialStatus};
use crate::tuner::RunError;

/// Reads the journal for a resume; `None` when it holds no experiment (the experiment
/// starts fresh). The store cuts a torn last record, so that appends start on a line of
/// their own.
pub(crate) fn load(
    store: &mut dyn JournalStore,
    dir: &Path,
    model: &dyn Model,
) -> Result<Option<ExperimentLog<Value>>, RunError> {
    let log = fold_store(store, dir, true, &mut |_, v| Ok(v))
        .map_err(|e| RunError::Resume(e.to_string()))?;
    let Some(header) = &log.header else { return Ok(None) };
    let names = model.metric_names();
    if header.trainable != model.trainable()
        || header.metrics.iter().map(String::as_str).ne(names.iter().copied())
    {
        return Err(RunError::Resume(format!(
            "`{}`: the experiment ran `{}` with metrics [{}], not `{}` with [{}]; resume it with \
             the same trainable, or choose another `.name(..)`",
            dir.display(),
            header.trainable,
            header.metrics.join(", "),
            model.trainable(),
            names.join(", ")
        )));
    }
    Ok(Some(log))
}

/// What a resume found, for the line it prints.
#[derive(Debug, Default)]
struct Recovered {
    finished: usize,
    unfinished: usize,
    from_checkpoint: usize,
    rolled_back: usize,
    repaired: usize,
}

impl Driver {
    /// Rebuilds the experiment from its journal; then the searcher and the scheduler
    /// restore their saved state and are given what happened after it.
    pub fn resume_from(&mut self, log: ExperimentLog<Value>) -> Result<(), RunError> {
        let errored = self.s.faults.resume.unwrap_or_default();
        if log.fresh_runs > 1 {
            self.warn(&format!(
                "the journal holds {} fresh runs of this experiment (two runs started it at \
                 once before runs took a lock); the last one is resumed",
                log.fresh_runs
            ));
        }
        let ExperimentLog { trials, searcher, scheduler, events, replay, .. } = log;
        let mut got = Recovered::default();
        // Trials found to have ended although the journal lacks their final status.
        let mut ended = Vec::new();
        // The results this resume rolls back that the scheduler is given again (by the
        // replay): per trial, the position of the first one and their rows.
        let mut undone: HashMap<u32, (usize, Vec<f64>)> = HashMap::new();
        let names = self.model.metric_names();
        for (index, (mut rt, r)) in trials.into_iter().zip(replay).enumerate() {
            let id = TrialId(index as u32);
            let (done_pos, exploited, sched_seen, redo_upto) =
                (r.done_pos, r.exploited, r.sched_seen, r.redo_upto);
            let config = std::mem::take(&mut rt.config);
            let earlier = std::mem::take(&mut rt.earlier);
            self.model
                .add_config(id, config.clone())
                .map_err(|e| RunError::Resume(format!("trial {id}: {e}")))?;
            let rel = match rt.dir.as_deref().and_then(Path::file_name) {
                Some(rel) => rel.to_string_lossy().into_owned(),
                None => logger::trial_dir_name(self.model.trainable(), id, &config),
            };
            let dir = self.s.experiment_dir.join(&rel);
            files::refuse_link(&self.s.experiment_dir, &dir)?;
            let status = rt.status;
            // The iteration the trial ended at by itself, read before a rollback drops it.
            let done_at = done_pos.and_then(|p| rt.iteration_at(p));
            let epochs = earlier.len();
            let mut log = rt.with_config(());
            log.earlier = vec![(); epochs];
            log.dir = self.s.file_logging.then(|| dir.clone());
            self.counts[status_slot(status)] += 1;
            let finished =
                status.is_finished() && !(status == TrialStatus::Error && errored != Errored::Keep);
            if finished {
                self.finished += 1;
                got.finished += 1;
                let stale = self.s.file_logging
                    && files::trial_files_stale(&dir, names.len(), &config, &log.history);
                let error = log.error.clone();
                self.trials.push(Trial { log, live: None, counted: Some(status) });
                if stale {
                    // The files lost lines the journal has (or have lines it does not):
                    // rewritten from the journal, the trial's end told again.
                    got.repaired += 1;
                    self.emit_reset(id, status == TrialStatus::Terminated);
                    self.emit_end(
                        id,
                        if status == TrialStatus::Error { error.as_deref() } else { None },
                    );
                }
                continue;
            }
            got.unfinished += 1;
            let restart = status == TrialStatus::Error;
            let retries = if restart { 0 } else { log.failures.len() as u32 };
            let rows_before = log.num_results();
            let last_iteration = rows_before.checked_sub(1).and_then(|p| log.iteration_at(p));
            let mut live = Live::new(
                self.model.resources(id),
                dir.clone(),
                rel,
                Phase::Pending { from: None },
            );
            live.retries = retries;
            live.earlier = earlier;
            self.trials.push(Trial { log, live: Some(Box::new(live)), counted: Some(status) });
            let back =
                if restart && errored == Errored::Restart { Back::Start } else { Back::Latest };
            let dropped = self.rewind(id, back);
            let t = &self.trials[index];
            let rows = t.log.num_results();
            got.rolled_back += rows_before - rows;
            let from = match t.live.as_ref().map(|l| &l.phase) {
                Some(Phase::Pending { from }) => from.clone(),
                _ => None,
            };
            got.from_checkpoint += usize::from(from.is_some());
            if rows > 0 && done_pos == Some(rows - 1) && !restart {
                // It had reached its end and was checkpointed there: it only missed its
                // final status record.
                self.trials[index].live = None;
                if self.s.file_logging {
                    self.emit_reset(id, true);
                }
                self.emit_end(id, None);
                self.set_status(id, TrialStatus::Terminated, None);
                self.finished += 1;
                ended.push(id);
                continue;
            }
            // The driver held the result of the rollback point as the trial's last.
            if let Some(row) = self.trials[index].log.rows().last().map(<[f64]>::to_vec) {
                self.model.set_last(id, &row, false);
            }
            let paused = status == TrialStatus::Paused;
            // The results rolled back stay with the scheduler (its restored state holds
            // some, the replay gives it the others, in journal order); when the trial
            // reports them again they get the decision the run made then without asking
            // it again (see `model::Ask`; the one on the last comes from the replay). Not
            // for a trial PBT exploited: its scheduler takes the trial's results again.
            if !exploited && !dropped.is_empty() {
                undone.insert(id.0, (rows, dropped));
            }
            if let Some(live) = self.trials[index].live.as_mut() {
                let rolled_back = if rows < rows_before { last_iteration.unwrap_or(0) } else { 0 };
                let upto = redo_upto.max(sched_seen).max(rolled_back);
                if !exploited && live.iteration < upto {
                    live.seen_upto = upto;
                    live.then =
                        if done_at == Some(upto) { Decision::Stop } else { Decision::Continue };
                }
            }
            if paused {
                if let (Some(live), Some(from)) = (self.trials[index].live.as_mut(), from) {
                    live.phase = Phase::PausedOnDisk { from };
                }
                self.paused.push(id);
            } else {
                self.set_status(id, TrialStatus::Pending, None);
                self.pending.push(id);
            }
        }
        if let Some(state) = scheduler {
            self.model.restore_scheduler(state).map_err(|e| {
                RunError::Resume(format!("the scheduler cannot restore its saved state: {e}"))
            })?;
        }
        if let Some(state) = searcher {
            self.model.restore_searcher(state).map_err(|e| {
                RunError::Resume(format!("the searcher cannot restore its saved state: {e}"))
            })?;
        }
        self.replay(events, &ended, &undone)?;
        // Saved at once: a later resume restores this state, which holds what was just
        // given back and comes after this resume's rollbacks, instead of the older one and
        // every event after it.
        self.save_state(true);
        self.reporter.finished(self.finished);
        self.flush_journal();
        if self.s.verbosity >= 1 {
            super::capture::print_err(&format!(
                "tune: resuming `{}`: {} finished trial(s) kept{}, {} unfinished continue \
                 ({} from a checkpoint, {} result(s) rolled back to be reported again)",
                self.s.name,
                got.finished,
                if got.repaired > 0 {
                    format!(" ({} with repaired files)", got.repaired)
                } else {
                    String::new()
                },
                got.unfinished,
                got.from_checkpoint,
                got.rolled_back
            ));
        }
        Ok(())
    }

    /// Gives the scheduler the events after its saved state, and the searcher those after
    /// its own (all of them when it saved none), in journal order and with the calls the
    /// driver made live (a `suggest` for each trial created), so that both continue as in
    /// an uninterrupted run: searchers are deterministic given their state and what they
    /// are told. Their answers are not acted on, the journal holds what came of them, but
    /// for the last result of a trial that reports it again (`undone`, rolled back by this
    /// resume): the trial gets that answer then (`Live::then`). A result a trial reports
    /// again goes to the searcher then, not now. `ended` are trials this resume found
    /// finished without their final status record.
    fn replay(
        &mut self,
        events: Events,
        ended: &[TrialId],
        undone: &HashMap<u32, (usize, Vec<f64>)>,
    ) -> Result<(), RunError> {
        let Events { list, base, sched_from, search_from } = events;
        let width = self.width;
        let mut lost = false;
        // The scheduler's answer on each trial's latest result it was given, by iteration,
        // and, for results a trial reports again, where it wanted a checkpoint.
        let mut answered: HashMap<u32, (u64, Decision)> = HashMap::new();
        let mut checkpoints: HashMap<u32, Vec<u64>> = HashMap::new();
        // The run told the scheduler that no more trials would come (`on_no_more_trials`)
        // once the searcher had made all it makes: when that number is known and was
        // reached, the scheduler is told right after the last trial was added (a HyperBand
        // bracket that is not full halves then), or at once if that is before its state.
        let last = self
            .model
            .total_trials()
            .filter(|n| *n > 0 && self.trials.len() >= *n)
            .map(|n| n as u32 - 1);
        let last_in_list =
            list.iter().any(|e| matches!(e, Event::Added { trial, .. } if Some(*trial) == last));
        let mut no_more_due = last.is_some() && !last_in_list;
        let mut list = list.into_iter().enumerate().peekable();
        while let Some((k, event)) = list.next() {
            let (to_scheduler, to_searcher) = (base + k >= sched_from, base + k >= search_from);
            if no_more_due && to_scheduler {
                no_more_due = false;
                self.no_more_trials();
            }
            match event {
                Event::Added { trial, config } => {
                    let id = TrialId(trial);
                    self.model
                        .replay_added(id, config, to_searcher, to_scheduler)
                        .map_err(|e| RunError::Resume(format!("trial {id}: {e}")))?;
                    no_more_due |= Some(trial) == last;
                }
                Event::Result { trial, pos, done, retried, who } => {
                    let id = TrialId(trial);
                    let carried_out = matches!(
                        list.peek(),
                        Some((_, Event::Exploited { trial: t, .. })) if *t == trial
                    );
                    let kept = |t: &Trial| {
                        t.log.history.get(pos * width..(pos + 1) * width).map(<[f64]>::to_vec)
                    };
                    let (row, who) = match retried {
                        Some(row) => (row, who),
                        None => match self.trials.get(id.index()).and_then(kept) {
                            Some(row) => (row, who),
                            // Rolled back by this resume: the scheduler had it (unless the
                            // trial was exploited); the searcher gets it when it is
                            // reported again.
                            None => {
                                let row = undone.get(&trial).and_then(|(from, rows)| {
                                    let at = pos.checked_sub(*from)? * width;
                                    rows.get(at..at + width).map(<[f64]>::to_vec)
                                });
                                match (row, who) {
                                    (Some(row), Who::Both) => (row, Who::Scheduler),
                                    _ => continue,
                                }
                            }
                        },
                    };
                    let to_scheduler = to_scheduler && who != Who::Searcher;
                    let to_searcher = to_searcher && who != Who::Scheduler;
                    let iteration = row[width - Auto::ALL.len()] as u64;
                    if to_scheduler && who == Who::Scheduler {
                        let wanted = checkpoints.entry(trial).or_default();
                        if self.model.wants_checkpoint(id, iteration) {
                            wanted.push(iteration);
                        }
                    }
                    match self.model.replay_result(
                        id,
                        &row,
                        done,
                        to_scheduler,
                        to_searcher,
                        carried_out,
                    ) {
                        Some(decision) if to_scheduler => {
                            answered.insert(trial, (iteration, decision));
                        }
                        Some(_) => {}
                        None => lost = true,
                    }
                }
                Event::End { trial, error, last } => {
                    let last = last.as_ref().map(|(row, done)| (&row[..], *done));
                    lost |= !self.model.replay_end(
                        TrialId(trial),
                        last,
                        error,
                        to_scheduler,
                        to_searcher,
                    );
                }
                Event::Exploited { .. } | Event::Dropped => {}
            }
        }
        if no_more_due {
            self.no_more_trials();
        }
        for (trial, wanted) in checkpoints {
            if let Some(live) = self.trials.get_mut(trial as usize).and_then(|t| t.live.as_mut()) {
                live.checkpoints_then = Some(wanted);
            }
        }
        for (trial, (iteration, decision)) in answered {
            let Some(live) = self.trials.get_mut(trial as usize).and_then(|t| t.live.as_mut())
            else {
                continue;
            };
            // A pause or a stop the run acted on (an exploit the replay found not carried
            // out was withdrawn: the trial went on).
            if live.seen_upto == iteration
                && live.seen_upto > live.iteration
                && matches!(decision, Decision::Pause | Decision::Stop)
            {
                live.then = decision;
            }
        }
        for &id in ended {
            let row = self.trials[id.index()].log.rows().last().map(<[f64]>::to_vec);
            lost |=
                !self.model.replay_end(id, row.as_deref().map(|r| (r, true)), false, true, true);
        }
        if lost {
            self.warn(&format!(
                "the metrics type of `{}` cannot be rebuilt from its values \
                 (`Metrics::from_values`, which `#[derive(Metrics)]` generates): results \
                 journaled after the searcher's and the scheduler's saved state are not given \
                 to them again",
                self.model.trainable()
            ));
        }
        Ok(())
    }

    /// The searcher has made every trial it makes: the scheduler is told, once.
    fn no_more_trials(&mut self) {
        if !self.searcher_done {
            self.searcher_done = true;
            self.model.on_no_more_trials();
        }
    }
}
