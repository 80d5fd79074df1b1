//! Experiments shared by several OS processes through a real PostgreSQL server (feature
//! `postgres`): peers are `pg_peer` processes (`src/bin/pg_peer.rs`) on one experiment,
//! some of them killed or stopped; the experiment PostgreSQL holds must equal, trial for
//! trial and row for row, the one a single process runs alone.
//!
//! The server is `TUNE_TEST_POSTGRES_URL` (default `postgres://root@127.0.0.1:5432/test`);
//! each test works in a schema of its own, dropped at its end. Without a server the tests
//! say loudly that they were skipped, and fail when `CI` is set.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tune_runtime::Analysis;
use tune_runtime::shared::postgres_testing::TestSchema;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_pg_peer");

fn peer(url: &str, name: &str, dir: &Path, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.args([url, name]).arg(dir).env_remove("KILL_AT_STEP");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits for `child`; returns its exit code (None: killed by a signal), the steps it ran,
/// and its stderr.
fn finish(mut child: Child) -> (Option<i32>, u64, String) {
    // A peer that never ends (its experiment never completes) fails the test, not CI.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peer {} did not end within 120 s", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    let steps =
        out.lines().find_map(|l| l.strip_prefix("steps=")).map_or(0, |n| n.parse().unwrap());
    (status.code(), steps, err)
}

/// Waits until `child` ran its first step (it has a trial).
fn wait_stepping(child: &mut Child) -> BufReader<std::process::ChildStdout> {
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "stepping", "the peer started a trial");
    out
}

/// The summary of the same experiment run by one process alone, and its step count.
fn solo() -> (String, u64) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["-", "solo"]).arg(dir.path()).arg("--solo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = String::from_utf8(out.stdout).unwrap();
    let (summary, steps) = out.rsplit_once("steps=").unwrap();
    let summary: String =
        summary.lines().filter(|l| *l != "stepping").map(|l| format!("{l}\n")).collect();
    assert_eq!(summary.lines().count(), 9, "{summary}");
    (summary, steps.trim().parse().unwrap())
}

fn summary(url: &str, name: &str, dir: &Path) -> String {
    let out = Command::new(BIN).args([url, name]).arg(dir).arg("--summary").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// How many trials were taken over from a process that stopped answering.
fn takeovers(url: &str, name: &str) -> usize {
    use tune_runtime::shared::SharedJournal;
    let mut j = tune_runtime::shared::PostgresJournal::connect(url, name).unwrap();
    let mut n = 0;
    j.read_from(0, &mut |_, _, bytes| {
        if let Ok(tune_runtime::storage::Record::Rollback { .. }) = serde_json::from_slice(bytes) {
            n += 1;
        }
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    n
}

#[test]
fn three_processes_run_every_trial_exactly_once() {
    let Some(db) = TestSchema::create("three_processes_run_every_trial_exactly_once") else {
        return;
    };
    let (reference, solo_steps) = solo();
    // One local directory, as on a shared file system: every peer reads the checkpoints.
    let dir = tempfile::tempdir().unwrap();
    let peers: Vec<Child> = (0..3).map(|_| peer(&db.url, "exp", dir.path(), &[])).collect();
    let mut steps = 0;
    let mut ran = 0;
    for p in peers {
        let (code, n, err) = finish(p);
        assert_eq!(code, Some(0), "every peer ends with the experiment done: {err}");
        steps += n;
        ran += usize::from(n > 0);
    }
    assert!(ran >= 2, "the trials were spread over the processes");
    assert_eq!(summary(&db.url, "exp", dir.path()), reference);
    // No step ran twice: the peers together stepped exactly what one process steps.
    assert_eq!(steps, solo_steps);
    assert_eq!(takeovers(&db.url, "exp"), 0);
}

#[test]
fn a_killed_process_loses_nothing_its_trials_finish_elsewhere() {
    let Some(db) = TestSchema::create("a_killed_process_loses_nothing") else { return };
    let (reference, _) = solo();
    let dir = tempfile::tempdir().unwrap();
    let victim = peer(&db.url, "exp", dir.path(), &[("KILL_AT_STEP", "6")]);
    let others: Vec<Child> = (0..2).map(|_| peer(&db.url, "exp", dir.path(), &[])).collect();
    let (code, _, err) = finish(victim);
    assert_eq!(code, None, "the victim was killed by SIGKILL: {err}");
    for p in others {
        let (code, _, err) = finish(p);
        assert_eq!(code, Some(0), "{err}");
        assert!(err.is_empty() || err.contains("stopped answering"), "{err}");
    }
    assert!(takeovers(&db.url, "exp") > 0, "the killed process's trials were taken over");
    // Every result once, as one process would have produced them.
    assert_eq!(summary(&db.url, "exp", dir.path()), reference);
}

#[test]
fn a_stopped_process_is_fenced_when_it_comes_back() {
    let Some(db) = TestSchema::create("a_stopped_process_is_fenced") else { return };
    let (reference, _) = solo();
    let dir = tempfile::tempdir().unwrap();
    let lease = [("LEASE_MS", "600")];
    let mut stopped = peer(&db.url, "exp", dir.path(), &lease);
    let out = wait_stepping(&mut stopped);
    let pid = stopped.id().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let other = peer(&db.url, "exp", dir.path(), &lease);
    // Well past its lease: the other process takes its trials over.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while takeovers(&db.url, "exp") == 0 {
        assert!(std::time::Instant::now() < deadline, "the stopped process's trials were taken");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    stopped.stdout = Some(out.into_inner());
    let (code, _, err) = finish(stopped);
    assert_eq!(code, Some(5), "the process that came back is fenced: {err}");
    assert!(err.contains("lost its lease"), "{err}");
    let (code, _, err) = finish(other);
    assert_eq!(code, Some(0), "{err}");
    // Nothing the stopped process reported late was counted.
    assert_eq!(summary(&db.url, "exp", dir.path()), reference);
}

#[test]
fn two_experiments_in_one_database_do_not_see_each_other() {
    let Some(db) = TestSchema::create("two_experiments_in_one_database") else { return };
    let (reference, solo_steps) = solo();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = peer(&db.url, "exp-a", dir_a.path(), &[]);
    let b = peer(&db.url, "exp-b", dir_b.path(), &[]);
    for (p, dir, name) in [(a, &dir_a, "exp-a"), (b, &dir_b, "exp-b")] {
        let (code, steps, err) = finish(p);
        assert_eq!(code, Some(0), "{err}");
        // Each ran its whole experiment: nothing of the other's was taken as its own.
        assert_eq!(steps, solo_steps, "{name}");
        assert_eq!(summary(&db.url, name, dir.path()), reference, "{name}");
    }
}

#[test]
fn loading_from_an_unreachable_database_says_where_and_what_to_check() {
    let err = Analysis::<support::Cfg, support::Score>::from_postgres(
        "postgres://me:hunter2@127.0.0.1:1/tuning",
        "exp",
        "/nonexistent",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`postgres://me:***@127.0.0.1:1/tuning`"), "{err}");
    assert!(err.contains("pg_isready") && !err.contains("hunter2"), "{err}");
}

/// A PostgreSQL server of the test's own (never the machine's shared one): a cluster made
/// by `initdb` in a temporary directory, on a free loopback port, run as the `postgres`
/// user when the test runs as root (PostgreSQL refuses to run as root).
struct OwnServer {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    port: u16,
    as_postgres: bool,
}

impl OwnServer {
    fn start(test: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| Some(e.ok()?.path().join("bin"))).max())
            .filter(|b| b.join("initdb").exists());
        let Some(bin) = bin else {
            let msg =
                format!("test `{test}` needs PostgreSQL's initdb (/usr/lib/postgresql/*/bin)");
            assert!(std::env::var_os("CI").is_none(), "{msg} (CI is set: not skipped)");
            eprintln!("\n*** SKIPPED: {msg} ***\n");
            return None;
        };
        let uid = Command::new("id").arg("-u").output().unwrap();
        let as_postgres = String::from_utf8_lossy(&uid.stdout).trim() == "0";
        let dir = tempfile::tempdir().unwrap();
        if as_postgres {
            let chown = Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
            assert!(chown.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Self { dir, bin, port, as_postgres };
        let data = server.dir.path().join("data");
        let init = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "tune", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        server.pg_ctl("start");
        Some(server)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, action: &str) {
        let d = self.dir.path();
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, d.display());
        let mut c = self.command("pg_ctl");
        c.arg("-D").arg(d.join("data")).arg("-l").arg(d.join("log")).args(["-o", &opts]);
        let out = c.args(["-w", "-m", "fast", action]).output().unwrap();
        let log = std::fs::read_to_string(d.join("log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self) -> String {
        format!("postgres://tune@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let mut c = self.command("pg_ctl");
        let _ = c
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn a_restart_of_postgresql_mid_run_loses_nothing() {
    let Some(server) = OwnServer::start("a_restart_of_postgresql_mid_run_loses_nothing") else {
        return;
    };
    let url = server.url();
    let (reference, _) = solo();
    let dir = tempfile::tempdir().unwrap();
    let env = [("STEP_MS", "40"), ("LEASE_MS", "1500")];
    let mut first = peer(&url, "exp", dir.path(), &env);
    let out = wait_stepping(&mut first);
    first.stdout = Some(out.into_inner());
    let second = peer(&url, "exp", dir.path(), &env);
    std::thread::sleep(Duration::from_millis(300));
    server.pg_ctl("stop");
    std::thread::sleep(Duration::from_millis(500));
    server.pg_ctl("start");
    // Each peer went on, or stopped with a message that names the server.
    let mut stopped = 0;
    for p in [first, second] {
        let (code, _, err) = finish(p);
        if code != Some(0) {
            assert_eq!(code, Some(1), "{err}");
            assert!(err.contains("PostgreSQL at `postgres://tune@127.0.0.1:"), "{err}");
            stopped += 1;
        }
    }
    eprintln!("{stopped} of 2 peers stopped when PostgreSQL restarted");
    // Run again (as after any stop): the experiment completes with nothing lost or doubled.
    let (code, _, err) = finish(peer(&url, "exp", dir.path(), &env));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(summary(&url, "exp", dir.path()), reference, "{stopped} peer(s) had stopped");
}
