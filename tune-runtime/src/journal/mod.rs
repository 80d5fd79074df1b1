//! The experiment journal: an append-only record of everything that happened.
//!
//! One JSON object per line (`experiment_journal.jsonl` in the experiment directory, or
//! any [`JournalStore`]). Records are appended in order, batched, and flushed at status
//! changes, checkpoints, every status tick and at the end; a crash can only lose a tail of
//! records, and a torn last line is skipped when the journal is read back. Every reader
//! goes through the one [`fold`](fold::fold_file) of the records.

mod fold;
#[cfg(feature = "postgres")]
mod postgres;
mod record;
pub mod shared;
mod store;

use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

pub(crate) use fold::{Book, Event, Events, Fold, Who, fold_file, fold_shared, fold_store};
pub use fold::{CheckpointInfo, ExperimentLog, Header, Run, TrialLog};
pub(crate) use record::JOURNAL_VERSION;
pub use record::Record;
pub use store::{FileJournal, JOURNAL_FILE, JournalStore, MAX_RECORD_BYTES};

/// Appends records to a store, formatting results without allocating: a local journal,
/// or a journal shared by several processes (records are batched until `flush`, each
/// batch one transaction, fenced by the trials it is about).
pub(crate) struct Journal {
    out: Out,
    buf: Vec<u8>,
}

enum Out {
    Solo(Box<dyn JournalStore>),
    Shared(Box<SharedOut>),
}

/// The batch of records not yet appended to a shared journal.
struct SharedOut {
    journal: Box<dyn shared::SharedJournal>,
    records: Vec<Vec<u8>>,
    /// For each record, the trial it is about.
    about: Vec<Option<u32>>,
    ends: Vec<u32>,
}

/// Why records could not be appended.
#[derive(Debug)]
pub(crate) enum FlushError {
    Io(io::Error),
    /// Another process took this trial over: its records were dropped from the batch.
    NotOwner(u32),
    /// This process lost its lease: nothing it appends is accepted any more.
    LeaseExpired,
}

impl FlushError {
    /// The error as an I/O error (for messages).
    pub fn into_io(self) -> io::Error {
        match self {
            FlushError::Io(e) => e,
            FlushError::NotOwner(t) => {
                io::Error::other(format!("trial {t} belongs to another process"))
            }
            FlushError::LeaseExpired => {
                io::Error::other("this process lost its lease on the experiment")
            }
        }
    }
}

impl From<io::Error> for FlushError {
    fn from(e: io::Error) -> Self {
        FlushError::Io(e)
    }
}

impl From<shared::SharedError> for FlushError {
    fn from(e: shared::SharedError) -> Self {
        match e {
            shared::SharedError::NotOwner { trial } => FlushError::NotOwner(trial),
            shared::SharedError::LeaseExpired => FlushError::LeaseExpired,
            shared::SharedError::Io(e) => FlushError::Io(e),
            other => FlushError::Io(io::Error::other(other.to_string())),
        }
    }
}

impl Journal {
    pub fn new(store: Box<dyn JournalStore>) -> Self {
        Self { out: Out::Solo(store), buf: Vec::with_capacity(256) }
    }

    /// A writer to a shared journal the process has joined.
    pub fn shared(journal: Box<dyn shared::SharedJournal>) -> Self {
        let out = SharedOut { journal, records: Vec::new(), about: Vec::new(), ends: Vec::new() };
        Self { out: Out::Shared(Box::new(out)), buf: Vec::with_capacity(256) }
    }

    /// The shared journal, when it is one.
    pub fn shared_journal(&mut self) -> Option<&mut dyn shared::SharedJournal> {
        match &mut self.out {
            Out::Shared(o) => Some(&mut *o.journal),
            Out::Solo(_) => None,
        }
    }

    /// Appends a record; returns its size in bytes.
    pub fn record(&mut self, record: &Record) -> io::Result<usize> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record).map_err(io::Error::other)?;
        if let (Out::Shared(o), Record::Status { trial, status, .. }) = (&mut self.out, record) {
            if status.is_finished() {
                o.ends.push(*trial);
            }
        }
        self.append(record.trial())
    }

    fn append(&mut self, trial: Option<u32>) -> io::Result<usize> {
        match &mut self.out {
            Out::Solo(store) => store.append(&self.buf)?,
            Out::Shared(o) => {
                o.records.push(self.buf.clone());
                o.about.push(trial);
            }
        }
        Ok(self.buf.len() + 1)
    }

    pub fn result(&mut self, trial: u32, values: &[f64], done: bool) -> io::Result<usize> {
        self.buf.clear();
        let _ = write!(self.buf, "{{\"type\":\"result\",\"trial\":{trial},\"v\":[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            crate::number::write_f64(&mut self.buf, *v);
        }
        self.buf.extend_from_slice(if done { b"],\"done\":true}" } else { b"]}" });
        self.append(Some(trial))
    }

    /// Makes every record appended so far durable (a local journal), or appends the batch
    /// to the shared journal in one transaction. A trial another process took over has its
    /// records dropped from the batch ([`FlushError::NotOwner`]: flush again for the rest).
    pub fn flush(&mut self) -> Result<(), FlushError> {
        match &mut self.out {
            Out::Solo(store) => Ok(store.flush()?),
            Out::Shared(o) => o.flush(),
        }
    }

    /// Creates trial `index` with its `trial` record in a shared journal: appended (after
    /// the pending batch) only if no other process created trial `index` first. Returns
    /// whether it was. A local journal just records it.
    pub fn create(&mut self, record: &Record, index: u32) -> Result<bool, FlushError> {
        if let Out::Solo(_) = self.out {
            self.record(record)?;
            return Ok(true);
        }
        self.flush()?;
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record).map_err(io::Error::other)?;
        let Out::Shared(o) = &mut self.out else { return Ok(true) };
        let records = [self.buf.clone()];
        let claims = [format!("trial:{index}")];
        let append = shared::Append {
            records: &records,
            claims: &claims,
            creates: &[index],
            ..Default::default()
        };
        match o.journal.append(append) {
            Ok(_) => Ok(true),
            Err(shared::SharedError::Claimed { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl SharedOut {
    fn flush(&mut self) -> Result<(), FlushError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let mut trials: Vec<u32> = self.about.iter().flatten().copied().collect();
        trials.sort_unstable();
        trials.dedup();
        let append = shared::Append {
            records: &self.records,
            trials: &trials,
            ends: &self.ends,
            ..Default::default()
        };
        match self.journal.append(append) {
            Ok(_) => {
                self.records.clear();
                self.about.clear();
                self.ends.clear();
                Ok(())
            }
            Err(shared::SharedError::NotOwner { trial }) => {
                let mut k = 0;
                let about = std::mem::take(&mut self.about);
                self.records.retain(|_| {
                    let keep = about[k] != Some(trial);
                    k += 1;
                    keep
                });
                self.about = about.into_iter().filter(|t| *t != Some(trial)).collect();
                self.ends.retain(|t| *t != trial);
                Err(FlushError::NotOwner(trial))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// An error reading a journal back.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The journal could not be read.
    #[error("cannot read the experiment journal `{}`: {source}; pass the experiment directory (the one holding `{JOURNAL_FILE}`)", path.display())]
    Io {
        /// The journal's path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A record is not valid, or contradicts the records before it.
    #[error("the experiment journal `{}` is corrupt at line {line}: {message}; nothing was changed (restore the file from a backup, or move the experiment away and start it again)", path.display())]
    Corrupt {
        /// The journal's path.
        path: PathBuf,
        /// 1-based line number (counting records).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl JournalError {
    /// The same error about the journal at `path`.
    pub(crate) fn at(self, path: &Path) -> Self {
        match self {
            JournalError::Io { source, .. } => {
                JournalError::Io { path: path.to_path_buf(), source }
            }
            JournalError::Corrupt { line, message, .. } => {
                JournalError::Corrupt { path: path.to_path_buf(), line, message }
            }
        }
    }
}

/// Reads every record of the journal file at `path` (a torn last line is skipped); for
/// tools and tests that look at the records themselves. Loading an experiment is
/// [`ExperimentLog::from_dir`] or [`Analysis::from_dir`](crate::Analysis::from_dir).
pub fn read_journal(path: &Path) -> Result<Vec<Record>, JournalError> {
    let mut records = Vec::new();
    let mut failure = None;
    let mut line = 0;
    store::read_lines(path, &mut |bytes| {
        line += 1;
        match serde_json::from_slice::<Record>(bytes) {
            Ok(r) => {
                records.push(r);
                ControlFlow::Continue(())
            }
            Err(e) => {
                failure = Some(JournalError::Corrupt {
                    path: path.to_path_buf(),
                    line,
                    message: e.to_string(),
                });
                ControlFlow::Break(())
            }
        }
    })
    .map_err(|source| JournalError::Io { path: path.to_path_buf(), source })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(records),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::trial::TrialStatus;

    #[test]
    fn round_trip_and_truncated_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut j = Journal::new(Box::new(FileJournal::open(&path).unwrap()));
        j.record(&Record::Status { trial: 1, status: TrialStatus::Running, error: None }).unwrap();
        j.result(1, &[0.5, 1.0, 0.25, 0.25, 17.0], false).unwrap();
        j.result(1, &[0.5, 2.0, 0.25, 0.5, 17.0], true).unwrap();
        j.flush().unwrap();
        drop(j);
        // A crash in the middle of a write leaves a partial line.
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"result\",\"tri").unwrap();
        let records = read_journal(&path).unwrap();
        assert_eq!(records.len(), 3);
        let v = vec![0.5, 1.0, 0.25, 0.25, 17.0];
        assert_eq!(records[1], Record::Result { trial: 1, v, done: false });
        assert!(matches!(records[2], Record::Result { done: true, .. }));
    }

    #[test]
    fn huge_and_tiny_floats_are_written_with_an_exponent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut j = Journal::new(Box::new(FileJournal::open(&path).unwrap()));
        j.result(0, &[1e300, 2.5e-300, 1.0, 0.5, 3.0], false).unwrap();
        j.flush().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"type\":\"result\",\"trial\":0,\"v\":[1e300,2.5e-300,1.0,0.5,3.0]}\n");
        let records = read_journal(&path).unwrap();
        assert_eq!(
            records[0],
            Record::Result { trial: 0, v: vec![1e300, 2.5e-300, 1.0, 0.5, 3.0], done: false }
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(JOURNAL_FILE);
            std::fs::write(&path, &bytes).unwrap();
            let _ = read_journal(&path);
            let _ = ExperimentLog::from_dir(dir.path());
        }

        #[test]
        fn records_survive_any_cut(cut in 0usize..400) {
            let mut text = String::new();
            for r in [
                Record::Status { trial: 0, status: TrialStatus::Running, error: None },
                Record::Failure { trial: 0, attempt: 1, error: "x\ny".into() },
                Record::Rollback { trial: 0, iteration: 3, rows: Some(2), checkpoint: None },
                Record::End { ended: 9 },
            ] {
                text.push_str(&serde_json::to_string(&r).unwrap());
                text.push('\n');
            }
            let cut = cut.min(text.len());
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(JOURNAL_FILE);
            std::fs::write(&path, &text.as_bytes()[..cut]).unwrap();
            let records = read_journal(&path).unwrap();
            proptest::prop_assert!(records.len() <= 4);
        }
    }

    #[test]
    fn corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        std::fs::write(&path, "garbage\n{\"type\":\"end\",\"ended\":1}\n").unwrap();
        let err = read_journal(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
