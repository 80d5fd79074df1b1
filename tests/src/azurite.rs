//! An Azure-compatible blob server on loopback for the object-store tests: npm's `azurite`
//! (its `azurite-blob` script: `TUNE_AZURITE_BLOB`, default the one on `PATH`), started on
//! a free port in memory by Node.js (`TUNE_NODE`, default `node`).
//!
//! Without Azurite the tests print `SKIPPED` loudly; with `CI` set they fail instead
//! (`.ci/run` installs Azurite).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Azurite's one account and its well-known development key (not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Node.js that runs the `azurite-blob` script given first with the other arguments, and
/// stops it when the process that started it goes away (a test binary killed half-way
/// leaves no server behind).
const LAUNCHER: &str = r#"
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
const script = process.argv[1];
process.argv = [process.argv[0], script, ...process.argv.slice(2)];
require(script);
"#;

/// Node.js that sends one request signed with the account's key (Shared Key) and prints
/// the status, a newline and the body. Arguments: port, method, path, query.
const REQUEST: &str = r#"
const [port, method, path, query, key] = process.argv.slice(1);
const crypto = require('crypto'), http = require('http');
const date = new Date().toUTCString(), version = '2021-08-06';
const params = new URLSearchParams(query);
const canonical = [...params.keys()].sort().map(k => `\n${k.toLowerCase()}:${params.get(k)}`).join('');
const account = path.split('/')[1];
const toSign = `${method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:${date}\nx-ms-version:${version}\n/${account}${path}${canonical}`;
const signature = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const headers = { 'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
  'Authorization': `SharedKey ${account}:${signature}` };
const req = http.request({ host: '127.0.0.1', port, method, headers,
  path: path + (query ? '?' + query : '') }, res => {
  let body = '';
  res.on('data', d => body += d);
  res.on('end', () => process.stdout.write(`${res.statusCode}\n${body}`));
});
req.on('error', e => { process.stderr.write(e.message); process.exit(1); });
req.end();
"#;

/// A running Azurite blob server, stopped (by the pid this started) on drop.
#[derive(Debug)]
pub struct Azurite {
    node: String,
    port: u16,
    child: Option<Child>,
}

impl Azurite {
    /// Azurite's blob server started on a free loopback port, keeping blobs in memory.
    /// `None` (after saying so, or panicking under CI) when there is none.
    pub fn start() -> Option<Azurite> {
        let node = std::env::var("TUNE_NODE").unwrap_or_else(|_| "node".into());
        let script = match std::env::var_os("TUNE_AZURITE_BLOB") {
            Some(path) => Some(PathBuf::from(path)),
            None => std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("azurite-blob"))
                    .find(|path| path.is_file())
            }),
        };
        let Some(script) = script.filter(|path| path.is_file()) else {
            return missing(
                "Azurite (no `azurite-blob` in TUNE_AZURITE_BLOB or on PATH; `npm install \
                 azurite` and set TUNE_AZURITE_BLOB to its `node_modules/.bin/azurite-blob`)",
            );
        };
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new(&node)
            .arg("-e")
            .arg(LAUNCHER)
            .arg(&script)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--silent", "--skipApiVersionCheck"])
            .arg("--disableTelemetry")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => return missing(&format!("Azurite (cannot start `{node}`: {e})")),
        };
        let mut server = Azurite { node, port, child: Some(child) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if server.request("GET", &format!("/{ACCOUNT}"), "comp=list").is_some() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let status = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        server.stop();
        missing(&format!("Azurite (it did not answer on port {port}; exit: {status:?})"))
    }

    /// The account's endpoint, `http://127.0.0.1:<port>/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// The options of `ObjectStoreCheckpoints::from_url` for this server, with retries
    /// kept short.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("account_name", ACCOUNT.into()),
            ("access_key", KEY.into()),
            ("endpoint", self.endpoint()),
            ("max_retries", "2".into()),
            ("retry_timeout_s", "5".into()),
        ]
    }

    /// Creates a container of a name no other test uses, and returns its name.
    pub fn new_container(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("tune-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let reply = self.request("PUT", &format!("/{ACCOUNT}/{name}"), "restype=container");
        assert_eq!(reply.map(|r| r.0), Some(201), "creating container `{name}`");
        name
    }

    /// The names of the blobs of `container` (up to 5000), sorted.
    pub fn keys(&self, container: &str) -> Vec<String> {
        let path = format!("/{ACCOUNT}/{container}");
        let (status, body) = self.request("GET", &path, "restype=container&comp=list").unwrap();
        assert_eq!(status, 200, "listing {container}: {body}");
        let mut keys: Vec<String> = body
            .split("<Name>")
            .skip(1)
            .filter_map(|s| s.split("</Name>").next())
            .map(|k| k.replace("&amp;", "&"))
            .collect();
        keys.sort();
        keys
    }

    /// Status and body of a signed request, `None` if none came back.
    fn request(&self, method: &str, path: &str, query: &str) -> Option<(u16, String)> {
        let output = Command::new(&self.node)
            .args(["-e", REQUEST, &self.port.to_string(), method, path, query, KEY])
            .stdin(Stdio::null())
            .output()
            .ok()?;
        if !output.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (status, body) = text.split_once('\n')?;
        Some((status.parse().ok()?, body.to_string()))
    }

    /// Stops the server (by the pid this started), and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.stop();
    }
}

fn missing(what: &str) -> Option<Azurite> {
    crate::s3::missing_server(what, "Azurite")
}
