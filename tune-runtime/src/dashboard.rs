//! The live dashboard: the report's page for every experiment under a directory (or in a
//! PostgreSQL database, feature `postgres`), served on the loopback interface and refreshed
//! as results arrive. Read-only: it answers `GET` and nothing else, and reads experiments
//! through their journals.
//!
//! The page polls `/api/exp/<name>?since=<gen>` (every second, or five times its own
//! render time when that is longer); the answer holds new data only when the journal
//! changed. The server is [`tiny_http`]: synchronous, a few threads, no async runtime to
//! build, which is all a local, read-only page for a handful of readers needs.
//!
//! ```no_run
//! let dashboard = tune_runtime::dashboard::Dashboard::start("results", "127.0.0.1:8265")?;
//! println!("open {}", dashboard.url());
//! dashboard.wait();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

use crate::journal::{ExperimentLog, JOURNAL_FILE};
use crate::report::{Report, ReportOptions, page};

/// A running dashboard server.
pub struct Dashboard {
    server: Arc<Server>,
    addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The data of one experiment, kept while its journal does not change.
struct Cached {
    version: u64,
    data: Arc<String>,
}

/// What the dashboard serves.
enum Source {
    /// The experiments under a directory, or one experiment directory.
    Dir(PathBuf),
    /// The experiments of a PostgreSQL database, and the `local_dir` their paths are under.
    #[cfg(feature = "postgres")]
    Postgres { url: String, local_dir: PathBuf },
}

/// One experiment: its directory, or its name in the database.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Exp {
    Dir(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

struct State {
    source: Source,
    cache: Mutex<HashMap<Exp, Cached>>,
}

/// A version of the journal: its length and modification time (it only grows).
fn journal_version(dir: &Path) -> Option<u64> {
    let meta = std::fs::metadata(dir.join(JOURNAL_FILE)).ok()?;
    let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(meta.len().wrapping_mul(1_000_003) ^ mtime)
}

/// The summary of an experiment in the list.
fn summary(name: &str, log: &ExperimentLog) -> Value {
    let counts = crate::report::status_counts(log);
    let (metric, best) = crate::report::headline(log);
    json!({"name": name, "trials": log.trials().len(), "counts": counts,
           "finished": log.is_finished(), "metric": metric, "best": best})
}

impl State {
    /// The experiments: `root` itself when it is one, else its subdirectories that are;
    /// or every experiment of the database.
    // Without the feature `postgres`, `Source` has one variant.
    #[allow(clippy::infallible_destructuring_match)]
    fn experiments(&self) -> Result<Vec<(String, Exp)>, String> {
        let root = match &self.source {
            Source::Dir(root) => root,
            #[cfg(feature = "postgres")]
            Source::Postgres { url, .. } => {
                let names =
                    crate::shared::PostgresJournal::experiments(url).map_err(|e| e.to_string())?;
                return Ok(names.into_iter().map(|n| (n.clone(), Exp::Postgres(n))).collect());
            }
        };
        if root.join(JOURNAL_FILE).is_file() {
            let name =
                root.file_name().map_or("experiment".into(), |n| n.to_string_lossy().to_string());
            return Ok(vec![(name, Exp::Dir(root.clone()))]);
        }
        let mut out: Vec<(String, Exp)> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join(JOURNAL_FILE).is_file())
            .map(|e| (e.file_name().to_string_lossy().to_string(), Exp::Dir(e.path())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn resolve(&self, name: &str) -> Option<Exp> {
        self.experiments().ok()?.into_iter().find(|(n, _)| n == name).map(|(_, e)| e)
    }

    /// The report data of an experiment, and its version.
    fn data(&self, exp: &Exp) -> Result<(u64, Arc<String>), String> {
        let cached = |version: u64| {
            let cache = self.cache.lock().ok()?;
            cache.get(exp).filter(|c| c.version == version).map(|c| Arc::clone(&c.data))
        };
        let (version, log) = match exp {
            Exp::Dir(dir) => {
                let version = journal_version(dir).ok_or("the journal cannot be read")?;
                if let Some(data) = cached(version) {
                    return Ok((version, data));
                }
                (version, ExperimentLog::from_dir(dir).map_err(|e| e.to_string())?)
            }
            #[cfg(feature = "postgres")]
            Exp::Postgres(name) => {
                let (mut journal, local_dir) = self.open(name)?;
                let version = journal.log_len().map_err(|e| e.to_string())?;
                if let Some(data) = cached(version) {
                    return Ok((version, data));
                }
                let log = ExperimentLog::from_shared(&mut journal, local_dir.join(name));
                (version, log.map_err(|e| e.to_string())?)
            }
        };
        let report = Report::from_log(&log, &ReportOptions::default());
        let data = Arc::new(report.data().to_string());
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(exp.clone(), Cached { version, data: Arc::clone(&data) });
        }
        Ok((version, data))
    }

    /// Experiment `name` of the database, and the `local_dir` its paths are under.
    #[cfg(feature = "postgres")]
    fn open(&self, name: &str) -> Result<(crate::shared::PostgresJournal, &Path), String> {
        let Source::Postgres { url, local_dir } = &self.source else {
            return Err("not a PostgreSQL dashboard".into());
        };
        let journal =
            crate::shared::PostgresJournal::open_existing(url, name).map_err(|e| e.to_string())?;
        Ok((journal, local_dir))
    }

    fn log(&self, exp: &Exp) -> Result<ExperimentLog, String> {
        match exp {
            Exp::Dir(dir) => ExperimentLog::from_dir(dir).map_err(|e| e.to_string()),
            #[cfg(feature = "postgres")]
            Exp::Postgres(name) => {
                let (mut journal, local_dir) = self.open(name)?;
                ExperimentLog::from_shared(&mut journal, local_dir.join(name))
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn list(&self) -> Value {
        let experiments = match self.experiments() {
            Ok(e) => e,
            Err(e) => return json!([{"name": "(database)", "error": e}]),
        };
        let list: Vec<Value> = experiments
            .into_iter()
            .map(|(name, exp)| match self.log(&exp) {
                Ok(log) => summary(&name, &log),
                Err(e) => json!({"name": name, "error": e}),
            })
            .collect();
        Value::Array(list)
    }
}

const INDEX: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tune dashboard</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse}
td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}.n{text-align:right}</style></head>
<body><h1>Experiments</h1><table><thead><tr><th>experiment</th><th>trials</th><th>status</th><th>best</th><th></th></tr></thead>
<tbody id="list"></tbody></table><p id="live" style="color:#2a7d2a;font-size:12px"></p>
<script>
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return{'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function load(){fetch('/api/experiments',{cache:'no-store'}).then(function(r){return r.json();}).then(function(list){
document.getElementById('list').innerHTML=list.map(function(e){
if(e.error)return '<tr><td>'+esc(e.name)+'</td><td colspan=4>'+esc(e.error)+'</td></tr>';
var c=Object.keys(e.counts).filter(function(k){return e.counts[k]>0;}).map(function(k){return e.counts[k]+' '+k;}).join(', ');
return '<tr><td><a href="/exp/'+encodeURIComponent(e.name)+'">'+esc(e.name)+'</a></td><td class="n">'+e.trials+'</td><td>'+esc(c)+'</td><td>'+(e.best===null?'':esc(e.metric)+'='+(+e.best.toPrecision(6)))+'</td><td>'+(e.finished?'finished':'running or stopped')+'</td></tr>';
}).join('');document.getElementById('live').textContent='live · updated '+new Date().toLocaleTimeString();
}).catch(function(){}).then(function(){setTimeout(load,2000);});}
load();
</script></body></html>"#;

fn header(name: &str, value: &str) -> Header {
    // Both are ASCII constants of this file.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).unwrap_or_else(|()| {
        Header::from_bytes(&b"X-Invalid"[..], &b"1"[..]).unwrap_or_else(|()| unreachable!())
    })
}

fn respond(req: Request, status: u16, kind: &str, body: String) {
    let response = Response::from_string(body)
        .with_status_code(status)
        .with_header(header("Content-Type", kind))
        .with_header(header("Cache-Control", "no-store"));
    // The reader may have gone away; nothing to do about it.
    let _ = req.respond(response);
}

fn handle(state: &State, req: Request) {
    if *req.method() != Method::Get {
        return respond(
            req,
            405,
            "text/plain; charset=utf-8",
            "read-only: only GET is served\n".into(),
        );
    }
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let since = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("since="))
        .and_then(|v| v.parse::<u64>().ok());
    let decode = |s: &str| percent_decode(s);
    const HTML: &str = "text/html; charset=utf-8";
    const JSON: &str = "application/json";
    if path == "/" {
        return respond(req, 200, HTML, INDEX.into());
    }
    if path == "/api/experiments" {
        return respond(req, 200, JSON, state.list().to_string());
    }
    let (api, name) = match (path.strip_prefix("/api/exp/"), path.strip_prefix("/exp/")) {
        (Some(n), _) => (true, decode(n)),
        (None, Some(n)) => (false, decode(n)),
        _ => return respond(req, 404, "text/plain; charset=utf-8", "not found\n".into()),
    };
    let Some(exp) = state.resolve(&name) else {
        return respond(req, 404, "text/plain; charset=utf-8", format!("no experiment `{name}`\n"));
    };
    match state.data(&exp) {
        Ok((version, data)) if api => {
            let body = if since == Some(version) {
                format!("{{\"gen\":{version}}}")
            } else {
                format!("{{\"gen\":{version},\"data\":{data}}}")
            };
            respond(req, 200, JSON, body)
        }
        Ok((_, data)) => {
            let live = format!("/api/exp/{}", percent_encode(&name));
            respond(req, 200, HTML, page(&data, Some(&live)))
        }
        Err(e) => {
            respond(req, 500, "text/plain; charset=utf-8", format!("cannot read `{name}`: {e}\n"))
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

impl Dashboard {
    /// Serves the experiments under `root` (or `root` itself when it is an experiment) on
    /// `addr` (`127.0.0.1:8265`; port 0 picks a free one) from 4 threads.
    pub fn start(root: impl Into<PathBuf>, addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::serve(Source::Dir(root.into()), addr)
    }

    /// Serves the experiments of the PostgreSQL database at `url` (feature `postgres`;
    /// shared experiments, see `docs/distributed.md`), read as they run. Trial and
    /// checkpoint paths are shown under `local_dir` (the runs' `local_dir`). Each request
    /// opens its own connection; the dashboard writes nothing to the database.
    #[cfg(feature = "postgres")]
    pub fn start_postgres(
        url: &str,
        local_dir: impl Into<PathBuf>,
        addr: impl ToSocketAddrs,
    ) -> io::Result<Self> {
        // Fails now, with the reason, when the database cannot be read.
        crate::shared::PostgresJournal::experiments(url).map_err(io::Error::other)?;
        Self::serve(Source::Postgres { url: url.to_string(), local_dir: local_dir.into() }, addr)
    }

    fn serve(source: Source, addr: impl ToSocketAddrs) -> io::Result<Self> {
        let server = Server::http(addr).map_err(io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("the server has no IP address"))?;
        let server = Arc::new(server);
        let state = Arc::new(State { source, cache: Mutex::new(HashMap::new()) });
        let threads = (0..4)
            .map(|k| {
                let (server, state) = (Arc::clone(&server), Arc::clone(&state));
                std::thread::Builder::new().name(format!("tune-dashboard-{k}")).spawn(move || {
                    for req in server.incoming_requests() {
                        handle(&state, req);
                    }
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { server, addr, threads })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Stops serving and waits for the threads.
    pub fn stop(self) {
        self.server.unblock();
        for _ in 1..self.threads.len() {
            self.server.unblock();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_urls() {
        assert_eq!(percent_decode(&percent_encode("a b/é")), "a b/é");
        assert_eq!(percent_encode("x_1-2.y"), "x_1-2.y");
    }
}
