//! The synchronous successive-halving brackets shared by [`super::HyperBand`] and
//! [`super::HyperBandForBohb`].

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Decision, signed};
use crate::metrics::Metrics;
use crate::state::{self, StateError, nonfinite};
use crate::trial::{Key, Mode, TrialId, TrialResult};

/// What happened to a trial in a HyperBand bracket; a model-based searcher paired with
/// [`super::HyperBandForBohb`] observes these (for example to know each trial's budget).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BracketEvent {
    /// The trial reached its rung's milestone `budget` and waits for the rest of its
    /// bracket.
    Paused {
        /// The trial.
        trial: TrialId,
        /// The milestone it reached (in units of the time attribute).
        budget: f64,
    },
    /// The trial survived the halving and goes on to the next milestone `budget`.
    Promoted {
        /// The trial.
        trial: TrialId,
        /// The next milestone.
        budget: f64,
    },
    /// The trial lost the halving and is stopped.
    Stopped {
        /// The trial.
        trial: TrialId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    /// Added, no result yet.
    Pending,
    /// Its last decision was Continue.
    Running,
    /// Paused at the current milestone.
    Waiting,
    /// Paused, may resume towards the next milestone.
    Promoted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Member {
    #[serde(with = "trial_index")]
    trial: TrialId,
    #[serde(with = "nonfinite")]
    score: f64,
    state: State,
}

/// A trial id as its creation index.
mod trial_index {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::trial::TrialId;

    pub(super) fn serialize<S: Serializer>(t: &TrialId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(t.0)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TrialId, D::Error> {
        u32::deserialize(d).map(TrialId)
    }
}

/// One bracket: `size` trials start at `milestones[0]`, and after each rung the best
/// `1/eta` go on to the next milestone; the last milestone is `max_t`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Bracket {
    pub size: usize,
    pub added: usize,
    pub rung: usize,
    #[serde(with = "nonfinite")]
    pub milestones: Vec<f64>,
    members: Vec<Member>,
}

/// What [`Core`] saves.
#[derive(Serialize, Deserialize)]
struct Saved {
    brackets: Vec<Bracket>,
    of_trial: Vec<Option<u32>>,
    stops: Vec<u32>,
    no_more: bool,
    stopped: usize,
}

impl Bracket {
    /// The bracket as the status table shows it.
    pub(crate) fn status_line(&self, k: usize) -> String {
        let running = self.members.iter().filter(|m| m.state != State::Waiting).count();
        format!(
            "Bracket {k}: {} of {} trials added, rung {} of {} (milestone {}), {} active",
            self.added,
            self.size,
            self.rung + 1,
            self.milestones.len(),
            self.milestone(),
            running
        )
    }

    fn milestone(&self) -> f64 {
        self.milestones[self.rung.min(self.milestones.len() - 1)]
    }
    fn position(&self, trial: TrialId) -> Option<usize> {
        self.members.iter().position(|m| m.trial == trial)
    }
    fn all_waiting(&self) -> bool {
        !self.members.is_empty() && self.members.iter().all(|m| m.state == State::Waiting)
    }
}

pub(crate) type Observer = Box<dyn FnMut(&BracketEvent) + Send>;

/// The brackets of a synchronous HyperBand (Li et al. 2017).
pub(crate) struct Core<M> {
    pub metric: Key<M>,
    pub mode: Mode,
    pub time_attr: Key<M>,
    pub max_t: f64,
    pub eta: f64,
    pub s_max: usize,
    pub num_brackets: usize,
    pub brackets: Vec<Bracket>,
    of_trial: Vec<Option<u32>>,
    no_more: bool,
    stops: Vec<TrialId>,
    pub observer: Option<Observer>,
    pub stopped: usize,
}

impl<M> fmt::Debug for Core<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperBand")
            .field("max_t", &self.max_t)
            .field("eta", &self.eta)
            .field("brackets", &self.brackets)
            .finish_non_exhaustive()
    }
}

impl<M: Metrics> Core<M> {
    pub fn new(
        metric: Key<M>,
        mode: Mode,
        time_attr: Key<M>,
        max_t: f64,
        eta: f64,
        num_brackets: Option<usize>,
    ) -> Self {
        let s_max = ((max_t.ln() / eta.ln()) + 1e-9).floor().max(0.0) as usize;
        Self {
            metric,
            mode,
            time_attr,
            max_t,
            eta,
            s_max,
            num_brackets: num_brackets.unwrap_or(s_max + 1).clamp(1, s_max + 1),
            brackets: Vec::new(),
            of_trial: Vec::new(),
            no_more: false,
            stops: Vec::new(),
            observer: None,
            stopped: 0,
        }
    }

    /// `(s, n, milestones)` of the `k`-th bracket created: `s` cycles from `s_max` down,
    /// `n = ceil((s_max + 1) / (s + 1) * eta^s)`, milestones `max_t * eta^(i - s)`.
    pub fn plan(&self, k: usize) -> (usize, usize, Vec<f64>) {
        let s = self.s_max - k % self.num_brackets;
        let n = ((self.s_max + 1) as f64 / (s + 1) as f64 * self.eta.powi(s as i32) - 1e-9).ceil();
        let milestones = (0..=s).map(|i| self.max_t / self.eta.powi((s - i) as i32)).collect();
        (s, n as usize, milestones)
    }

    fn emit(&mut self, e: BracketEvent) {
        if let Some(f) = &mut self.observer {
            f(&e);
        }
    }

    pub fn add(&mut self, trial: TrialId) {
        let full = self.brackets.last().is_none_or(|b| b.added >= b.size);
        if full {
            let (_, size, milestones) = self.plan(self.brackets.len());
            self.brackets.push(Bracket {
                size,
                added: 0,
                rung: 0,
                milestones,
                members: Vec::new(),
            });
        }
        let b = self.brackets.len() - 1;
        let bracket = &mut self.brackets[b];
        bracket.added += 1;
        bracket.members.push(Member { trial, score: f64::NEG_INFINITY, state: State::Pending });
        let i = trial.index();
        if self.of_trial.len() <= i {
            self.of_trial.resize(i + 1, None);
        }
        self.of_trial[i] = Some(b as u32);
    }

    fn bracket_of(&self, trial: TrialId) -> Option<usize> {
        self.of_trial.get(trial.index()).copied().flatten().map(|b| b as usize)
    }

    fn ready(&self, b: usize) -> bool {
        let br = &self.brackets[b];
        (br.added >= br.size || self.no_more) && br.all_waiting()
    }

    /// Halves bracket `b`: the best `max(1, floor(len / eta))` go on, the others stop.
    /// Returns whether `current` survived.
    fn halve(&mut self, b: usize, current: Option<TrialId>) -> bool {
        let eta = self.eta;
        let br = &mut self.brackets[b];
        // Best first; ties go to the older trial.
        br.members.sort_by(|x, y| y.score.total_cmp(&x.score).then(x.trial.cmp(&y.trial)));
        let keep = ((br.members.len() as f64 / eta + 1e-9).floor() as usize).max(1);
        let losers = br.members.split_off(keep.min(br.members.len()));
        br.rung += 1;
        let budget = br.milestone();
        let mut survived = false;
        let winners: Vec<TrialId> = br
            .members
            .iter_mut()
            .map(|m| {
                if Some(m.trial) == current {
                    m.state = State::Running;
                    survived = true;
                } else {
                    m.state = State::Promoted;
                }
                m.trial
            })
            .collect();
        for m in losers {
            self.stopped += 1;
            if Some(m.trial) != current {
                self.stops.push(m.trial);
            }
            if let Some(slot) = self.of_trial.get_mut(m.trial.index()) {
                *slot = None;
            }
            self.emit(BracketEvent::Stopped { trial: m.trial });
        }
        for trial in winners {
            self.emit(BracketEvent::Promoted { trial, budget });
        }
        survived
    }

    pub fn on_result(&mut self, trial: TrialId, result: &TrialResult<M>) -> Decision {
        let Some(b) = self.bracket_of(trial) else { return Decision::Continue };
        let Some(p) = self.brackets[b].position(trial) else { return Decision::Continue };
        let time = result.get(self.time_attr);
        let score = signed(self.metric, self.mode, result);
        let member = &mut self.brackets[b].members[p];
        member.score = score;
        member.state = State::Running;
        if time >= self.max_t {
            self.remove(trial);
            return Decision::Stop;
        }
        let milestone = self.brackets[b].milestone();
        if time < milestone {
            return Decision::Continue;
        }
        self.brackets[b].members[p].state = State::Waiting;
        if self.ready(b) {
            return if self.halve(b, Some(trial)) { Decision::Continue } else { Decision::Stop };
        }
        self.emit(BracketEvent::Paused { trial, budget: milestone });
        Decision::Pause
    }

    fn remove(&mut self, trial: TrialId) {
        let Some(b) = self.bracket_of(trial) else { return };
        if let Some(p) = self.brackets[b].position(trial) {
            self.brackets[b].members.remove(p);
        }
        if let Some(slot) = self.of_trial.get_mut(trial.index()) {
            *slot = None;
        }
        if self.ready(b) {
            self.halve(b, None);
        }
    }

    pub fn on_complete(&mut self, trial: TrialId) {
        self.remove(trial);
    }

    pub fn no_more_trials(&mut self) {
        self.no_more = true;
        for b in 0..self.brackets.len() {
            if self.ready(b) {
                self.halve(b, None);
            }
        }
    }

    /// Halves every bracket whose members all wait, full or not (BOHB's rule when nothing
    /// else can run).
    pub fn force(&mut self) -> bool {
        let mut any = false;
        for b in 0..self.brackets.len() {
            if self.brackets[b].all_waiting() {
                self.halve(b, None);
                any = true;
            }
        }
        any
    }

    /// A promoted paused trial (oldest bracket first), else the first pending one, else a
    /// paused trial its bracket does not hold paused (after a resume whose saved state
    /// predates the pause: it runs on to its milestone and pauses there again).
    pub fn choose(&self, pending: &[TrialId], paused: &[TrialId]) -> Option<TrialId> {
        let state = |t: TrialId| {
            let b = self.bracket_of(t)?;
            let p = self.brackets[b].position(t)?;
            Some((b, self.brackets[b].members[p].state))
        };
        let promoted = paused
            .iter()
            .filter_map(|t| match state(*t) {
                Some((b, State::Promoted)) => Some((b, *t)),
                _ => None,
            })
            .min();
        promoted.map(|(_, t)| t).or_else(|| pending.first().copied()).or_else(|| {
            paused
                .iter()
                .find(|t| matches!(state(**t), Some((_, State::Running | State::Pending))))
                .copied()
        })
    }

    /// One line per bracket for the status table.
    pub fn status_lines(&self) -> Vec<String> {
        self.brackets.iter().enumerate().map(|(k, b)| b.status_line(k)).collect()
    }

    pub fn all_waiting(&self) -> bool {
        self.brackets.iter().all(|b| b.members.iter().all(|m| m.state == State::Waiting))
    }

    pub fn take_stops(&mut self, out: &mut Vec<TrialId>) {
        out.append(&mut self.stops);
    }

    /// The brackets (members, scores, states, rungs), each trial's bracket, the stops not
    /// yet taken, whether the searcher is done and the number of stopped trials, as the
    /// state of `kind`.
    pub fn save_state(&self, kind: &str) -> serde_json::Value {
        let saved = Saved {
            brackets: self.brackets.clone(),
            of_trial: self.of_trial.clone(),
            stops: self.stops.iter().map(|t| t.0).collect(),
            no_more: self.no_more,
            stopped: self.stopped,
        };
        state::save(kind, &saved)
    }

    /// Restores what [`Core::save_state`] saved as `kind`.
    pub fn restore_state(
        &mut self,
        kind: &'static str,
        value: serde_json::Value,
    ) -> Result<(), StateError> {
        let saved: Saved = state::load(kind, value)?;
        for (k, b) in saved.brackets.iter().enumerate() {
            let (_, plan_size, plan_milestones) = self.plan(k);
            if b.size != plan_size || b.milestones != plan_milestones {
                return Err(state::mismatch(
                    kind,
                    format!(
                        "bracket {k} holds {} trials with milestones {:?} in the state; this \
                         scheduler plans {plan_size} with {plan_milestones:?}",
                        b.size, b.milestones
                    ),
                ));
            }
        }
        if let Some((i, b)) =
            saved.of_trial.iter().enumerate().find_map(|(i, b)| {
                b.filter(|b| *b as usize >= saved.brackets.len()).map(|b| (i, b))
            })
        {
            return Err(state::malformed(
                kind,
                &format!("of_trial[{i}]"),
                &format!("names the bracket {b}, which does not exist"),
            ));
        }
        self.brackets = saved.brackets;
        self.of_trial = saved.of_trial;
        self.stops = saved.stops.into_iter().map(TrialId).collect();
        self.no_more = saved.no_more;
        self.stopped = saved.stopped;
        Ok(())
    }
}
