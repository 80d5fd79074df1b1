//! Experiments shared by several processes: joining the log, following the other
//! processes' records into this process's trials, searcher and scheduler, creating trials
//! by claim, heartbeats, taking over trials whose owner died, and losing trials (and the
//! whole run) to fencing.
//!
//! Every process is a peer running the same driver. A trial is *ours* when this process
//! created it or took it over: it has live state here, and its records are appended only
//! while the store says we own it. Every other trial is *foreign*: its records come from
//! the log, through the same fold as a resume, and its creation, results and end are given
//! to our searcher (and to our scheduler when it shares trials) as they arrive.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::driver::{Driver, status_slot};
use super::rollback::Back;
use super::state::{Live, Phase, Trial};
use crate::journal::shared::{Append, Orphan, ProcessId, SharedError, SharedJournal};
use crate::journal::{Book, Event, Fold, JOURNAL_VERSION, JournalError, Record, TrialLog};
use crate::trial::{TrialId, TrialStatus};
use crate::tuner::RunError;

/// How often buffered records of a shared experiment are appended, at the latest.
const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// How often the log is read for other processes' records while trials run here.
const SYNC_EVERY: Duration = Duration::from_millis(20);

/// This process's view of a shared experiment.
pub(crate) struct Follow {
    pub me: ProcessId,
    /// The next record of the log to read.
    next: u64,
    fold: Fold<'static, ()>,
    /// For each trial, how many of its results our searcher and scheduler were given.
    fed: Vec<usize>,
    lease: Duration,
    next_heartbeat: Instant,
    next_sync: Instant,
    pub last_flush: Instant,
}

/// The driver's trials as the fold's book: other processes' trials join as foreign
/// (no live state); the trials a batch touched are noted, so that the status counts follow.
struct Trials<'a> {
    trials: &'a mut Vec<Trial>,
    touched: &'a mut Vec<usize>,
}

impl Book<()> for Trials<'_> {
    fn count(&self) -> usize {
        self.trials.len()
    }
    fn at(&mut self, index: usize) -> Option<&mut TrialLog<()>> {
        self.touched.push(index);
        self.trials.get_mut(index).map(|t| &mut t.log)
    }
    fn add(&mut self, log: TrialLog<()>) {
        self.touched.push(self.trials.len());
        self.trials.push(Trial { log, live: None, counted: None });
    }
    fn forget(&mut self) {}
}

/// Joins the shared experiment: creates it (its first record) when it is new, else checks
/// that it ran the same trainable, metrics and space. Returns the experiment's seed and
/// start time.
pub(crate) fn join(
    journal: &mut dyn SharedJournal,
    header: &Record,
    lease: Duration,
    dir: &std::path::Path,
) -> Result<(Follow, u64, u64), RunError> {
    let shared_err = |e: SharedError| RunError::Shared(e.to_string());
    let me = journal.join(lease).map_err(shared_err)?;
    let Record::Experiment { trainable, metrics, space, seed, started, .. } = header else {
        return Err(RunError::Shared("internal: the header is not an experiment record".into()));
    };
    loop {
        let mut first = None;
        journal
            .read_from(0, &mut |_, _, bytes| {
                first = Some(bytes.to_vec());
                ControlFlow::Break(())
            })
            .map_err(|e| RunError::Shared(e.to_string()))?;
        let Some(first) = first else {
            let record = serde_json::to_vec(header).map_err(|e| RunError::Shared(e.to_string()))?;
            let claims = ["experiment".to_string()];
            match journal.append(Append {
                records: &[record],
                claims: &claims,
                ..Default::default()
            }) {
                Ok(_) => break Ok((follow(me, lease, dir), *seed, *started)),
                // Another process created it at the same moment: read theirs.
                Err(SharedError::Claimed { .. }) => continue,
                Err(e) => break Err(shared_err(e)),
            }
        };
        let theirs: Record = serde_json::from_slice(&first).map_err(|e| {
            RunError::Shared(format!("the shared experiment's first record is corrupt: {e}"))
        })?;
        let Record::Experiment {
            version,
            trainable: t,
            metrics: m,
            space: sp,
            seed: their_seed,
            started: their_start,
            ..
        } = theirs
        else {
            break Err(RunError::Shared(
                "the shared journal does not start with an experiment".into(),
            ));
        };
        if version > JOURNAL_VERSION {
            break Err(RunError::Shared(format!(
                "the shared experiment has journal version {version}; this build reads up to \
                 {JOURNAL_VERSION}: upgrade tune-runtime"
            )));
        }
        if t != *trainable || m != *metrics || (sp.is_some() && space.is_some() && sp != *space) {
            break Err(RunError::Shared(format!(
                "the shared experiment runs `{t}` with metrics [{}] and another search space \
                 than this process (`{trainable}`, metrics [{}]); run the same program on \
                 every machine, or choose another experiment name",
                m.join(", "),
                metrics.join(", ")
            )));
        }
        break Ok((follow(me, lease, dir), their_seed, their_start));
    }
}

fn follow(me: ProcessId, lease: Duration, dir: &std::path::Path) -> Follow {
    let now = Instant::now();
    Follow {
        me,
        next: 0,
        fold: Fold::<()>::follow(dir),
        fed: Vec::new(),
        lease,
        next_heartbeat: now + lease / 4,
        next_sync: now,
        last_flush: now,
    }
}

impl Driver {
    /// Whether this run is a peer of a shared experiment.
    pub fn is_shared(&self) -> bool {
        self.follow.is_some()
    }

    /// Reads the records other processes appended since the last call, applies them to
    /// the trials, and gives our searcher and scheduler what happened.
    pub fn sync(&mut self) -> Result<(), RunError> {
        let (Some(follow), Some(journal)) = (self.follow.as_mut(), self.journal.as_mut()) else {
            return Ok(());
        };
        let Some(store) = journal.shared_journal() else { return Ok(()) };
        let mut touched = Vec::new();
        let mut failure: Option<JournalError> = None;
        let me = follow.me.clone();
        let mut book = Trials { trials: &mut self.trials, touched: &mut touched };
        let fold = &mut follow.fold;
        let next = store
            .read_from(follow.next, &mut |seq, writer, bytes| {
                // Our own records are applied already; the experiment's first record is
                // read by every process (whoever wrote it).
                if *writer == me && seq > 0 {
                    return ControlFlow::Continue(());
                }
                fold.line_into(&mut book, bytes, &mut failure)
            })
            .map_err(|e| RunError::Shared(e.to_string()))?;
        if let Some(e) = failure {
            return Err(RunError::Shared(format!("a record of another process: {e}")));
        }
        follow.next = next;
        follow.next_sync = Instant::now() + SYNC_EVERY;
        let events = follow.fold.take_events();
        // Status counts follow the trials the records touched.
        touched.sort_unstable();
        touched.dedup();
        for i in touched {
            let t = &mut self.trials[i];
            let now = t.log.status;
            match t.counted {
                Some(before) if before != now => {
                    self.counts[status_slot(before)] -= 1;
                    self.counts[status_slot(now)] += 1;
                }
                None => self.counts[status_slot(now)] += 1,
                _ => {}
            }
            let was_finished = t.counted.is_some_and(TrialStatus::is_finished);
            t.counted = Some(now);
            if now.is_finished() && !was_finished && t.live.is_none() {
                self.finished += 1;
                self.reporter.finished(self.finished);
            }
        }
        self.feed(events)
    }

    /// Gives our searcher and scheduler the other processes' trials, results and ends.
    fn feed(&mut self, events: Vec<Event>) -> Result<(), RunError> {
        let Some(mut fed) = self.follow.as_mut().map(|f| std::mem::take(&mut f.fed)) else {
            return Ok(());
        };
        let result = self.feed_into(events, &mut fed);
        if let Some(f) = self.follow.as_mut() {
            f.fed = fed;
        }
        result
    }

    fn feed_into(&mut self, events: Vec<Event>, fed_rows: &mut Vec<usize>) -> Result<(), RunError> {
        let shares = self.model.shares_trials();
        let width = self.width;
        let mut events = events.into_iter().peekable();
        while let Some(event) = events.next() {
            match event {
                Event::Added { trial, config } => {
                    let id = TrialId(trial);
                    if fed_rows.len() <= id.index() {
                        fed_rows.resize(id.index() + 1, 0);
                    }
                    self.model.foreign_added(id, config).map_err(|e| {
                        RunError::Shared(format!("trial {id} of another process: {e}"))
                    })?;
                    self.searcher_waiting = false;
                }
                Event::Result { trial, pos, done, retried, who } => {
                    let id = TrialId(trial);
                    let fed = fed_rows.get(id.index()).copied().unwrap_or(0);
                    // A result given before (a trial rolled back by its new owner reports
                    // again what its old owner reported) is not given twice.
                    if pos < fed && retried.is_none() {
                        continue;
                    }
                    let row = match retried {
                        Some(row) => row,
                        None => match self.trials[id.index()]
                            .log
                            .history
                            .get(pos * width..(pos + 1) * width)
                        {
                            Some(r) => r.to_vec(),
                            None => continue,
                        },
                    };
                    let carried_out = matches!(
                        events.peek(),
                        Some(Event::Exploited { trial: t, .. }) if *t == trial
                    );
                    let (to_scheduler, to_searcher) = (
                        shares && who != crate::journal::Who::Searcher,
                        who != crate::journal::Who::Scheduler,
                    );
                    let _ = self.model.replay_result(
                        id,
                        &row,
                        done,
                        to_scheduler,
                        to_searcher,
                        carried_out,
                    );
                    if let Some(f) = fed_rows.get_mut(id.index()) {
                        *f = (*f).max(pos + 1);
                    }
                    self.searcher_waiting = false;
                }
                Event::Exploited { trial, config } => {
                    if let Err(e) = self.model.set_config(TrialId(trial), config) {
                        self.warn(&format!("trial {trial:05} of another process: {e}"));
                    }
                }
                Event::End { trial, error, last } => {
                    let last = last.as_ref().map(|(row, done)| (&row[..], *done));
                    self.model.replay_end(TrialId(trial), last, error, shares, true);
                    self.searcher_waiting = false;
                }
                Event::Dropped => {}
            }
        }
        Ok(())
    }

    /// Periodic work of a shared run: read the log when due, append buffered records
    /// when due, renew the lease and take over orphans.
    pub fn shared_tick(&mut self, now: Instant) {
        let Some(follow) = self.follow.as_ref() else { return };
        let (sync_due, flush_due, beat_due) = (
            now >= follow.next_sync,
            now >= follow.last_flush + FLUSH_EVERY,
            now >= follow.next_heartbeat,
        );
        if flush_due {
            self.flush_journal();
        }
        if sync_due {
            if let Err(e) = self.sync() {
                self.shared_failed(e);
            }
        }
        if beat_due {
            self.heartbeat();
        }
    }

    /// The driver's own wake-up time in a shared run.
    pub fn shared_wake(&self) -> Option<Instant> {
        let f = self.follow.as_ref()?;
        Some(f.next_sync.min(f.next_heartbeat).min(f.last_flush + FLUSH_EVERY))
    }

    fn heartbeat(&mut self) {
        let Some(follow) = self.follow.as_mut() else { return };
        follow.next_heartbeat = Instant::now() + follow.lease / 4;
        let Some(store) = self.journal.as_mut().and_then(|j| j.shared_journal()) else { return };
        match store.heartbeat() {
            Ok(()) => {}
            Err(SharedError::LeaseExpired) => return self.fenced(),
            Err(e) => {
                self.warn(&format!("the lease could not be renewed: {e}"));
                return;
            }
        }
        if !self.stopping {
            self.take_over_orphans();
        }
    }

    /// Takes over the trials whose owner's lease expired, from their latest checkpoint.
    fn take_over_orphans(&mut self) {
        let Some(store) = self.journal.as_mut().and_then(|j| j.shared_journal()) else { return };
        let orphans = match store.orphans() {
            Ok(o) => o,
            Err(e) => return self.warn(&format!("cannot list the orphaned trials: {e}")),
        };
        let me = self.follow.as_ref().map(|f| f.me.clone());
        for orphan in orphans {
            if Some(&orphan.owner) == me.as_ref() {
                continue;
            }
            if orphan.trial as usize >= self.trials.len() {
                if let Err(e) = self.sync() {
                    return self.shared_failed(e);
                }
            }
            if self.trials.get(orphan.trial as usize).is_none_or(|t| t.log.status.is_finished()) {
                continue;
            }
            self.take_over_orphan(&orphan);
        }
    }

    fn take_over_orphan(&mut self, orphan: &Orphan) {
        let id = TrialId(orphan.trial);
        let i = id.index();
        // Everything in flight goes first, so that the takeover's records follow ours.
        self.flush_journal();
        let config = self.model.config_json(id);
        let rel = crate::logger::trial_dir_name(self.model.trainable(), id, &config);
        let dir = self.s.experiment_dir.join(&rel);
        let plan = self.plan_rewind(id, Back::Latest, None);
        let records = [
            self.rollback_record(id, &plan),
            Record::Status { trial: id.0, status: TrialStatus::Pending, error: None },
        ];
        let bytes: Vec<Vec<u8>> =
            records.iter().filter_map(|r| serde_json::to_vec(r).ok()).collect();
        let Some(store) = self.journal.as_mut().and_then(|j| j.shared_journal()) else { return };
        match store.take_over(orphan, &bytes) {
            Ok(_) => {}
            // Another process took it first, or it ended meanwhile.
            Err(SharedError::Claimed { .. }) => return,
            Err(SharedError::LeaseExpired) => return self.fenced(),
            Err(e) => return self.warn(&format!("taking trial {id} over failed: {e}")),
        }
        self.warn(&format!(
            "trial {}_{id}: its process `{}` stopped answering; this process continues it from \
             its latest checkpoint",
            self.model.trainable(),
            orphan.owner
        ));
        let fed = self.follow.as_ref().and_then(|f| f.fed.get(i).copied()).unwrap_or(0);
        let seen_upto =
            fed.checked_sub(1).and_then(|p| self.trials[i].log.iteration_at(p)).unwrap_or(0);
        let mut live = Live::new(self.model.resources(id), dir, rel, Phase::Pending { from: None });
        live.retries = self.trials[i].log.failures.len() as u32;
        live.seen_upto = seen_upto;
        self.trials[i].live = Some(Box::new(live));
        if !self.model.shares_trials() {
            self.model.on_trial_add(id);
        }
        self.apply_rewind(id, plan);
        if let Some(row) = self.trials[i].log.rows().last().map(<[f64]>::to_vec) {
            self.model.set_last(id, &row, false);
        }
        let t = &mut self.trials[i];
        if let Some(before) = t.counted {
            self.counts[status_slot(before)] -= 1;
        }
        t.log.status = TrialStatus::Pending;
        t.counted = Some(TrialStatus::Pending);
        self.counts[status_slot(TrialStatus::Pending)] += 1;
        self.pending.push(id);
    }

    /// Another process took `id` over (this process lost its lease on it at some point):
    /// the trial is foreign from now on; whatever runs here for it is dropped.
    pub fn lose_trial(&mut self, id: TrialId) {
        let i = id.index();
        self.pool_release(id);
        self.pending.retain(|p| *p != id);
        self.paused.retain(|p| *p != id);
        let Some(mut live) = self.trials[i].live.take() else { return };
        self.warn(&format!(
            "trial {}_{id} was taken over by another process (this process lost its lease); \
             it continues there",
            self.model.trainable()
        ));
        match std::mem::replace(&mut live.phase, Phase::Busy) {
            Phase::PausedInMemory(inst) => self.send_cleanup(inst),
            Phase::Busy | Phase::Finishing(_) | Phase::PausingToDisk { .. } => {
                // Its task's answer is dropped when it comes.
                self.abandoned += 1;
            }
            Phase::Pending { .. } | Phase::PausedOnDisk { .. } => {}
        }
        self.model.clear_last(id);
    }

    /// This process lost its lease: nothing it appends counts any more. Every trial it runs
    /// is dropped (other processes take them over), and the run stops.
    pub fn fenced(&mut self) {
        if self.fenced {
            return;
        }
        self.fenced = true;
        self.warn("this process lost its lease on the shared experiment (it stopped answering for too long); its trials continue in the other processes");
        let ours: Vec<TrialId> = self
            .trials
            .iter()
            .enumerate()
            .filter(|(_, t)| t.live.is_some())
            .map(|(i, _)| TrialId(i as u32))
            .collect();
        for id in ours {
            self.lose_trial(id);
        }
        self.stopping = true;
        self.searcher_done = true;
    }

    /// A shared journal failed for good (the store is unreachable): stop resumably.
    pub fn shared_failed(&mut self, e: RunError) {
        self.warn(&e.to_string());
        self.shared_error.get_or_insert(e);
        self.halt();
    }

    /// Whether the shared experiment still has work anywhere: trials not ended (here or in
    /// another process), or trials left to create.
    pub fn shared_work_left(&self) -> bool {
        let Some(total) = self.model.total_trials() else {
            return self.trials.iter().any(|t| !t.log.status.is_finished());
        };
        self.trials.len() < total || self.trials.iter().any(|t| !t.log.status.is_finished())
    }

    /// Waits for another process's records (or the next heartbeat).
    pub fn shared_wait(&mut self) {
        let Some(follow) = self.follow.as_ref() else { return };
        let (next, until) =
            (follow.next, follow.next_heartbeat.min(follow.next_sync + SYNC_EVERY * 5));
        let timeout =
            until.saturating_duration_since(Instant::now()).min(Duration::from_millis(500));
        if let Some(store) = self.journal.as_mut().and_then(|j| j.shared_journal()) {
            let _ = store.wait_for(next, timeout);
        }
        if let Some(f) = self.follow.as_mut() {
            f.next_sync = Instant::now();
        }
    }

    /// Leaves the shared experiment at the end of the run.
    pub fn leave_shared(&mut self) {
        if let Some(store) = self.journal.as_mut().and_then(|j| j.shared_journal()) {
            let _ = store.leave();
        }
    }
}
