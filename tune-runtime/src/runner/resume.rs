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

use std::path::Path;

use serde_json::Value;

use super::driver::{Driver, status_slot};
use super::files;
use super::model::Model;
use super::rollback::Back;
use super::settings::Errored;
use super::state::{Live, Phase, Trial};
use crate::journal::{Event, Events, ExperimentLog, JournalStore, fold_store};
use crate::logger;
use crate::trial::{TrialId, TrialStatus};
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
        let names = self.model.metric_names();
        for (index, (mut rt, r)) in trials.into_iter().zip(replay).enumerate() {
            let id = TrialId(index as u32);
            let (done_pos, exploited, sched_seen) = (r.done_pos, r.exploited, r.sched_seen);
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
            self.rewind(id, back);
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
            if let Some(live) = self.trials[index].live.as_mut() {
                // Results it reports again that the restored scheduler already holds get
                // the decision the run made then (see `model::Ask`). Not for a trial PBT
                // exploited or one the scheduler has paused: those schedulers take the
                // trial's results again themselves.
                if !exploited && !paused && live.iteration < sched_seen {
                    live.seen_upto = sched_seen;
                    live.stop_at = done_at;
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
        self.replay(events, &ended)?;
        // Saved at once: a later resume restores this state, which holds what was just
        // given back and comes after this resume's rollbacks, instead of the older one and
        // every event after it.
        self.save_state(true);
        self.reporter.finished(self.finished);
        self.flush_journal();
        if self.s.verbosity >= 1 {
            eprintln!(
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
            );
        }
        Ok(())
    }

    /// Gives the scheduler the events after its saved state, and the searcher those after
    /// its own (all of them when it saved none), in journal order and with the calls the
    /// driver made live (a `suggest` for each trial created), so that both continue as in
    /// an uninterrupted run: searchers are deterministic given their state and what they
    /// are told. Their answers are not acted on: the journal holds what came of
    /// them. A result above the rollback point of a trial that runs again is left out,
    /// since the trial reports it again. `ended` are trials this resume found finished
    /// without their final status record.
    fn replay(&mut self, events: Events, ended: &[TrialId]) -> Result<(), RunError> {
        let Events { list, base, sched_from, search_from } = events;
        let width = self.width;
        let mut lost = false;
        let mut list = list.into_iter().enumerate().peekable();
        while let Some((k, event)) = list.next() {
            let (to_scheduler, to_searcher) = (base + k >= sched_from, base + k >= search_from);
            match event {
                Event::Added { trial, config } => {
                    let id = TrialId(trial);
                    self.model
                        .replay_added(id, config, to_searcher, to_scheduler)
                        .map_err(|e| RunError::Resume(format!("trial {id}: {e}")))?;
                }
                Event::Result { trial, pos, done, retried } => {
                    let id = TrialId(trial);
                    let carried_out = matches!(
                        list.peek(),
                        Some((_, Event::Exploited { trial: t, .. })) if *t == trial
                    );
                    let row: Option<Vec<f64>> = match retried {
                        Some(row) => Some(row),
                        // Past the rollback point when the trial runs again (it reports the
                        // result again), else its row in the history.
                        None => self.trials.get(id.index()).and_then(|t| {
                            t.log.history.get(pos * width..(pos + 1) * width).map(<[f64]>::to_vec)
                        }),
                    };
                    let Some(row) = row else { continue };
                    lost |= !self.model.replay_result(
                        id,
                        &row,
                        done,
                        to_scheduler,
                        to_searcher,
                        carried_out,
                    );
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
}
