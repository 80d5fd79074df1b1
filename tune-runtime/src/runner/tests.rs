//! Driver tests through the `Tuner`: the replay a resume gives the searcher and the
//! scheduler, and a plain run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::journal::{JOURNAL_FILE, Record, read_journal};
use crate::scheduler::{Decision, Scheduler};
use crate::searcher::{Searcher, Suggestion};
use crate::testing::{Cfg, Counter, SCORE, Score};
use crate::trial::{TrialId, TrialResult, TrialStatus};
use crate::{Mode, Scope, Stop, Tuner};

fn experiment() -> Record {
    Record::Experiment {
        version: crate::journal::JOURNAL_VERSION,
        name: "exp".into(),
        trainable: "Counter".into(),
        metrics: vec!["score".into()],
        seed: 1,
        started: 0,
        space: None,
    }
}

fn trial(trial: u32, searcher: Option<Value>) -> Record {
    Record::Trial {
        trial,
        id: format!("{trial:05}"),
        dir: Some(format!("t{trial}")),
        config: json!({"x": 0.5, "k": trial + 1}),
        searcher,
    }
}

/// A row of `Counter`: score, iteration, time this iteration, time total, timestamp.
fn row(iteration: u64) -> Vec<f64> {
    let it = iteration as f64;
    vec![10.0 * it, it, 1.0, it, 0.0]
}

fn result(trial: u32, iteration: u64, done: bool) -> Record {
    Record::Result { trial, v: row(iteration), done }
}

fn status(trial: u32, status: TrialStatus) -> Record {
    Record::Status { trial, status, error: None }
}

fn state(searcher: Value, scheduler: Value) -> Record {
    Record::State { searcher, scheduler }
}

/// Writes `records` as the journal of `dir/exp`, with the trial directories.
fn write(dir: &Path, records: &[Record]) -> PathBuf {
    let exp = dir.join("exp");
    for t in 0..3 {
        std::fs::create_dir_all(exp.join(format!("t{t}"))).unwrap();
    }
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).unwrap());
        text.push('\n');
    }
    std::fs::write(exp.join(JOURNAL_FILE), text).unwrap();
    exp
}

#[test]
fn runs_the_grid_and_stops_each_trial_at_its_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = Tuner::<Counter>::new()
        .num_samples(2)
        .stop(Stop::iterations(4))
        .local_dir(dir.path())
        .name("exp")
        .seed(1)
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(analysis.trials().len(), 6);
    for t in analysis.trials() {
        assert_eq!(t.status(), TrialStatus::Terminated);
        assert_eq!(t.num_results(), 4);
    }
    let best = analysis.best_config(SCORE, Mode::Max, Scope::Last).unwrap();
    assert_eq!(best.k, 3);
    let loaded = crate::Analysis::<Cfg, Score>::from_dir(dir.path().join("exp")).unwrap();
    assert_eq!(loaded.trials().len(), 6);
    assert_eq!(loaded.trials()[5].config(), analysis.trials()[5].config());
}

/// Records every call a scheduler or a searcher gets (after `setup`).
#[derive(Clone)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    who: &'static str,
    /// As a scheduler, answer `Exploit` to even iterations.
    exploit: bool,
}

impl Recorder {
    fn note(&self, what: String) {
        self.log.lock().unwrap().push(format!("{} {what}", self.who));
    }
}

fn last_iteration(last: Option<&TrialResult<Score>>) -> Option<u64> {
    last.map(|r| r.training_iteration)
}

impl Scheduler<Cfg, Score> for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn on_trial_add(&mut self, trial: TrialId, _config: &Cfg) {
        self.note(format!("add {trial}"));
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Score>) -> Decision {
        self.note(format!("result {trial} {}", result.training_iteration));
        if self.exploit && result.training_iteration.is_multiple_of(2) {
            Decision::Exploit
        } else {
            Decision::Continue
        }
    }
    fn take_exploit(&mut self, trial: TrialId) -> Option<crate::scheduler::Exploit<Cfg>> {
        self.note(format!("take_exploit {trial}"));
        Some(crate::scheduler::Exploit { source: trial, config: Cfg { x: 0.25, k: 1 } })
    }
    fn on_exploit_failed(&mut self, trial: TrialId, source: TrialId, _why: &str) {
        self.note(format!("exploit_failed {trial} {source}"));
    }
    fn on_trial_complete(&mut self, t: TrialId, last: Option<&TrialResult<Score>>, e: bool) {
        self.note(format!("complete {t} {:?} {e}", last_iteration(last)));
    }
    fn save_state(&self) -> Value {
        json!({"calls": self.log.lock().unwrap().len()})
    }
    fn restore_state(&mut self, state: Value) -> Result<(), crate::state::StateError> {
        self.note(format!("restore {state}"));
        Ok(())
    }
}

impl Searcher<Cfg, Score> for Recorder {
    fn suggest(&mut self, trial: TrialId) -> Suggestion<Cfg> {
        self.note(format!("suggest {trial}"));
        Suggestion::Finished
    }
    fn on_trial_result(&mut self, trial: TrialId, result: &TrialResult<Score>) {
        self.note(format!("result {trial} {}", result.training_iteration));
    }
    fn on_trial_complete(&mut self, t: TrialId, last: Option<&TrialResult<Score>>, e: bool) {
        self.note(format!("complete {t} {:?} {e}", last_iteration(last)));
    }
}

#[test]
fn the_results_and_end_of_a_trial_that_ended_after_the_saved_state_are_given_back() {
    for stop_at_3 in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let exp = write(
            dir.path(),
            &[
                experiment(),
                trial(0, None),
                status(0, TrialStatus::Running),
                result(0, 1, false),
                result(0, 2, false),
                state(Value::Null, json!({"calls": 7})),
                result(0, 3, true),
                status(0, TrialStatus::Terminated),
                trial(1, None),
                status(1, TrialStatus::Running),
                result(1, 1, false),
                status(1, TrialStatus::Error),
                // Running, without a checkpoint: it runs again from the start.
                trial(2, None),
                status(2, TrialStatus::Running),
                result(2, 1, false),
                result(2, 2, false),
            ],
        );
        let log = Arc::new(Mutex::new(Vec::new()));
        let scheduler = Recorder { log: Arc::clone(&log), who: "scheduler", exploit: false };
        let searcher = Recorder { log: Arc::clone(&log), who: "searcher", exploit: false };
        let stop = Stop::iterations(if stop_at_3 { 3 } else { 4 });
        let a = Tuner::<Counter>::new()
            .local_dir(dir.path())
            .name("exp")
            .resume(true)
            .verbose(0)
            .stop(stop)
            .scheduler(scheduler)
            .searcher(searcher)
            .run()
            .unwrap();
        assert_eq!(a.trials().len(), 3);
        let log = log.lock().unwrap().clone();
        let from = log.iter().position(|l| l.starts_with("scheduler restore")).unwrap();
        let mut expected = vec![
            "scheduler restore {\"calls\":7}",
            // The searcher saved no state: it gets the whole experiment.
            "searcher suggest 00000",
            "searcher result 00000 1",
            "searcher result 00000 2",
            // Unless the stop criteria ended the trial there (then it never saw it).
            "scheduler result 00000 3",
            "searcher result 00000 3",
            "scheduler complete 00000 Some(3) false",
            "searcher complete 00000 Some(3) false",
            "searcher suggest 00001",
            "scheduler add 00001",
            "scheduler result 00001 1",
            "searcher result 00001 1",
            "scheduler complete 00001 Some(1) true",
            "searcher complete 00001 Some(1) true",
            // The results the resume rolls back go back to the scheduler now, in journal
            // order, and to the searcher when the trial reports them again.
            "searcher suggest 00002",
            "scheduler add 00002",
            "scheduler result 00002 1",
            "scheduler result 00002 2",
            // The run itself: a new trial, and trial 2 from its start, its first two
            // results decided as then without asking the scheduler again.
            "searcher suggest 00003",
            "searcher result 00002 1",
            "searcher result 00002 2",
        ];
        if stop_at_3 {
            expected.retain(|l| *l != "scheduler result 00000 3");
        }
        assert_eq!(log[from..from + expected.len()], expected, "{log:#?}");
        // The state after the replay is saved at once, after the resume's rollback and
        // before the run goes on.
        let records = read_journal(&exp.join(JOURNAL_FILE)).unwrap();
        let resume = records.iter().position(|r| matches!(r, Record::Resume { .. })).unwrap();
        let after: Vec<&Record> = records[resume + 1..].iter().take(3).collect();
        assert!(
            matches!(
                after[..],
                [Record::Rollback { trial: 2, .. }, Record::Status { .. }, Record::State { .. }]
            ),
            "{after:?}"
        );
    }
}

#[test]
fn an_exploit_answer_is_taken_and_failed_when_the_journal_records_no_exploit() {
    let dir = tempfile::tempdir().unwrap();
    let exploit = Record::Exploit {
        trial: 0,
        source: 0,
        target_iteration: 2,
        source_iteration: 2,
        old_config: json!({"x": 0.5, "k": 1}),
        new_config: json!({"x": 0.25, "k": 1}),
        source_config: json!({"x": 0.5, "k": 1}),
        checkpoint: None,
    };
    write(
        dir.path(),
        &[
            experiment(),
            trial(0, None),
            status(0, TrialStatus::Running),
            result(0, 1, false),
            result(0, 2, false),
            exploit,
            result(0, 3, false),
            // No exploit follows this one (the trial ended first): the scheduler is told
            // that it failed, so that it does not count on it.
            result(0, 4, false),
            status(0, TrialStatus::Error),
        ],
    );
    let log = Arc::new(Mutex::new(Vec::new()));
    let scheduler = Recorder { log: Arc::clone(&log), who: "scheduler", exploit: true };
    let searcher = Recorder { log: Arc::clone(&log), who: "searcher", exploit: false };
    let a = Tuner::<Counter>::new()
        .local_dir(dir.path())
        .name("exp")
        .resume(true)
        .verbose(0)
        .scheduler(scheduler)
        .searcher(searcher)
        .run()
        .unwrap();
    assert_eq!(a.trials()[0].config().x, 0.25);
    let log: Vec<String> =
        log.lock().unwrap().iter().filter(|l| l.starts_with("scheduler")).cloned().collect();
    assert_eq!(
        log,
        [
            // No saved state: the whole experiment.
            "scheduler add 00000",
            "scheduler result 00000 1",
            "scheduler result 00000 2",
            "scheduler take_exploit 00000",
            "scheduler result 00000 3",
            "scheduler result 00000 4",
            "scheduler take_exploit 00000",
            "scheduler exploit_failed 00000 00000",
            "scheduler complete 00000 Some(4) true",
        ]
    );
}

/// Runs 3 trials of 4 iterations with a checkpoint every 2 under `durability`; returns the
/// experiment directory (kept alive by the returned temporary directory).
fn checkpointed(durability: crate::Durability) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let analysis = Tuner::<Counter>::new()
        .stop(Stop::iterations(4))
        .checkpoint_freq(2)
        .durability(durability)
        .local_dir(dir.path())
        .name("exp")
        .seed(1)
        .verbose(0)
        .run()
        .unwrap();
    assert_eq!(analysis.count(TrialStatus::Terminated), 3);
    let exp = dir.path().join("exp");
    (dir, exp)
}

/// The checkpoint directories under `exp`, each checked against its manifest.
fn verified_checkpoints(exp: &Path) -> usize {
    let mut n = 0;
    for trial in std::fs::read_dir(exp).unwrap() {
        let trial = trial.unwrap().path();
        if !trial.is_dir() {
            continue;
        }
        for c in std::fs::read_dir(&trial).unwrap() {
            let c = c.unwrap().path();
            if c.file_name().unwrap().to_string_lossy().starts_with("checkpoint_") {
                crate::checkpoint::read_meta(&c).unwrap();
                n += 1;
            }
        }
    }
    n
}

#[test]
fn synced_checkpoints_sync_their_state_and_manifest() {
    let (_dir, exp) = checkpointed(crate::Durability::Synced);
    assert_eq!(verified_checkpoints(&exp), 6);
    // The state file and the manifest of each of the 6 checkpoints, in its scratch
    // directory before the rename.
    assert_eq!(crate::checkpoint::synced::under(&exp), 12);
}

#[test]
fn relaxed_checkpoints_sync_nothing_and_still_verify() {
    let (_dir, exp) = checkpointed(crate::Durability::Relaxed);
    assert_eq!(verified_checkpoints(&exp), 6);
    assert_eq!(crate::checkpoint::synced::under(&exp), 0);
}
