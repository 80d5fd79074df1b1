//! A journal shared by several tuner processes: the log of one experiment that every
//! process appends to and follows, with claims, leases and fencing decided by the store.
//!
//! Every process of a shared experiment is a peer: it runs trials on its own resources,
//! appends their records, and replays the other processes' records into its own searcher
//! and scheduler. The store (PostgreSQL in production, [`MemoryShared`] in tests) is what
//! makes that exact:
//!
//! * **One order.** Records get a gap-free sequence number in commit order; every process
//!   reads the same log.
//! * **Claims.** An append can claim keys (`trial:17`): it is refused when another process
//!   claimed one first, so creating trial 17 happens once, by the first in log order.
//! * **Leases.** A process renews its lease ([`SharedJournal::heartbeat`]) on the store's
//!   clock. A trial whose owner's lease expired is an orphan: another process takes it over
//!   ([`SharedJournal::take_over`]) and continues it from its latest checkpoint.
//! * **Fencing.** An append about a trial is refused unless the appending process owns it
//!   and holds its lease: a process that comes back after losing its lease (a network
//!   partition, a SIGSTOP) cannot add a result to a trial another process now runs.
//!
//! `PostgresJournal` (feature `postgres`) is the store for processes on several machines;
//! `MemoryShared` plays it in tests.

#[cfg(feature = "postgres")]
pub use super::postgres::PostgresJournal;
#[cfg(feature = "postgres")]
#[doc(hidden)]
pub use super::postgres::testing as postgres_testing;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tuner process's id in a shared experiment (`host:pid:random`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcessId(pub String);

impl std::fmt::Display for ProcessId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Records appended in one transaction, with the conditions under which they are.
#[derive(Debug, Default)]
pub struct Append<'a> {
    /// The records, in order (each a line of JSON).
    pub records: &'a [Vec<u8>],
    /// Keys this append takes; it is refused when one of them is taken already.
    pub claims: &'a [String],
    /// Trials this append creates: the appending process owns them (generation 0).
    pub creates: &'a [u32],
    /// Trials the records are about: the appending process must own each of them.
    pub trials: &'a [u32],
    /// Trials that end with this append: they are no longer owned (never orphans).
    pub ends: &'a [u32],
}

/// A trial whose owner's lease expired, which another process may take over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The trial.
    pub trial: u32,
    /// How many times it changed owner; a takeover succeeds only at this generation.
    pub generation: u64,
    /// The process that owned it.
    pub owner: ProcessId,
}

/// Why a shared append was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedError {
    /// Another process claimed `key` first.
    #[error("`{key}` was claimed by another process first")]
    Claimed {
        /// The key.
        key: String,
    },
    /// This process does not own the trial (any more): it was taken over after this
    /// process's lease expired.
    #[error("trial {trial} belongs to another process now (this process's lease expired)")]
    NotOwner {
        /// The trial.
        trial: u32,
    },
    /// This process's lease expired: another process may have taken its trials over.
    #[error("this process's lease on the experiment expired; its trials may have been taken over")]
    LeaseExpired,
    /// The store failed.
    #[error("the shared journal failed: {0}")]
    Io(#[from] io::Error),
}

/// What [`SharedJournal::read_from`] calls with each record: its sequence number, the
/// process that wrote it, and its bytes.
pub type Visit<'a> = dyn FnMut(u64, &ProcessId, &[u8]) -> ControlFlow<()> + 'a;

/// A journal shared by the processes of one experiment. See the module documentation.
pub trait SharedJournal: Send {
    /// Registers this process, with a lease of `lease` from now on the store's clock.
    fn join(&mut self, lease: Duration) -> Result<ProcessId, SharedError>;

    /// Appends `append.records` after the end of the log, in one transaction, if this
    /// process holds its lease, owns the trials named, and every claim is free; returns the
    /// sequence number of the first record (numbers are gap-free, in commit order).
    fn append(&mut self, append: Append<'_>) -> Result<u64, SharedError>;

    /// Calls `visit` with every record from sequence number `from` on, in order, with the
    /// process that wrote it, until it returns `Break`; returns the sequence number after
    /// the last record given.
    fn read_from(&mut self, from: u64, visit: &mut Visit<'_>) -> io::Result<u64>;

    /// Waits until a record at or after `seq` exists, or `timeout` passes.
    fn wait_for(&mut self, seq: u64, timeout: Duration) -> io::Result<()>;

    /// Renews this process's lease; [`SharedError::LeaseExpired`] when it had expired.
    fn heartbeat(&mut self) -> Result<(), SharedError>;

    /// Trials not ended whose owner's lease has expired.
    fn orphans(&mut self) -> io::Result<Vec<Orphan>>;

    /// Takes `orphan` over (if its generation is still current) and appends `records` in
    /// the same transaction; returns the sequence number of the first record.
    fn take_over(&mut self, orphan: &Orphan, records: &[Vec<u8>]) -> Result<u64, SharedError>;

    /// Ends this process's lease (its unfinished trials become orphans at once).
    fn leave(&mut self) -> io::Result<()>;
}

#[derive(Debug)]
struct Owner {
    process: ProcessId,
    generation: u64,
    ended: bool,
}

/// The shared state of [`MemoryShared`].
#[derive(Debug, Default)]
struct Log {
    records: Vec<(ProcessId, Vec<u8>)>,
    claims: BTreeSet<String>,
    owners: BTreeMap<u32, Owner>,
    leases: BTreeMap<ProcessId, Instant>,
    joined: u64,
}

/// A shared journal in memory, for tests: every clone is a process's handle on the same
/// log (threads of one test play the processes). Leases run on this process's clock.
#[derive(Debug, Clone)]
pub struct MemoryShared {
    log: Arc<Mutex<Log>>,
    me: Option<ProcessId>,
    lease: Duration,
}

impl Default for MemoryShared {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryShared {
    /// An empty log.
    pub fn new() -> Self {
        Self { log: Arc::new(Mutex::new(Log::default())), me: None, lease: Duration::ZERO }
    }

    /// Another process's handle on the same log (not joined yet).
    pub fn handle(&self) -> Self {
        Self { log: Arc::clone(&self.log), me: None, lease: Duration::ZERO }
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, Log>> {
        self.log.lock().map_err(|_| io::Error::other("the shared log's lock is poisoned"))
    }

    fn me(&self) -> Result<ProcessId, SharedError> {
        self.me.clone().ok_or_else(|| io::Error::other("the process has not joined").into())
    }

    fn check_lease(log: &Log, me: &ProcessId) -> Result<(), SharedError> {
        match log.leases.get(me) {
            Some(until) if *until > Instant::now() => Ok(()),
            _ => Err(SharedError::LeaseExpired),
        }
    }
}

impl SharedJournal for MemoryShared {
    fn join(&mut self, lease: Duration) -> Result<ProcessId, SharedError> {
        let mut log = self.lock()?;
        log.joined += 1;
        let me = ProcessId(format!("memory:{}:{}", std::process::id(), log.joined));
        log.leases.insert(me.clone(), Instant::now() + lease);
        drop(log);
        self.me = Some(me.clone());
        self.lease = lease;
        Ok(me)
    }

    fn append(&mut self, a: Append<'_>) -> Result<u64, SharedError> {
        let me = self.me()?;
        let mut log = self.lock()?;
        Self::check_lease(&log, &me)?;
        for &t in a.trials {
            match log.owners.get(&t) {
                Some(o) if o.process == me => {}
                _ => return Err(SharedError::NotOwner { trial: t }),
            }
        }
        if let Some(key) = a.claims.iter().find(|k| log.claims.contains(*k)) {
            return Err(SharedError::Claimed { key: key.clone() });
        }
        for k in a.claims {
            log.claims.insert(k.clone());
        }
        for &t in a.creates {
            log.owners.insert(t, Owner { process: me.clone(), generation: 0, ended: false });
        }
        for &t in a.ends {
            if let Some(o) = log.owners.get_mut(&t) {
                o.ended = true;
            }
        }
        let first = log.records.len() as u64;
        for r in a.records {
            log.records.push((me.clone(), r.clone()));
        }
        Ok(first)
    }

    fn read_from(&mut self, from: u64, visit: &mut Visit<'_>) -> io::Result<u64> {
        let log = self.lock()?;
        let mut next = from;
        for (seq, (p, r)) in log.records.iter().enumerate().skip(from as usize) {
            next = seq as u64 + 1;
            if visit(seq as u64, p, r).is_break() {
                break;
            }
        }
        Ok(next)
    }

    fn wait_for(&mut self, seq: u64, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lock()?.records.len() as u64 > seq {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn heartbeat(&mut self) -> Result<(), SharedError> {
        let me = self.me()?;
        let mut log = self.lock()?;
        Self::check_lease(&log, &me)?;
        log.leases.insert(me, Instant::now() + self.lease);
        Ok(())
    }

    fn orphans(&mut self) -> io::Result<Vec<Orphan>> {
        let log = self.lock()?;
        let now = Instant::now();
        Ok(log
            .owners
            .iter()
            .filter(|(_, o)| !o.ended && log.leases.get(&o.process).is_none_or(|u| *u <= now))
            .map(|(&trial, o)| Orphan { trial, generation: o.generation, owner: o.process.clone() })
            .collect())
    }

    fn take_over(&mut self, orphan: &Orphan, records: &[Vec<u8>]) -> Result<u64, SharedError> {
        let me = self.me()?;
        let mut log = self.lock()?;
        Self::check_lease(&log, &me)?;
        let current = log.owners.get(&orphan.trial).map(|o| (o.generation, o.ended));
        if current != Some((orphan.generation, false)) {
            return Err(SharedError::Claimed { key: format!("trial:{}:owner", orphan.trial) });
        }
        log.owners.insert(
            orphan.trial,
            Owner { process: me.clone(), generation: orphan.generation + 1, ended: false },
        );
        let first = log.records.len() as u64;
        for r in records {
            log.records.push((me.clone(), r.clone()));
        }
        Ok(first)
    }

    fn leave(&mut self) -> io::Result<()> {
        if let Some(me) = self.me.take() {
            self.lock()?.leases.remove(&me);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect()
    }

    #[test]
    fn claims_go_to_the_first_and_sequence_numbers_have_no_gap() {
        let mut a = MemoryShared::new();
        let mut b = a.handle();
        a.join(Duration::from_secs(60)).unwrap();
        b.join(Duration::from_secs(60)).unwrap();
        let r = records(2);
        let claims = ["trial:0".to_string()];
        assert_eq!(
            a.append(Append { records: &r, claims: &claims, creates: &[0], ..Default::default() })
                .unwrap(),
            0
        );
        let err = b
            .append(Append { records: &r, claims: &claims, creates: &[0], ..Default::default() })
            .unwrap_err();
        assert!(matches!(err, SharedError::Claimed { .. }), "{err}");
        // Only the owner appends about a trial.
        let err = b.append(Append { records: &r, trials: &[0], ..Default::default() }).unwrap_err();
        assert!(matches!(err, SharedError::NotOwner { trial: 0 }), "{err}");
        assert_eq!(
            a.append(Append { records: &r, trials: &[0], ..Default::default() }).unwrap(),
            2
        );
        let mut seen = Vec::new();
        let next = b
            .read_from(1, &mut |seq, _, _| {
                seen.push(seq);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!((seen, next), (vec![1, 2, 3], 4));
    }

    #[test]
    fn an_expired_owner_is_fenced_and_its_trial_taken_over_once() {
        let mut a = MemoryShared::new();
        let mut b = a.handle();
        let mut c = a.handle();
        a.join(Duration::from_millis(20)).unwrap();
        b.join(Duration::from_secs(60)).unwrap();
        c.join(Duration::from_secs(60)).unwrap();
        let r = records(1);
        a.append(Append {
            records: &r,
            claims: &["trial:0".into()],
            creates: &[0],
            ..Default::default()
        })
        .unwrap();
        assert!(b.orphans().unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(30));
        let orphans = b.orphans().unwrap();
        assert_eq!(orphans.len(), 1);
        b.take_over(&orphans[0], &r).unwrap();
        // Only one takeover of a generation succeeds.
        assert!(c.take_over(&orphans[0], &r).is_err());
        // The old owner comes back: its lease is gone, and so is its trial.
        assert!(matches!(a.heartbeat(), Err(SharedError::LeaseExpired)));
        assert!(a.append(Append { records: &r, trials: &[0], ..Default::default() }).is_err());
        b.append(Append { records: &r, trials: &[0], ends: &[0], ..Default::default() }).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.orphans().unwrap().is_empty(), "an ended trial is nobody's orphan");
    }
}
