//! The journal of an experiment shared by several processes, in PostgreSQL (feature
//! `postgres`).
//!
//! Every process of the experiment connects to the same database with the same experiment
//! name. The schema (`postgres_v1.sql`, versioned in `tune_schema_version`) is created on
//! the first connection. Each operation of [`SharedJournal`] is one statement, most of them
//! one call of a PL/pgSQL function, so that an append is one round trip and one transaction:
//!
//! * the experiment's row is locked (`SELECT ... FOR UPDATE`) for the whole append, and
//!   holds the next sequence number: numbers are gap-free and in commit order;
//! * claims are rows of a table keyed by (experiment, key);
//! * leases are timestamps of the server's clock (`clock_timestamp()`), never this
//!   machine's;
//! * fencing checks the lease, and the owner and generation of every trial named, inside
//!   the append's transaction;
//! * every append notifies `tune_journal_<experiment id>`, which [`SharedJournal::wait_for`]
//!   listens to.

use std::io;
use std::str::FromStr;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls, Statement};

use super::shared::{Append, Orphan, ProcessId, SharedError, SharedJournal, Visit};

/// The schema version this build writes and reads.
const SCHEMA_VERSION: i32 = 1;
/// The schema, version by version: `MIGRATIONS[v - 1]` brings a database to version `v`.
const MIGRATIONS: [&str; 1] = [include_str!("postgres_v1.sql")];
/// The advisory lock that serializes schema migrations (any constant works; this one
/// spells `tune` in ASCII).
const MIGRATION_LOCK: i64 = 0x7475_6e65;
/// How many records one read fetches at most.
const READ_BATCH: i64 = 4096;
/// The longest experiment name.
const MAX_NAME: usize = 200;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The prepared statements of a connection.
struct Statements {
    append: Statement,
    take_over: Statement,
    read: Statement,
    next_seq: Statement,
    heartbeat: Statement,
    orphans: Statement,
}

struct Conn {
    client: Client,
    st: Statements,
}

/// A journal shared by the processes of one experiment, in a PostgreSQL database.
///
/// ```no_run
/// # use tune_runtime::shared::PostgresJournal;
/// let journal = PostgresJournal::connect("postgres://tune@db.internal:5432/tuning", "resnet-sweep")?;
/// // Tuner::<Model>::new().name("resnet-sweep").shared_journal(journal).run()
/// # Ok::<(), tune_runtime::shared::SharedError>(())
/// ```
///
/// The URL is libpq's (`postgres://user:password@host:port/database?options`): the
/// tables go in the first schema of its `search_path` (`?options=-csearch_path%3Dtuning`
/// for a schema `tuning`). Connections are plain TCP (no TLS). See `docs/distributed.md`.
pub struct PostgresJournal {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    name: String,
    experiment: i64,
    conn: Option<Conn>,
    me: Option<ProcessId>,
}

impl std::fmt::Debug for PostgresJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresJournal")
            .field("url", &self.shown)
            .field("experiment", &self.name)
            .field("process", &self.me)
            .finish()
    }
}

/// `url` with its password replaced by `***` (in `user:password@`, or a `password=`
/// parameter of a URL or of a `key=value` connection string).
fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        if let Some((user, _)) = authority.rsplit_once('@').and_then(|(a, _)| a.split_once(':')) {
            let host = &rest[authority.rfind('@').map_or(0, |a| a + 1)..];
            out = format!("{scheme}://{user}:***@{host}");
        }
    }
    let mut from = 0;
    while let Some(at) = out[from..].find("password=").map(|p| from + p + "password=".len()) {
        let end = out[at..].find(['&', ' ']).map_or(out.len(), |e| at + e);
        out.replace_range(at..end, "***");
        from = at + 3;
    }
    out
}

impl PostgresJournal {
    /// Connects to the database at `url` and opens experiment `experiment` in it (created
    /// when it does not exist; the schema is created on the first connection to a
    /// database). Every process of the experiment passes the same URL and name.
    pub fn connect(url: &str, experiment: &str) -> Result<Self, SharedError> {
        let mut journal = Self::unconnected(url, experiment)?;
        let mut client = journal.open()?;
        migrate(&mut client).map_err(|e| journal.err(e))?;
        let id = ensure_experiment(&mut client, experiment).map_err(|e| journal.err(e))?;
        journal.experiment = id;
        journal.conn = Some(journal.prepare(client).map_err(|e| journal.err(e))?);
        Ok(journal)
    }

    /// Opens the existing experiment `experiment` of the database at `url` to read it (the
    /// `tune` command, the dashboard, an analysis): unlike [`connect`](Self::connect) it
    /// creates nothing. An experiment that does not exist is an error that lists the
    /// experiments the database holds.
    pub fn open_existing(url: &str, experiment: &str) -> Result<Self, SharedError> {
        let mut journal = Self::unconnected(url, experiment)?;
        let mut client = journal.open()?;
        let names = list_experiments(&mut client).map_err(|e| journal.err(e))?;
        let Some((id, _)) = names.iter().find(|(_, n)| n == experiment) else {
            let held = if names.is_empty() {
                "it holds none (is the schema in the URL's `search_path` the one the run used?)"
                    .to_string()
            } else {
                let names: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
                format!("it holds: {}", names.join(", "))
            };
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "PostgreSQL at `{}` has no experiment `{experiment}`; {held}",
                    journal.shown
                ),
            )
            .into());
        };
        journal.experiment = *id;
        journal.conn = Some(journal.prepare(client).map_err(|e| journal.err(e))?);
        Ok(journal)
    }

    /// The names of the experiments in the database at `url`, oldest first (none when it
    /// holds no tune-rs tables in the URL's `search_path`). Creates nothing.
    pub fn experiments(url: &str) -> Result<Vec<String>, SharedError> {
        let journal = Self::unconnected(url, "-")?;
        let mut client = journal.open()?;
        let names = list_experiments(&mut client).map_err(|e| journal.err(e))?;
        Ok(names.into_iter().map(|(_, n)| n).collect())
    }

    /// How many records the experiment's log holds now (it only grows).
    pub fn log_len(&mut self) -> io::Result<u64> {
        let experiment = self.experiment;
        let conn = self.conn()?;
        let next: Result<i64, _> =
            conn.client.query_one(&conn.st.next_seq, &[&experiment]).and_then(|r| r.try_get(0));
        next.map(|n| n as u64).map_err(|e| self.err(e))
    }

    /// The journal of `experiment` at `url`, not connected yet.
    fn unconnected(url: &str, experiment: &str) -> Result<Self, SharedError> {
        let shown = redact(url);
        let bad = |m: String| SharedError::Io(io::Error::new(io::ErrorKind::InvalidInput, m));
        let mut config = postgres::Config::from_str(url).map_err(|e| {
            bad(format!(
                "`{shown}` is not a PostgreSQL URL ({e}); write it as \
                 postgres://user:password@host:5432/database"
            ))
        })?;
        if experiment.is_empty() || experiment.len() > MAX_NAME {
            return Err(bad(format!(
                "the experiment name `{experiment}` must have 1 to {MAX_NAME} bytes"
            )));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(Self {
            config,
            shown,
            name: experiment.to_string(),
            experiment: 0,
            conn: None,
            me: None,
        })
    }

    /// The experiment's name.
    pub fn experiment(&self) -> &str {
        &self.name
    }

    fn open(&self) -> io::Result<Client> {
        self.config.connect(NoTls).map_err(|e| {
            let kind = if e.as_db_error().is_some() {
                io::ErrorKind::PermissionDenied
            } else {
                io::ErrorKind::ConnectionRefused
            };
            io::Error::new(
                kind,
                format!(
                    "cannot connect to PostgreSQL at `{}`: {}; check that the server runs and \
                     accepts TCP connections at that host and port (`pg_isready -d '{}'`), and \
                     that the user, password and database in the URL are right",
                    self.shown,
                    describe(&e),
                    self.shown
                ),
            )
        })
    }

    /// Prepares the statements on a new connection and listens for appends.
    fn prepare(&self, mut client: Client) -> Result<Conn, postgres::Error> {
        client.batch_execute(&format!("LISTEN tune_journal_{}", self.experiment))?;
        let st = Statements {
            append: client.prepare(
                "SELECT tune_append_v1($1::bigint, $2::text, $3::text[], $4::int4[], \
                 $5::int4[], $6::int4[], $7::bytea[])",
            )?,
            take_over: client.prepare(
                "SELECT tune_take_over_v1($1::bigint, $2::text, $3::int4, $4::bigint, \
                 $5::bytea[])",
            )?,
            read: client.prepare(
                "SELECT seq, writer, body FROM tune_records WHERE experiment = $1 \
                 AND seq >= $2 ORDER BY seq LIMIT $3",
            )?,
            next_seq: client.prepare("SELECT next_seq FROM tune_experiments WHERE id = $1")?,
            heartbeat: client.prepare(
                "UPDATE tune_processes SET lease_until = clock_timestamp() + lease_ms * \
                 interval '1 millisecond' WHERE experiment = $1 AND id = $2 \
                 AND lease_until > clock_timestamp()",
            )?,
            orphans: client.prepare(
                "SELECT o.trial, o.generation, o.owner FROM tune_owners o \
                 LEFT JOIN tune_processes p ON p.experiment = o.experiment AND p.id = o.owner \
                 WHERE o.experiment = $1 AND NOT o.ended \
                 AND (p.lease_until IS NULL OR p.lease_until <= clock_timestamp()) \
                 ORDER BY o.trial",
            )?,
        };
        Ok(Conn { client, st })
    }

    /// The connection, opened again when the last one was lost (a restart of the server,
    /// a network failure).
    fn conn(&mut self) -> io::Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.conn = None;
            let client = self.open()?;
            let conn = self.prepare(client).map_err(|e| self.err(e))?;
            self.conn = Some(conn);
        }
        self.conn.as_mut().ok_or_else(|| io::Error::other("no connection"))
    }

    fn err(&self, e: postgres::Error) -> io::Error {
        io::Error::other(format!(
            "PostgreSQL at `{}` (experiment `{}`): {}",
            self.shown,
            self.name,
            describe(&e)
        ))
    }

    fn me(&self) -> Result<ProcessId, SharedError> {
        self.me.clone().ok_or_else(|| {
            io::Error::other("the process has not joined the shared experiment").into()
        })
    }

    /// Maps a refusal of `tune_append_v1` / `tune_take_over_v1` to its error.
    fn refusal(&self, e: postgres::Error) -> SharedError {
        if let Some(db) = e.as_db_error() {
            let detail = db.detail().unwrap_or_default();
            match db.code().code() {
                "TU001" => return SharedError::Claimed { key: detail.to_string() },
                "TU002" => {
                    if let Ok(trial) = detail.parse() {
                        return SharedError::NotOwner { trial };
                    }
                }
                "TU003" => return SharedError::LeaseExpired,
                _ => {}
            }
        }
        SharedError::Io(self.err(e))
    }
}

/// A `postgres::Error` in words: the server's message and detail, or the I/O cause.
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return match db.detail() {
            Some(d) => format!("{} ({d})", db.message()),
            None => db.message().to_string(),
        };
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Brings the database's schema to [`SCHEMA_VERSION`], once even when several processes
/// connect at the same moment.
fn migrate(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tune_schema_version (\
         version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM tune_schema_version", &[])?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        // Left to the caller as a database error would be: raise one.
        tx.batch_execute(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'the database holds tune-rs journal schema version \
             {current}; this build knows up to {SCHEMA_VERSION}: upgrade tune-runtime, or use \
             another database or schema'; END $$"
        ))?;
    }
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO tune_schema_version (version) VALUES ($1)", &[&(v as i32 + 1)])?;
    }
    tx.commit()
}

/// The experiments of the database (id and name, oldest first), without creating
/// anything; refuses a schema newer than this build's.
fn list_experiments(client: &mut Client) -> Result<Vec<(i64, String)>, postgres::Error> {
    let exists: bool =
        client.query_one("SELECT to_regclass('tune_experiments') IS NOT NULL", &[])?.try_get(0)?;
    if !exists {
        return Ok(Vec::new());
    }
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM tune_schema_version", &[])?
        .try_get(0)?;
    if current > SCHEMA_VERSION {
        client.batch_execute(&format!(
            "DO $$ BEGIN RAISE EXCEPTION 'the database holds tune-rs journal schema version \
             {current}; this build knows up to {SCHEMA_VERSION}: upgrade tune-runtime'; END $$"
        ))?;
    }
    client
        .query("SELECT id, name FROM tune_experiments ORDER BY id", &[])?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The id of experiment `name`, created when new.
fn ensure_experiment(client: &mut Client, name: &str) -> Result<i64, postgres::Error> {
    client.execute(
        "INSERT INTO tune_experiments (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
        &[&name],
    )?;
    client.query_one("SELECT id FROM tune_experiments WHERE name = $1", &[&name])?.try_get(0)
}

/// This machine's name, for process ids.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string())
}

fn trial_numbers(trials: &[u32]) -> io::Result<Vec<i32>> {
    trials
        .iter()
        .map(|&t| {
            i32::try_from(t).map_err(|_| io::Error::other(format!("trial number {t} too large")))
        })
        .collect()
}

impl SharedJournal for PostgresJournal {
    fn join(&mut self, lease: Duration) -> Result<ProcessId, SharedError> {
        let prefix = format!("{}:{}", host_name(), std::process::id());
        let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1);
        let experiment = self.experiment;
        let conn = self.conn()?;
        let row = conn.client.query_one(
            "INSERT INTO tune_processes (experiment, id, lease_ms, lease_until) VALUES \
             ($1, $2 || ':' || substr(md5(random()::text || clock_timestamp()::text), 1, 8), \
             $3::bigint, clock_timestamp() + $3::bigint * interval '1 millisecond') \
             RETURNING id",
            &[&experiment, &prefix, &ms],
        );
        let id: String = row.and_then(|r| r.try_get(0)).map_err(|e| self.err(e))?;
        let me = ProcessId(id);
        self.me = Some(me.clone());
        Ok(me)
    }

    fn append(&mut self, a: Append<'_>) -> Result<u64, SharedError> {
        let me = self.me()?;
        let (creates, trials, ends) =
            (trial_numbers(a.creates)?, trial_numbers(a.trials)?, trial_numbers(a.ends)?);
        let experiment = self.experiment;
        let conn = self.conn()?;
        let row = conn.client.query_one(
            &conn.st.append,
            &[&experiment, &me.0, &a.claims, &creates, &trials, &ends, &a.records],
        );
        match row.and_then(|r| r.try_get::<_, i64>(0)) {
            Ok(first) => Ok(first as u64),
            Err(e) => Err(self.refusal(e)),
        }
    }

    fn read_from(&mut self, from: u64, visit: &mut Visit<'_>) -> io::Result<u64> {
        let experiment = self.experiment;
        let mut next = from;
        let mut writer = ProcessId(String::new());
        loop {
            let conn = self.conn()?;
            let start = i64::try_from(next).map_err(io::Error::other)?;
            let rows = match conn.client.query(&conn.st.read, &[&experiment, &start, &READ_BATCH]) {
                Ok(rows) => rows,
                Err(e) => return Err(self.err(e)),
            };
            let count = rows.len() as i64;
            for row in rows {
                let got = (|| {
                    Ok::<_, postgres::Error>((
                        row.try_get::<_, i64>(0)?,
                        row.try_get::<_, &str>(1)?,
                        row.try_get::<_, &[u8]>(2)?,
                    ))
                })();
                let (seq, who, body) = got.map_err(|e| self.err(e))?;
                if seq as u64 != next {
                    return Err(io::Error::other(format!(
                        "the shared journal of `{}` has no record {next} (the next one is \
                         {seq}): the database was changed by hand",
                        self.name
                    )));
                }
                if writer.0 != who {
                    writer = ProcessId(who.to_string());
                }
                next = seq as u64 + 1;
                if visit(seq as u64, &writer, body).is_break() {
                    return Ok(next);
                }
            }
            if count < READ_BATCH {
                return Ok(next);
            }
        }
    }

    fn wait_for(&mut self, seq: u64, timeout: Duration) -> io::Result<()> {
        let experiment = self.experiment;
        let conn = self.conn()?;
        // Notifications of appends already seen are dropped: the count below says.
        while let Ok(Some(_)) = conn.client.notifications().iter().next() {}
        let next: Result<i64, _> =
            conn.client.query_one(&conn.st.next_seq, &[&experiment]).and_then(|r| r.try_get(0));
        let woke = match next {
            Ok(n) if n as u64 > seq => return Ok(()),
            // Woken by the next append's notification, or after `timeout`.
            Ok(_) => conn.client.notifications().timeout_iter(timeout).next().map(|_| ()),
            Err(e) => Err(e),
        };
        woke.map_err(|e| self.err(e))
    }

    fn heartbeat(&mut self) -> Result<(), SharedError> {
        let me = self.me()?;
        let experiment = self.experiment;
        let conn = self.conn()?;
        match conn.client.execute(&conn.st.heartbeat, &[&experiment, &me.0]) {
            Ok(0) => Err(SharedError::LeaseExpired),
            Ok(_) => Ok(()),
            Err(e) => Err(self.err(e).into()),
        }
    }

    fn orphans(&mut self) -> io::Result<Vec<Orphan>> {
        let experiment = self.experiment;
        let conn = self.conn()?;
        let rows = match conn.client.query(&conn.st.orphans, &[&experiment]) {
            Ok(rows) => rows,
            Err(e) => return Err(self.err(e)),
        };
        rows.iter()
            .map(|r| {
                Ok(Orphan {
                    trial: r.try_get::<_, i32>(0)? as u32,
                    generation: r.try_get::<_, i64>(1)? as u64,
                    owner: ProcessId(r.try_get(2)?),
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(|e| self.err(e))
    }

    fn take_over(&mut self, orphan: &Orphan, records: &[Vec<u8>]) -> Result<u64, SharedError> {
        let me = self.me()?;
        let trial = trial_numbers(&[orphan.trial])?[0];
        let generation = i64::try_from(orphan.generation).map_err(io::Error::other)?;
        let experiment = self.experiment;
        let conn = self.conn()?;
        let row = conn
            .client
            .query_one(&conn.st.take_over, &[&experiment, &me.0, &trial, &generation, &records]);
        match row.and_then(|r| r.try_get::<_, i64>(0)) {
            Ok(first) => Ok(first as u64),
            Err(e) => Err(self.refusal(e)),
        }
    }

    fn leave(&mut self) -> io::Result<()> {
        let Some(me) = self.me.take() else { return Ok(()) };
        let experiment = self.experiment;
        let conn = self.conn()?;
        let done = conn.client.execute(
            "UPDATE tune_processes SET lease_until = '-infinity' WHERE experiment = $1 AND id = $2",
            &[&experiment, &me.0],
        );
        done.map(|_| ()).map_err(|e| self.err(e))
    }
}

/// Scratch schemas on a test server, for the tests of this crate and of the workspace
/// (not public API).
#[doc(hidden)]
pub mod testing {
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The variable naming the test server.
    pub const URL_VAR: &str = "TUNE_TEST_POSTGRES_URL";
    /// The server when [`URL_VAR`] is not set.
    pub const DEFAULT_URL: &str = "postgres://root@127.0.0.1:5432/test";

    /// A schema of its own on the test server, dropped at the end of the test.
    #[derive(Debug)]
    pub struct TestSchema {
        /// The server's URL with this schema as its `search_path`.
        pub url: String,
        /// The schema's name.
        pub name: String,
        base: String,
    }

    impl TestSchema {
        /// A new, empty schema for test `test`; `None` when no server is reachable (said
        /// loudly on stderr), and a panic instead when `CI` is set: CI must not skip.
        pub fn create(test: &str) -> Option<Self> {
            static N: AtomicU32 = AtomicU32::new(0);
            let base = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_string());
            let mut client = match connect(&base) {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!(
                        "no PostgreSQL server for test `{test}` at `{base}` ({e}); set \
                         {URL_VAR} to a server where this user may create schemas"
                    );
                    if std::env::var_os("CI").is_some() {
                        panic!("{msg} (CI is set: tests that need PostgreSQL must not be skipped)");
                    }
                    eprintln!("\n*** SKIPPED: {msg} ***\n");
                    return None;
                }
            };
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(
                "tune_test_{}_{}_{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            );
            if let Err(e) = client.batch_execute(&format!("CREATE SCHEMA {name}")) {
                panic!("cannot create schema {name} at `{base}`: {e}");
            }
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-csearch_path%3D{name}");
            Some(Self { url, name, base })
        }
    }

    fn connect(url: &str) -> Result<postgres::Client, String> {
        let mut config = postgres::Config::from_str(url).map_err(|e| e.to_string())?;
        config.connect_timeout(std::time::Duration::from_secs(5));
        config.connect(postgres::NoTls).map_err(|e| super::describe(&e))
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            if let Ok(mut client) = connect(&self.base) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::ops::ControlFlow;

    use super::testing::TestSchema;
    use super::*;

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{{\"n\":{i}}}").into_bytes()).collect()
    }

    fn all(j: &mut PostgresJournal) -> Vec<(u64, String, Vec<u8>)> {
        let mut out = Vec::new();
        j.read_from(0, &mut |seq, who, body| {
            out.push((seq, who.0.clone(), body.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    #[test]
    fn claims_go_to_the_first_and_sequence_numbers_have_no_gap() {
        let Some(db) = TestSchema::create("claims_go_to_the_first") else { return };
        let mut a = PostgresJournal::connect(&db.url, "exp").unwrap();
        let mut b = PostgresJournal::connect(&db.url, "exp").unwrap();
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
        assert!(matches!(&err, SharedError::Claimed { key } if key == "trial:0"), "{err}");
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
        // A refused append left nothing behind; records come back as written, by their writer.
        let log = all(&mut b);
        assert_eq!(log.len(), 4);
        assert!(log.iter().all(|(_, who, _)| *who == a.me.as_ref().unwrap().0));
        assert_eq!(log[3].2, r[1]);
        // Stopping early says where to go on from.
        let next = b.read_from(0, &mut |_, _, _| ControlFlow::Break(())).unwrap();
        assert_eq!(next, 1);
    }

    #[test]
    fn concurrent_appenders_get_gap_free_numbers_in_commit_order() {
        let Some(db) = TestSchema::create("concurrent_appenders") else { return };
        let (threads, appends, batch) = (4, 40, 3);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let url = db.url.clone();
                std::thread::spawn(move || {
                    let mut j = PostgresJournal::connect(&url, "exp").unwrap();
                    j.join(Duration::from_secs(60)).unwrap();
                    let mut firsts = Vec::new();
                    for i in 0..appends {
                        let r: Vec<Vec<u8>> = (0..batch)
                            .map(|k| format!("{{\"t\":{t},\"i\":{i},\"k\":{k}}}").into_bytes())
                            .collect();
                        firsts
                            .push(j.append(Append { records: &r, ..Default::default() }).unwrap());
                    }
                    firsts
                })
            })
            .collect();
        let mut firsts: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        firsts.sort_unstable();
        // Every append got its own block of `batch` numbers, one after the other.
        let expected: Vec<u64> = (0..threads * appends).map(|n| (n * batch) as u64).collect();
        assert_eq!(firsts, expected);
        let mut reader = PostgresJournal::connect(&db.url, "exp").unwrap();
        let log = all(&mut reader);
        assert_eq!(log.len(), threads * appends * batch);
        assert!(log.iter().enumerate().all(|(i, (seq, _, _))| *seq == i as u64));
        // Each append's records are contiguous and in order.
        for chunk in log.chunks(batch) {
            let v: Vec<serde_json::Value> =
                chunk.iter().map(|(_, _, b)| serde_json::from_slice(b).unwrap()).collect();
            assert!(v.iter().all(|x| x["t"] == v[0]["t"] && x["i"] == v[0]["i"]));
            assert_eq!(v.iter().map(|x| x["k"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
        }
    }

    #[test]
    fn an_expired_owner_is_fenced_and_its_trial_taken_over_once() {
        let Some(db) = TestSchema::create("an_expired_owner_is_fenced") else { return };
        let mut a = PostgresJournal::connect(&db.url, "exp").unwrap();
        let mut b = PostgresJournal::connect(&db.url, "exp").unwrap();
        let mut c = PostgresJournal::connect(&db.url, "exp").unwrap();
        a.join(Duration::from_millis(200)).unwrap();
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
        a.heartbeat().unwrap();
        assert!(b.orphans().unwrap().is_empty());
        let early = Orphan { trial: 0, generation: 0, owner: a.me.clone().unwrap() };
        let err = b.take_over(&early, &r).unwrap_err();
        assert!(matches!(err, SharedError::Claimed { .. }), "a live owner keeps its trial: {err}");
        std::thread::sleep(Duration::from_millis(300));
        let orphans = b.orphans().unwrap();
        assert_eq!(orphans, std::slice::from_ref(&early));
        assert_eq!(b.take_over(&orphans[0], &r).unwrap(), 1);
        // Only one takeover of a generation succeeds.
        assert!(matches!(c.take_over(&orphans[0], &r), Err(SharedError::Claimed { .. })));
        // The old owner comes back: its lease is gone, and so is its trial.
        assert!(matches!(a.heartbeat(), Err(SharedError::LeaseExpired)));
        let late = a.append(Append { records: &r, trials: &[0], ..Default::default() });
        assert!(matches!(late, Err(SharedError::LeaseExpired)), "{late:?}");
        // Even with a new lease, the trial is not its own any more.
        a.join(Duration::from_secs(60)).unwrap();
        let late = a.append(Append { records: &r, trials: &[0], ..Default::default() });
        assert!(matches!(late, Err(SharedError::NotOwner { trial: 0 })), "{late:?}");
        b.append(Append { records: &r, trials: &[0], ends: &[0], ..Default::default() }).unwrap();
        assert_eq!(all(&mut c).len(), 3, "nothing of the fenced process was appended");
        assert!(c.orphans().unwrap().is_empty(), "an ended trial is nobody's orphan");
        // A process that leaves makes its unfinished trials orphans at once.
        c.append(Append {
            records: &r,
            claims: &["trial:1".into()],
            creates: &[1],
            ..Default::default()
        })
        .unwrap();
        c.leave().unwrap();
        assert_eq!(b.orphans().unwrap().iter().map(|o| o.trial).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn experiments_in_one_database_do_not_see_each_other() {
        let Some(db) = TestSchema::create("experiments_do_not_see_each_other") else { return };
        let mut a = PostgresJournal::connect(&db.url, "one").unwrap();
        let mut b = PostgresJournal::connect(&db.url, "two").unwrap();
        a.join(Duration::from_millis(300)).unwrap();
        b.join(Duration::from_secs(60)).unwrap();
        let claims = ["trial:0".to_string()];
        let r = records(2);
        a.append(Append { records: &r, claims: &claims, creates: &[0], ..Default::default() })
            .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        // The same claim is free in the other experiment, and numbers start at 0 there.
        let first = b
            .append(Append {
                records: &r[..1],
                claims: &claims,
                creates: &[0],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(first, 0);
        assert_eq!(all(&mut b).len(), 1);
        assert_eq!(all(&mut a).len(), 2);
        assert!(b.orphans().unwrap().is_empty(), "another experiment's orphan is not ours");
        assert_eq!(a.orphans().unwrap().len(), 1);
    }

    #[test]
    fn a_waiting_reader_wakes_when_another_connection_appends() {
        let Some(db) = TestSchema::create("a_waiting_reader_wakes") else { return };
        let mut reader = PostgresJournal::connect(&db.url, "exp").unwrap();
        let url = db.url.clone();
        let writer = std::thread::spawn(move || {
            let mut w = PostgresJournal::connect(&url, "exp").unwrap();
            w.join(Duration::from_secs(60)).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            w.append(Append { records: &records(1), ..Default::default() }).unwrap();
        });
        let start = std::time::Instant::now();
        // Returns at once when the record is there, else waits for it (or the timeout).
        while all(&mut reader).is_empty() {
            assert!(start.elapsed() < Duration::from_secs(60), "the append was never seen");
            reader.wait_for(0, Duration::from_secs(30)).unwrap();
        }
        writer.join().unwrap();
        reader.wait_for(0, Duration::from_secs(30)).unwrap();
    }

    #[test]
    fn bad_urls_and_unreachable_servers_say_what_to_check() {
        let err = PostgresJournal::connect("mysql://x", "exp").unwrap_err().to_string();
        assert!(err.contains("is not a PostgreSQL URL"), "{err}");
        let err = PostgresJournal::connect("postgres://u:secret@127.0.0.1:1/db", "exp")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot connect to PostgreSQL at `postgres://u:***@127.0.0.1:1/db`"));
        assert!(err.contains("pg_isready"), "{err}");
        assert!(!err.contains("secret"), "the password is never shown: {err}");
        for url in [
            "host=127.0.0.1 port=1 user=u password=secret",
            "postgres://u@127.0.0.1:1/db?password=secret&x=1",
        ] {
            let err = PostgresJournal::connect(url, "exp").unwrap_err().to_string();
            assert!(err.contains("password=***") && !err.contains("secret"), "{err}");
        }
        let err = PostgresJournal::connect("postgres://u@127.0.0.1:1/db", "").unwrap_err();
        assert!(err.to_string().contains("experiment name"), "{err}");
    }

    #[test]
    fn opening_an_existing_experiment_creates_nothing() {
        let Some(db) = TestSchema::create("opening_an_existing_experiment") else { return };
        // No schema yet: no experiments, and none created by asking.
        assert!(PostgresJournal::experiments(&db.url).unwrap().is_empty());
        let err = PostgresJournal::open_existing(&db.url, "exp").unwrap_err().to_string();
        assert!(err.contains("no experiment `exp`") && err.contains("holds none"), "{err}");
        let mut w = PostgresJournal::connect(&db.url, "exp").unwrap();
        PostgresJournal::connect(&db.url, "other").unwrap();
        w.join(Duration::from_secs(60)).unwrap();
        w.append(Append { records: &records(3), ..Default::default() }).unwrap();
        let err = PostgresJournal::open_existing(&db.url, "exq").unwrap_err().to_string();
        assert!(err.contains("no experiment `exq`; it holds: exp, other"), "{err}");
        assert_eq!(PostgresJournal::experiments(&db.url).unwrap(), ["exp", "other"]);
        // An existing one reads as with `connect`.
        let mut r = PostgresJournal::open_existing(&db.url, "exp").unwrap();
        assert_eq!(r.log_len().unwrap(), 3);
        assert_eq!(all(&mut r), all(&mut w));
    }

    #[test]
    fn the_schema_is_created_once_and_a_newer_one_is_refused() {
        let Some(db) = TestSchema::create("the_schema_is_created_once") else { return };
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let url = db.url.clone();
                std::thread::spawn(move || PostgresJournal::connect(&url, &format!("e{i}")))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let mut client =
            PostgresJournal::connect(&db.url, "e0").unwrap().conn.take().unwrap().client;
        let versions: Vec<i32> = client
            .query("SELECT version FROM tune_schema_version", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, [SCHEMA_VERSION]);
        client.execute("INSERT INTO tune_schema_version (version) VALUES (99)", &[]).unwrap();
        let err = PostgresJournal::connect(&db.url, "e0").unwrap_err().to_string();
        assert!(err.contains("schema version 99") && err.contains("upgrade tune-runtime"), "{err}");
        let err = PostgresJournal::open_existing(&db.url, "e0").unwrap_err().to_string();
        assert!(err.contains("schema version 99") && err.contains("upgrade tune-runtime"), "{err}");
    }
}
