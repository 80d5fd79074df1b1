//! Where journal records live: the [`JournalStore`] trait and the local file,
//! [`FileJournal`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// File name of the journal inside the experiment directory.
pub const JOURNAL_FILE: &str = "experiment_journal.jsonl";

/// Longest journal line accepted when reading (16 MiB): a longer one is an error, so a
/// corrupt or hostile file cannot make the reader allocate without bound.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Where journal records go, and where a resume or an analysis reads them back.
///
/// Each record is one line of JSON (without the newline). Implementations append records
/// in order, make them durable on [`JournalStore::flush`], and give them back in the same
/// order from [`JournalStore::read`]. The local file is [`FileJournal`]; a database or an
/// object-store backend implements the same three methods.
///
/// ```
/// use std::io;
/// use std::ops::ControlFlow;
/// use tune_runtime::storage::JournalStore;
///
/// /// A journal kept in memory (a test double).
/// #[derive(Default)]
/// struct InMemory(Vec<Vec<u8>>);
///
/// impl JournalStore for InMemory {
///     fn append(&mut self, record: &[u8]) -> io::Result<()> {
///         self.0.push(record.to_vec());
///         Ok(())
///     }
///     fn flush(&mut self) -> io::Result<()> {
///         Ok(())
///     }
///     fn read(&mut self, visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()> {
///         for r in &self.0 {
///             if visit(r).is_break() {
///                 break;
///             }
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait JournalStore: Send {
    /// Appends one record (`record` holds no newline).
    fn append(&mut self, record: &[u8]) -> io::Result<()>;
    /// Makes every appended record durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Calls `visit` with every complete record stored so far, oldest first, until it
    /// returns [`ControlFlow::Break`]. A record cut short by a crash (the torn last line of
    /// a file) is not given; a store that can hold one repairs itself so that the next
    /// append starts a record of its own.
    fn read(&mut self, visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()>;

    /// Whether the store holds no record yet (a fresh run refuses a store that does, so
    /// that it never writes over another experiment). The default reads the first record.
    fn is_empty(&mut self) -> io::Result<bool> {
        let mut empty = true;
        self.read(&mut |_| {
            empty = false;
            ControlFlow::Break(())
        })?;
        Ok(empty)
    }
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

    fn is_empty(&mut self) -> io::Result<bool> {
        self.out.flush()?;
        Ok(std::fs::metadata(&self.path)?.len() == 0)
    }

    fn read(&mut self, visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<()> {
        self.out.flush()?;
        let tail = read_lines(&self.path, visit)?;
        if let Tail::Torn { valid, newline } = tail {
            // Cut the torn record and end the last complete one with its newline, so that
            // the next append starts a line of its own.
            let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
            file.set_len(valid)?;
            if newline {
                file.seek(SeekFrom::End(0))?;
                file.write_all(b"\n")?;
            }
            file.sync_all()?;
        }
        Ok(())
    }
}

/// How a journal file ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Every line is complete (or reading stopped early).
    Clean,
    /// The file needs a repair before the next append: cut it at `valid` bytes, then add a
    /// newline when `newline` (a complete last record that lacks its newline).
    Torn { valid: u64, newline: bool },
}

/// Why a line of a journal file could not be read.
#[derive(Debug)]
pub(crate) struct LineTooLong {
    pub line: usize,
}

impl std::fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} is longer than {MAX_RECORD_BYTES} bytes", self.line)
    }
}

impl std::error::Error for LineTooLong {}

/// Reads the journal file at `path` line by line, giving each complete record to
/// `visit`. A last line without its newline is given when it is a whole JSON value (a
/// crash after the record but before its newline), and skipped when it is not (a record
/// cut short); the returned [`Tail`] says how to repair the file. Never writes.
pub(crate) fn read_lines(
    path: &Path,
    visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<Tail> {
    let file = File::open(path)?;
    read_lines_from(BufReader::with_capacity(256 * 1024, file), visit)
}

/// [`read_lines`] over any reader.
pub(crate) fn read_lines_from(
    mut reader: impl BufRead,
    visit: &mut dyn FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<Tail> {
    let mut line = Vec::new();
    let mut n = 0usize;
    let mut valid = 0u64;
    loop {
        line.clear();
        let limit = MAX_RECORD_BYTES as u64 + 1;
        let read = Read::take(&mut reader, limit).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(Tail::Clean);
        }
        n += 1;
        let complete = line.last() == Some(&b'\n');
        if !complete && read as u64 == limit {
            return Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong { line: n }));
        }
        let text = line.trim_ascii();
        if !complete {
            // The last line, without its newline: whole, or cut short by a crash.
            let whole =
                !text.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok();
            if whole {
                let _ = visit(text);
                return Ok(Tail::Torn { valid: valid + read as u64, newline: true });
            }
            return Ok(Tail::Torn { valid, newline: false });
        }
        valid += read as u64;
        if !text.is_empty() && visit(text).is_break() {
            return Ok(Tail::Clean);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> (Vec<String>, Tail) {
        let mut out = Vec::new();
        let tail = read_lines_from(bytes, &mut |l| {
            out.push(String::from_utf8_lossy(l).into_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
        (out, tail)
    }

    #[test]
    fn a_torn_tail_is_skipped_and_a_whole_one_kept() {
        let (l, tail) = lines(b"{\"a\":1}\n{\"b\":");
        assert_eq!(l, ["{\"a\":1}"]);
        assert_eq!(tail, Tail::Torn { valid: 8, newline: false });
        let (l, tail) = lines(b"{\"a\":1}\n{\"b\":2}");
        assert_eq!(l, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(tail, Tail::Torn { valid: 15, newline: true });
        let (l, tail) = lines(b"{\"a\":1}\n\n");
        assert_eq!(l, ["{\"a\":1}"]);
        assert_eq!(tail, Tail::Clean);
    }

    #[test]
    fn a_file_journal_repairs_its_torn_tail_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        std::fs::write(&path, "{\"a\":1}\n{\"b\":").unwrap();
        let mut j = FileJournal::open(&path).unwrap();
        let mut seen = 0;
        j.read(&mut |_| {
            seen += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(seen, 1);
        j.append(b"{\"c\":3}").unwrap();
        j.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"c\":3}\n");
        // A whole last record without its newline is kept and ended.
        std::fs::write(&path, "{\"a\":1}\n{\"b\":2}").unwrap();
        let mut j = FileJournal::open(&path).unwrap();
        j.read(&mut |_| ControlFlow::Continue(())).unwrap();
        j.append(b"{\"c\":3}").unwrap();
        j.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
    }

    #[test]
    fn overlong_lines_are_an_error() {
        let long = vec![b' '; MAX_RECORD_BYTES + 10];
        let err = read_lines_from(&long[..], &mut |_| ControlFlow::Continue(())).unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
    }
}
