//! An S3-compatible server on loopback for the object-store tests and benchmark: PyPI's
//! `moto[server]`, started on a free port by the Python of `TUNE_PYTHON` (default
//! `python3`), or the server already running at `TUNE_TEST_S3_ENDPOINT`.
//!
//! Without moto the tests print `SKIPPED` loudly; with `CI` set they fail instead (`.ci/run`
//! installs moto).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whether CI runs this (`CI` set): there a missing server fails the test.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// A running S3-compatible server; a server this started is stopped (by its pid) on drop.
#[derive(Debug)]
pub struct S3Server {
    endpoint: String,
    child: Option<Child>,
}

/// Python that runs moto's server, and stops it when the process that started it goes
/// away (a test binary killed half-way leaves no server behind).
const LAUNCHER: &str = r#"
import os, sys, threading, time
parent = os.getppid()
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

impl S3Server {
    /// The server of `TUNE_TEST_S3_ENDPOINT`, or a moto server started on a free port.
    /// `None` (after saying so, or panicking under CI) when there is none.
    pub fn start() -> Option<S3Server> {
        if let Some(endpoint) = std::env::var_os("TUNE_TEST_S3_ENDPOINT") {
            let endpoint = endpoint.to_string_lossy().trim_end_matches('/').to_string();
            let server = S3Server { endpoint, child: None };
            if server.wait_ready(Duration::from_secs(10)) {
                return Some(server);
            }
            return missing(&format!(
                "the S3 server of TUNE_TEST_S3_ENDPOINT ({}) does not answer",
                server.endpoint
            ));
        }
        let python = std::env::var("TUNE_PYTHON").unwrap_or_else(|_| "python3".into());
        let has_moto = Command::new(&python)
            .args(["-c", "import moto.server, flask"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_moto {
            return missing(&format!(
                "moto's S3 server (`{python}` cannot import `moto.server`; `pip install \
                 'moto[server]'` into the Python of TUNE_PYTHON, or set TUNE_TEST_S3_ENDPOINT)"
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new(&python)
            .args(["-c", LAUNCHER, &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => return missing(&format!("moto's S3 server (cannot start `{python}`: {e})")),
        };
        let mut server =
            S3Server { endpoint: format!("http://127.0.0.1:{port}"), child: Some(child) };
        if server.wait_ready(Duration::from_secs(60)) {
            return Some(server);
        }
        let status = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        missing(&format!("moto's S3 server (it did not answer on port {port}; exit: {status:?})"))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Creates a bucket of a name no other test uses, and returns its name.
    pub fn new_bucket(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let name = format!(
            "tune-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000_000
        );
        // Writable without signing, so that a test can change objects as another program
        // would (`put_object`, `delete_object`).
        let status = self
            .exchange("PUT", &format!("/{name}"), "x-amz-acl: public-read-write\r\n", &[])
            .map(|r| r.0);
        assert_eq!(status, Some(200), "creating bucket `{name}` on {} failed", self.endpoint);
        name
    }

    /// The options of `ObjectStoreCheckpoints::from_url` for this server (moto takes any
    /// credentials), with retries kept short.
    pub fn options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("endpoint", self.endpoint.clone()),
            ("region", "us-east-1".into()),
            ("access_key_id", "testing".into()),
            ("secret_access_key", "testing".into()),
            ("max_retries", "2".into()),
            ("retry_timeout_s", "5".into()),
        ]
    }

    /// Stops the server if this started it (by the pid it started), and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.request("GET", "/moto-api/").is_some() || self.request("GET", "/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The status of an unsigned request (moto accepts them), `None` if none came back.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        self.exchange(method, path, "", &[]).map(|(status, _)| status)
    }

    /// Status and body of an unsigned request with `body`.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &str,
        body: &[u8],
    ) -> Option<(u16, Vec<u8>)> {
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(body).ok()?;
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        let split = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
        let status =
            String::from_utf8_lossy(&reply[..split]).split_whitespace().nth(1)?.parse().ok()?;
        Some((status, reply[split + 4..].to_vec()))
    }

    /// Writes an object directly (as a corrupting disk or another program would).
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8]) {
        let status =
            self.exchange("PUT", &format!("/{bucket}/{}", encode(key)), "", body).map(|r| r.0);
        assert_eq!(status, Some(200), "PUT {key}");
    }

    /// Deletes an object directly.
    pub fn delete_object(&self, bucket: &str, key: &str) {
        let status = self.request("DELETE", &format!("/{bucket}/{}", encode(key)));
        assert_eq!(status, Some(204), "DELETE {key}");
    }

    /// The keys of the objects of `bucket` (up to 1000), sorted.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, body) =
            self.exchange("GET", &format!("/{bucket}?list-type=2"), "", &[]).unwrap();
        assert_eq!(status, 200, "listing {bucket}");
        let text = String::from_utf8_lossy(&body);
        let mut keys: Vec<String> = text
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(|k| k.replace("&amp;", "&"))
            .collect();
        keys.sort();
        keys
    }
}

/// A key as a URL path: every byte but unreserved characters and `/` percent-encoded.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn missing(what: &str) -> Option<S3Server> {
    missing_server(what, "moto")
}

/// A test server that could not be started: a failure under CI (`.ci/run` installs
/// `installed`), a loud skip elsewhere.
pub(crate) fn missing_server<T>(what: &str, installed: &str) -> Option<T> {
    if in_ci() {
        panic!(
            "{what}; `.ci/run` installs {installed} (CI is set, so this fails instead of skipping)"
        );
    }
    skipped(&format!("{what} (CI=true makes this a failure)"));
    None
}

/// Says on the terminal that a test did nothing. Written to the process's stderr itself,
/// not through `eprintln!`, which the test harness captures and hides for a test that
/// passes.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}
