//! What the driver tells the callbacks (the built-in loggers of `result.json`,
//! `progress.csv` and TensorBoard's event files, and the user's own): trial starts,
//! results, checkpoints, resets, ends. A callback's failure stops the run resumably, as
//! a full disk does.

use std::path::PathBuf;

use super::driver::Driver;
use crate::callback::{
    CallbackError, Callbacks, CheckpointView, KeptView, ResultView, StartView, TrialView,
};
use crate::trial::TrialId;

/// How a trial (re)starts, for its start event.
pub(crate) enum Start {
    First,
    Restored { from: PathBuf, iteration: u64, time_total_s: f64 },
    Unpaused { iteration: u64, time_total_s: f64 },
}

impl Driver {
    /// The id callbacks and files know a trial by (`4f1c2_00003`: unique across
    /// experiments).
    pub fn ray_id(&self, id: TrialId) -> String {
        crate::logger::trial_id(&self.s.name, self.started_exp, id.0)
    }

    /// Calls `f` on the callbacks with the trial's view (nothing is built when there is
    /// no callback).
    fn emit(
        &mut self,
        id: TrialId,
        f: impl FnOnce(&mut Callbacks, &TrialView<'_>) -> Result<(), CallbackError>,
    ) {
        if self.callbacks.is_empty() {
            return;
        }
        // A live trial keeps its id and config as JSON for its events (a result is one);
        // an exploit or a rollback to another config clears them.
        let i = id.index();
        let cached = self.trials[i].live.as_mut().and_then(|l| l.view.take());
        let (trial_id, config) = match cached {
            Some(v) => v,
            None => (self.ray_id(id), self.model.config_json(id)),
        };
        let t = &self.trials[i];
        let view = TrialView::new(id.0, &trial_id, t.log.dir.as_deref(), &config);
        let result = f(&mut self.callbacks, &view);
        if let Some(live) = self.trials[i].live.as_mut() {
            live.view = Some((trial_id, config));
        }
        if let Err(e) = result {
            self.fatal.get_or_insert(e);
        }
    }

    pub fn emit_start(&mut self, id: TrialId, start: Start) {
        self.emit(id, |cb, t| match &start {
            Start::First => cb.on_trial_start(t, &StartView::first()),
            Start::Restored { from, iteration, time_total_s } => {
                cb.on_trial_start(t, &StartView::restored(from, *iteration, *time_total_s))
            }
            Start::Unpaused { iteration, time_total_s } => {
                cb.on_trial_start(t, &StartView::unpaused(*iteration, *time_total_s))
            }
        });
    }

    /// A result (the row in `self.row`), with the checkpoint written at it if any.
    pub fn emit_result(&mut self, id: TrialId, done: bool, checkpoint: Option<&str>) {
        if self.callbacks.is_empty() {
            return;
        }
        let row = std::mem::take(&mut self.row);
        self.emit(id, |cb, t| {
            let mut r = ResultView::new(&row, done);
            if let Some(name) = checkpoint {
                r = r.with_checkpoint(name);
            }
            cb.on_trial_result(t, &r)
        });
        self.row = row;
    }

    pub fn emit_checkpoint(&mut self, id: TrialId, iteration: u64, path: PathBuf) {
        self.emit(id, |cb, t| cb.on_checkpoint(t, &CheckpointView::new(iteration, &path)));
    }

    /// The trial keeps only its rows so far (a rollback, or files repaired on a resume):
    /// loggers rewrite their files from them.
    pub fn emit_reset(&mut self, id: TrialId, last_done: bool) {
        if self.callbacks.is_empty() {
            return;
        }
        let t = &self.trials[id.index()].log;
        let rows = t.history.clone();
        let names: Vec<(u64, String)> = t
            .checkpoints
            .iter()
            .map(|c| (c.iteration, crate::logger::checkpoint_dir_name(c.iteration)))
            .collect();
        let width = self.width;
        self.emit(id, |cb, t| {
            let kept: Vec<(u64, &str)> = names.iter().map(|(i, n)| (*i, n.as_str())).collect();
            cb.on_trial_reset(t, &KeptView::new(&rows, width, last_done).with_checkpoints(&kept))
        });
    }

    /// The trial ended: TERMINATED, or ERROR with `error`.
    pub fn emit_end(&mut self, id: TrialId, error: Option<&str>) {
        self.emit(id, |cb, t| match error {
            Some(e) => cb.on_trial_error(t, e),
            None => cb.on_trial_complete(t),
        });
        self.flush_callbacks();
    }

    pub fn flush_callbacks(&mut self) {
        if let Err(e) = self.callbacks.flush() {
            self.fatal.get_or_insert(e);
        }
    }

    /// The trial's config changed (an exploit, a rollback to an earlier config): its events
    /// show the new one.
    pub fn config_changed(&mut self, id: TrialId) {
        if let Some(live) = self.trials[id.index()].live.as_mut() {
            live.view = None;
        }
    }
}
