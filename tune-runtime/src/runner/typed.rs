//! The typed half of a run: the adapters that put a trainable, its searcher, scheduler and
//! stop criteria behind the driver's object-safe traits (see `model.rs`). This is the only
//! runner code a user's crate instantiates, so it stays small: each method forwards.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::path::Path;

use serde_json::{Map, Value};

use super::model::{
    AnyBatch, AnyConfig, Ask, AutoFields, CheckpointRequest, Factory, Instance, Model, Suggested,
    Verdict,
};
use crate::analysis::{Analysis, TrialInfo};
use crate::checkpoint::{self, CheckpointMeta, CheckpointStore, SaveError};
use crate::error::TrainResult;
use crate::journal::TrialLog;
use crate::metrics::Metrics;
use crate::scheduler::{Decision, Scheduler};
use crate::searcher::{Searcher, Suggestion};
use crate::space::Space;
use crate::stop::Stop;
use crate::trainable::{Resources, Trainable, TrainableSpec, TrialContext};
use crate::trial::{Key, Mode, TrialId, TrialResult};

type C<T> = <T as TrainableSpec>::Config;
type M<T> = <T as TrainableSpec>::Metrics;

/// A trainable instance behind [`Instance`].
pub(crate) struct Inst<T>(pub T);

impl<T: Trainable> Instance for Inst<T> {
    fn step(&mut self, out: &mut (dyn Any + Send)) -> TrainResult<()> {
        let m = self.0.step()?;
        match out.downcast_mut::<VecDeque<M<T>>>() {
            Some(queue) => {
                queue.push_back(m);
                Ok(())
            }
            None => Err(crate::TrainError::msg("internal: a result batch of another type")),
        }
    }

    fn reset_config(&mut self, config: &(dyn Any + Send), ctx: &TrialContext) -> TrainResult<bool> {
        match config.downcast_ref::<C<T>>() {
            Some(config) => self.0.reset_config(config, ctx),
            None => Ok(false),
        }
    }

    fn save(
        &self,
        store: &dyn CheckpointStore,
        req: &CheckpointRequest,
        elapsed: f64,
    ) -> Result<(), SaveError> {
        let meta = CheckpointMeta {
            trainable: T::NAME.to_string(),
            iteration: req.iteration,
            time_total_s: req.time_total_s + elapsed,
            trial: Some(req.trial.clone()),
        };
        checkpoint::save(store, &self.0, &req.dir, &meta, req.durability)
    }

    fn restore(&mut self, dir: &Path) -> Result<(), String> {
        checkpoint::restore(&mut self.0, dir)
    }

    fn cleanup(&mut self) {
        self.0.cleanup();
    }
}

/// Builds [`Inst`]s of `T`.
pub(crate) struct TypedFactory<T>(PhantomData<fn() -> T>);

impl<T> TypedFactory<T> {
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<T: Trainable> Factory for TypedFactory<T> {
    fn setup(
        &self,
        config: &(dyn Any + Send),
        ctx: &TrialContext,
    ) -> TrainResult<Box<dyn Instance>> {
        let config = config
            .downcast_ref::<C<T>>()
            .ok_or_else(|| crate::TrainError::msg("internal: a config of another type"))?;
        T::setup(config, ctx).map(|t| Box::new(Inst(t)) as Box<dyn Instance>)
    }
}

/// The searcher, scheduler, stop criteria, configs and live results of a run of `T`.
pub(crate) struct TypedModel<T: Trainable> {
    pub searcher: Box<dyn Searcher<C<T>, M<T>>>,
    pub scheduler: Box<dyn Scheduler<C<T>, M<T>>>,
    pub stop: Stop<M<T>>,
    pub objective: Option<(Key<M<T>>, Mode)>,
    /// Replaces the trainable's resource declaration for every trial.
    pub resources: Option<Resources>,
    /// Several objectives or constraints, for the searcher.
    pub objectives: Option<crate::objectives::Objectives<M<T>>>,
    configs: Vec<C<T>>,
    /// Configs of exploits the scheduler asked for and the driver has not carried out.
    exploits: HashMap<u32, C<T>>,
    /// The last result of each live trial (few: at most the trials running or paused),
    /// looked up by a linear search, which beats hashing at this size.
    last: Vec<(u32, TrialResult<M<T>>)>,
}

impl<T: Trainable> TypedModel<T> {
    pub fn new(
        searcher: Box<dyn Searcher<C<T>, M<T>>>,
        scheduler: Box<dyn Scheduler<C<T>, M<T>>>,
        stop: Stop<M<T>>,
        objective: Option<(Key<M<T>>, Mode)>,
        resources: Option<Resources>,
    ) -> Self {
        Self {
            searcher,
            scheduler,
            stop,
            objective,
            resources,
            objectives: None,
            configs: Vec::new(),
            exploits: HashMap::new(),
            last: Vec::new(),
        }
    }

    /// Several objectives or constraints for the searcher (checked by `Tuner::run`).
    pub fn with_objectives(
        mut self,
        objectives: Option<crate::objectives::Objectives<M<T>>>,
    ) -> Self {
        self.objectives = objectives;
        self
    }

    /// Keeps `result` as the trial's last one.
    fn keep_last(&mut self, id: TrialId, result: TrialResult<M<T>>) {
        match self.last.iter_mut().find(|(t, _)| *t == id.0) {
            Some(slot) => slot.1 = result,
            None => self.last.push((id.0, result)),
        }
    }

    fn take_last(&mut self, id: TrialId) -> Option<TrialResult<M<T>>> {
        let k = self.last.iter().position(|(t, _)| *t == id.0)?;
        Some(self.last.swap_remove(k).1)
    }

    fn config(&self, id: TrialId) -> Option<&C<T>> {
        self.configs.get(id.index())
    }

    fn put(&mut self, id: TrialId, config: C<T>) {
        match self.configs.get_mut(id.index()) {
            Some(slot) => *slot = config,
            None => self.configs.push(config),
        }
    }

    /// The result a row records, as the driver built it live; `None` when the metrics
    /// type cannot be rebuilt from its values (no `Metrics::from_values`).
    fn rebuild(id: TrialId, row: &[f64], done: bool) -> Option<TrialResult<M<T>>> {
        let n = <M<T> as Metrics>::NAMES.len();
        let metrics = <M<T> as Metrics>::from_values(row.get(..n)?)?;
        let &[iteration, time_this_iter_s, time_total_s, timestamp] = row.get(n..)? else {
            return None;
        };
        Some(TrialResult {
            metrics,
            trial_id: id,
            training_iteration: iteration as u64,
            time_this_iter_s,
            time_total_s,
            timestamp: timestamp as u64,
            done,
        })
    }
}

fn decode<Cfg: Space>(json: Value) -> Result<Cfg, String> {
    Cfg::from_json_value(json)
        .map_err(|e| format!("{e}; use the config type of the trainable that ran it"))
}

impl<T: Trainable> Model for TypedModel<T> {
    fn trainable(&self) -> &'static str {
        T::NAME
    }

    fn metric_names(&self) -> &'static [&'static str] {
        <M<T> as Metrics>::NAMES
    }

    fn scheduler_name(&self) -> &str {
        self.scheduler.name()
    }

    fn scheduler_lines(&self) -> Vec<String> {
        self.scheduler.status_lines()
    }

    fn setup(&mut self, num_samples: usize, seed: u64) {
        self.searcher.setup(num_samples, seed);
        self.scheduler.setup(seed);
        if let Some((key, mode)) = self.objective {
            self.searcher.set_objective(key, mode);
        }
        if let Some(objectives) = &self.objectives {
            // `Tuner::run` checked that the searcher takes them before anything was written.
            let _ = self.searcher.set_objectives(objectives);
        }
    }

    fn total_trials(&self) -> Option<usize> {
        self.searcher.total_trials()
    }

    fn suggest(&mut self, id: TrialId) -> Suggested {
        match self.searcher.suggest(id) {
            Suggestion::Config(config) => {
                self.put(id, config);
                Suggested::Config
            }
            Suggestion::NotNow => Suggested::NotNow,
            Suggestion::Finished => Suggested::Finished,
        }
    }

    fn add_config(&mut self, id: TrialId, json: Value) -> Result<(), String> {
        let config = decode(json)?;
        self.put(id, config);
        Ok(())
    }

    fn set_config(&mut self, id: TrialId, json: Value) -> Result<(), String> {
        self.add_config(id, json)
    }

    fn override_config(&mut self, id: TrialId, over: &Map<String, Value>) -> Result<(), String> {
        let Some(config) = self.config(id) else { return Ok(()) };
        let config = crate::tuner::apply_overrides(config, over)?;
        self.put(id, config);
        Ok(())
    }

    fn config_json(&self, id: TrialId) -> Value {
        self.config(id).map_or(Value::Null, Space::to_json_value)
    }

    fn resources(&self, id: TrialId) -> Resources {
        match (&self.resources, self.config(id)) {
            (Some(r), _) => r.clone(),
            (None, Some(config)) => T::resources(config),
            (None, None) => Resources::default(),
        }
    }

    fn start_config(&self, id: TrialId) -> AnyConfig {
        match self.config(id) {
            Some(c) => Box::new(c.clone()),
            None => Box::new(()),
        }
    }

    fn on_trial_add(&mut self, id: TrialId) {
        if let Some(config) = self.configs.get(id.index()) {
            self.scheduler.on_trial_add(id, config);
        }
    }

    fn new_batch(&self) -> AnyBatch {
        Box::new(VecDeque::<M<T>>::new())
    }

    fn clear_batch(&self, batch: &mut (dyn Any + Send)) {
        if let Some(queue) = batch.downcast_mut::<VecDeque<M<T>>>() {
            queue.clear();
        }
    }

    fn foreign_added(&mut self, id: TrialId, config: Value) -> Result<(), String> {
        let config: C<T> = decode(config)?;
        self.searcher.on_trial_added(id, &config);
        if self.scheduler.shares_trials() {
            self.scheduler.on_trial_add(id, &config);
        }
        self.put(id, config);
        Ok(())
    }

    fn shares_trials(&self) -> bool {
        self.scheduler.shares_trials()
    }

    fn on_result(
        &mut self,
        id: TrialId,
        metrics: &mut (dyn Any + Send),
        auto: AutoFields,
        ask: Ask,
        row: &mut Vec<f64>,
    ) -> Result<Verdict, String> {
        let Some(metrics) = metrics.downcast_mut::<VecDeque<M<T>>>().and_then(VecDeque::pop_front)
        else {
            return Err("internal: a result missing from its batch".into());
        };
        let mut result = TrialResult {
            metrics,
            trial_id: id,
            training_iteration: auto.iteration,
            time_this_iter_s: auto.dt,
            time_total_s: auto.time_total,
            timestamp: auto.timestamp,
            done: false,
        };
        let names = <M<T> as Metrics>::NAMES;
        if let Some(k) = (0..names.len()).find(|&k| !result.metrics.value(k).is_finite()) {
            return Err(format!(
                "metric `{}` is {} at iteration {}: return finite values from `step` (NaN and \
                 infinities cannot be compared, ranked or written as JSON)",
                names[k],
                result.metrics.value(k),
                auto.iteration
            ));
        }
        let natural = self.stop.should_stop(&result);
        let it = auto.iteration;
        let decision = if ask.stopping || natural {
            Decision::Stop
        } else if it < ask.seen_upto {
            Decision::Continue
        } else if it == ask.seen_upto {
            ask.then
        } else {
            self.scheduler.on_trial_result(id, &result)
        };
        self.searcher.on_trial_result(id, &result);
        result.done = decision == Decision::Stop;
        row.clear();
        result.write_row(row);
        self.keep_last(id, result);
        Ok(Verdict { decision, natural })
    }

    fn clear_last(&mut self, id: TrialId) {
        self.take_last(id);
    }

    fn set_last(&mut self, id: TrialId, row: &[f64], done: bool) -> bool {
        match Self::rebuild(id, row, done) {
            Some(r) => {
                self.keep_last(id, r);
                true
            }
            None => false,
        }
    }

    fn on_trial_complete(&mut self, id: TrialId, failed: bool) {
        let last = self.take_last(id);
        self.scheduler.on_trial_complete(id, last.as_ref(), failed);
        self.searcher.on_trial_complete(id, last.as_ref(), failed);
        self.exploits.remove(&id.0);
    }

    fn safe_steps(&self, id: TrialId, iteration: u64) -> Option<u64> {
        let scheduler = self.scheduler.safe_steps(id, iteration)?;
        let stop = self.stop.safe_steps(iteration)?;
        Some(scheduler.min(stop))
    }

    fn ends_after(&self, iteration: u64) -> Option<u64> {
        self.stop.ends_after(iteration)
    }

    fn always_continues(&self) -> bool {
        self.scheduler.always_continues()
    }

    fn wants_checkpoint(&self, id: TrialId, iteration: u64) -> bool {
        self.scheduler.wants_checkpoint(id, iteration)
    }

    fn on_no_more_trials(&mut self) {
        self.scheduler.on_no_more_trials();
    }

    fn choose_trial_to_run(&mut self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        self.scheduler.choose_trial_to_run(pending, paused)
    }

    fn take_stops(&mut self, out: &mut Vec<TrialId>) {
        self.scheduler.take_stops(out);
    }

    fn take_exploit(&mut self, id: TrialId) -> Option<(TrialId, Value)> {
        let e = self.scheduler.take_exploit(id)?;
        let json = e.config.to_json_value();
        self.exploits.insert(id.0, e.config);
        Some((e.source, json))
    }

    fn apply_exploit(&mut self, id: TrialId) {
        if let Some(config) = self.exploits.remove(&id.0) {
            self.put(id, config);
        }
    }

    fn on_exploit_failed(&mut self, id: TrialId, source: TrialId, why: &str) {
        self.exploits.remove(&id.0);
        self.scheduler.on_exploit_failed(id, source, why);
    }

    fn save_state(&self) -> (Value, Value) {
        (self.searcher.save_state(), self.scheduler.save_state())
    }

    fn restore_searcher(&mut self, state: Value) -> Result<(), String> {
        self.searcher.restore_state(state).map_err(|e| e.to_string())
    }

    fn restore_scheduler(&mut self, state: Value) -> Result<(), String> {
        self.scheduler.restore_state(state).map_err(|e| e.to_string())
    }

    fn replay_added(
        &mut self,
        id: TrialId,
        config: Value,
        suggest: bool,
        scheduler: bool,
    ) -> Result<(), String> {
        if suggest {
            // Deterministic searchers without a saved state suggest again what they
            // suggested then; the journal holds the config that ran.
            let _ = self.searcher.suggest(id);
        }
        if scheduler {
            let config: C<T> = decode(config)?;
            self.scheduler.on_trial_add(id, &config);
        }
        Ok(())
    }

    fn replay_result(
        &mut self,
        id: TrialId,
        row: &[f64],
        done: bool,
        scheduler: bool,
        searcher: bool,
        exploit_carried_out: bool,
    ) -> Option<Decision> {
        let result = Self::rebuild(id, row, false)?;
        let mut decision = Decision::Continue;
        // A result on which the stop criteria ended the trial never reached the scheduler
        // (one it stopped the trial on did).
        if scheduler && !(done && self.stop.should_stop(&result)) {
            decision = self.scheduler.on_trial_result(id, &result);
            if decision == Decision::Exploit {
                if let Some(exploit) = self.scheduler.take_exploit(id) {
                    if !exploit_carried_out {
                        self.scheduler.on_exploit_failed(
                            id,
                            exploit.source,
                            "the experiment stopped before the exploit",
                        );
                    }
                }
            }
        }
        if searcher {
            self.searcher.on_trial_result(id, &result);
        }
        Some(decision)
    }

    fn replay_end(
        &mut self,
        id: TrialId,
        last: Option<(&[f64], bool)>,
        error: bool,
        scheduler: bool,
        searcher: bool,
    ) -> bool {
        let (last, lost) = match last {
            Some((row, done)) => {
                let r = Self::rebuild(id, row, done);
                let lost = r.is_none();
                (r, lost)
            }
            None => (None, false),
        };
        if scheduler {
            self.scheduler.on_trial_complete(id, last.as_ref(), error);
        }
        if searcher {
            self.searcher.on_trial_complete(id, last.as_ref(), error);
        }
        !lost
    }

    fn into_analysis(self: Box<Self>, dir: &Path, trials: Vec<TrialLog<()>>) -> Box<dyn Any> {
        let trials: Vec<TrialInfo<C<T>, M<T>>> = trials
            .into_iter()
            .zip(self.configs)
            .map(|(log, config)| TrialInfo::from_log(log.with_config(config)))
            .collect();
        Box::new(Analysis::<C<T>, M<T>> { experiment_dir: dir.to_path_buf(), trials })
    }
}
