//! The experiment journal: an append-only record of everything that happened.
//!
//! One JSON object per line (`experiment_journal.jsonl` in the experiment directory).
//! Records are appended through a [`JournalStore`], batched, and flushed at status changes,
//! checkpoints, every status tick and at the end; a crash can only lose a tail of records,
//! and a truncated last line is ignored when the journal is read back.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::trial::TrialStatus;

/// File name of the journal inside the experiment directory.
pub const JOURNAL_FILE: &str = "experiment_journal.jsonl";

/// Format version written in the journal's first record.
pub(crate) const JOURNAL_VERSION: u32 = 2;

/// Longest journal line accepted when reading (16 MiB): a longer one is an error, so a
/// corrupt or hostile file cannot make the reader allocate without bound.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Where journal records go. Each record is one line of JSON; implementations append
/// records in order and make them durable on [`JournalStore::flush`]. The local file is
/// [`FileJournal`]; a database or object-store backend implements the same two methods.
pub trait JournalStore: Send {
    /// Appends one record (`record` holds no newline).
    fn append(&mut self, record: &[u8]) -> io::Result<()>;
    /// Makes every appended record durable.
    fn flush(&mut self) -> io::Result<()>;
}

/// A journal in a local file, appended through a buffer.
#[derive(Debug)]
pub struct FileJournal {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileJournal {
    /// Opens (creating or appending to) the journal file at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { path: path.to_path_buf(), out: BufWriter::with_capacity(64 * 1024, file) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl JournalStore for FileJournal {
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        if crate::faultpoint::hit(crate::faultpoint::Point::Journal) {
            // Die half-way through a record, as a crash during the write would.
            let _ = self.out.write_all(&record[..record.len() / 2]);
            let _ = self.out.flush();
            crate::faultpoint::die();
        }
        self.out.write_all(record)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// The first record of a run.
    Experiment {
        /// Journal format version.
        version: u32,
        /// Experiment name (the directory's name).
        name: String,
        /// `TrainableSpec::NAME`.
        trainable: String,
        /// Metric names, in the order of result values.
        metrics: Vec<String>,
        /// The experiment's seed.
        seed: u64,
        /// Unix time of the start.
        started: u64,
    },
    /// A trial was created.
    Trial {
        /// Creation index.
        trial: u32,
        /// Trial id as shown (`00003`).
        id: String,
        /// Trial directory relative to the experiment directory, when files are written.
        dir: Option<String>,
        /// The config as JSON.
        config: serde_json::Value,
        /// The searcher's state right after it suggested this config (for resuming).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        searcher: Option<serde_json::Value>,
    },
    /// A trial changed status.
    Status {
        /// Creation index.
        trial: u32,
        /// The new status.
        status: TrialStatus,
        /// The error message, for `ERROR`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A result: metric values then the automatic fields (`training_iteration`,
    /// `time_this_iter_s`, `time_total_s`, `timestamp`).
    Result {
        /// Creation index.
        trial: u32,
        /// The values.
        v: Vec<f64>,
        /// The trial ended after this result by its stop criteria or its scheduler (not
        /// by an interruption, a time budget or an error): a resume does not step it again.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        done: bool,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Creation index.
        trial: u32,
        /// Training iteration it holds.
        iteration: u64,
        /// Directory relative to the experiment directory.
        path: String,
    },
    /// A checkpoint was deleted (`keep_checkpoints_num`).
    CheckpointDeleted {
        /// Creation index.
        trial: u32,
        /// Directory relative to the experiment directory.
        path: String,
    },
    /// A trial exploited another (population based training): it restored `source`'s
    /// checkpoint of `source_iteration` and took `new_config`.
    Exploit {
        /// The exploiting trial (creation index).
        trial: u32,
        /// The trial whose checkpoint it restored.
        source: u32,
        /// The trial's iteration before.
        target_iteration: u64,
        /// The iteration it goes on from.
        source_iteration: u64,
        /// Its config before.
        old_config: serde_json::Value,
        /// Its config after.
        new_config: serde_json::Value,
        /// The source's config.
        source_config: serde_json::Value,
    },
    /// A trial failed and will be retried (`max_failures`); `attempt` counts from 1.
    Failure {
        /// Creation index.
        trial: u32,
        /// How many times the trial has failed so far.
        attempt: u32,
        /// The error.
        error: String,
    },
    /// The trial goes back to the checkpoint at `iteration` (0: from scratch): its results
    /// after that iteration are discarded. Written on a retry and on a resume.
    Rollback {
        /// Creation index.
        trial: u32,
        /// The last iteration whose results are kept.
        iteration: u64,
    },
    /// The searcher's and the scheduler's saved state (for resuming).
    State {
        /// `Searcher::save_state`.
        searcher: serde_json::Value,
        /// `Scheduler::save_state`.
        scheduler: serde_json::Value,
    },
    /// The experiment was resumed from this journal.
    Resume {
        /// Unix time of the resume.
        started: u64,
    },
    /// The run ended.
    End {
        /// Unix time of the end.
        ended: u64,
    },
}

/// Appends records to a store, formatting results without allocating.
pub(crate) struct Journal {
    store: Box<dyn JournalStore>,
    buf: Vec<u8>,
}

impl Journal {
    pub fn new(store: Box<dyn JournalStore>) -> Self {
        Self { store, buf: Vec::with_capacity(256) }
    }

    pub fn record(&mut self, record: &Record) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, record).map_err(io::Error::other)?;
        self.append()
    }

    fn append(&mut self) -> io::Result<()> {
        self.store.append(&self.buf)
    }

    pub fn result(&mut self, trial: u32, values: &[f64], done: bool) -> io::Result<()> {
        self.buf.clear();
        let _ = write!(self.buf, "{{\"type\":\"result\",\"trial\":{trial},\"v\":[");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            let _ = write!(self.buf, "{v}");
        }
        self.buf.extend_from_slice(if done { b"],\"done\":true}" } else { b"]}" });
        self.append()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.store.flush()
    }
}

/// An error reading a journal back.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read.
    #[error("cannot read the experiment journal `{}`: {source}; pass the experiment directory (the one holding `{JOURNAL_FILE}`)", path.display())]
    Io {
        /// The journal's path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A record in the middle of the journal is not valid.
    #[error("the experiment journal `{}` is corrupt at line {line}: {message}", path.display())]
    Corrupt {
        /// The journal's path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        message: String,
    },
}

/// Reads every record of the journal at `path`. A last line cut short by a crash is
/// ignored; any other unreadable line is an error.
pub fn read_journal(path: &Path) -> Result<Vec<Record>, JournalError> {
    read_records(path).map(|(records, _)| records)
}

/// [`read_journal`], plus the length of the valid prefix of the file (where a torn last
/// line starts): a resume cuts the file there before appending.
pub(crate) fn read_records(path: &Path) -> Result<(Vec<Record>, u64), JournalError> {
    let io_err = |source| JournalError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io_err)?;
    parse_records(BufReader::new(file), path)
}

/// Parses journal lines from `reader`; `path` is only used in errors.
pub(crate) fn parse_records(
    mut reader: impl BufRead,
    path: &Path,
) -> Result<(Vec<Record>, u64), JournalError> {
    let io_err = |source| JournalError::Io { path: path.to_path_buf(), source };
    let corrupt = |line, message| JournalError::Corrupt { path: path.to_path_buf(), line, message };
    let mut records = Vec::new();
    let mut line = Vec::new();
    let mut n = 0;
    let mut valid = 0u64;
    loop {
        line.clear();
        let limit = MAX_RECORD_BYTES as u64 + 1;
        let read =
            std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut line).map_err(io_err)?;
        if read == 0 {
            break;
        }
        n += 1;
        let complete = line.last() == Some(&b'\n');
        if !complete && read as u64 == limit {
            return Err(corrupt(n, format!("the line is longer than {MAX_RECORD_BYTES} bytes")));
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            match serde_json::from_slice::<Record>(text) {
                Ok(r) => records.push(r),
                Err(_) if !complete => break,
                Err(e) => return Err(corrupt(n, e.to_string())),
            }
        }
        // A well-formed last record without its newline counts (a resume adds the newline).
        valid += read as u64;
        if !complete {
            break;
        }
    }
    Ok((records, valid))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"result\",\"tri").unwrap();
        let records = read_journal(&path).unwrap();
        assert_eq!(records.len(), 3);
        let v = vec![0.5, 1.0, 0.25, 0.25, 17.0];
        assert_eq!(records[1], Record::Result { trial: 1, v, done: false });
        assert!(matches!(records[2], Record::Result { done: true, .. }));
        let (_, valid) = read_records(&path).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len - valid, "{\"type\":\"result\",\"tri".len() as u64);
    }

    #[test]
    fn overlong_lines_are_an_error() {
        let long = vec![b' '; MAX_RECORD_BYTES + 10];
        let err = parse_records(&long[..], Path::new("j")).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let _ = parse_records(&bytes[..], Path::new("j"));
        }

        #[test]
        fn records_survive_any_cut(cut in 0usize..400) {
            let mut text = String::new();
            for r in [
                Record::Status { trial: 0, status: TrialStatus::Running, error: None },
                Record::Failure { trial: 0, attempt: 1, error: "x\ny".into() },
                Record::Rollback { trial: 0, iteration: 3 },
                Record::End { ended: 9 },
            ] {
                text.push_str(&serde_json::to_string(&r).unwrap());
                text.push('\n');
            }
            let cut = cut.min(text.len());
            let (records, valid) = parse_records(&text.as_bytes()[..cut], Path::new("j")).unwrap();
            proptest::prop_assert!(valid as usize <= cut);
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
