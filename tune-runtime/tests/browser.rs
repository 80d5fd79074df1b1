//! Headless Chromium against the live dashboard while an experiment runs, and a
//! screenshot of the report. Needs Debian's `chromium` (`.ci/run` installs it); without it
//! these fail under CI and are skipped elsewhere.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const FLAGS: [&str; 5] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
];

/// Chromium with the DevTools protocol on a free port, showing `url`.
struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn open(chromium: &Path, url: &str) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium)
            .args(FLAGS)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--window-size=1280,1600")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Chromium writes the port it took to this file.
        let port_file = profile.path().join("DevToolsActivePort");
        let port = wait_for(Duration::from_secs(30), || {
            std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|t| t.lines().next().map(String::from))
        });
        let addr = format!("127.0.0.1:{port}");
        let ws_url = wait_for(Duration::from_secs(30), || {
            let (_, body) = support::http("GET", &addr, "/json/list");
            let targets: Value = serde_json::from_str(&body).ok()?;
            targets
                .as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
        });
        let (ws, _) = tungstenite::connect(ws_url.as_str()).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        }
        let mut browser = Browser { child, ws, next: 0, _profile: profile };
        browser.call("Page.navigate", json!({"url": url}));
        let loaded =
            format!("location.href === {} && document.readyState === 'complete'", json!(url));
        wait_for(Duration::from_secs(30), || (browser.eval(&loaded) == true).then_some(()));
        browser
    }

    /// Calls a DevTools protocol method and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let Message::Text(text) = self.ws.read().unwrap() else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let params = json!({"expression": expression, "returnByValue": true});
        self.call("Runtime.evaluate", params)["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ITERS: &str = "JSON.stringify(Array.from(document.querySelectorAll('#table tbody tr'))\
                     .map(function (r) { return r.children[2].textContent; }))";

#[test]
fn the_dashboard_shows_new_results_without_a_reload() {
    let Some(chromium) = support::chromium() else { return };
    let root = tempfile::tempdir().unwrap();
    // Trials hold after iteration 3 until the page has shown them.
    support::fixture::SLEEP_MS.store(20, std::sync::atomic::Ordering::Relaxed);
    support::fixture::HOLD_AFTER.store(3, std::sync::atomic::Ordering::Relaxed);
    let exp_root = root.path().to_path_buf();
    let experiment = std::thread::spawn(move || support::fixture::run(&exp_root, "live", 8));
    let journal = root.path().join("live").join(tune_runtime::storage::JOURNAL_FILE);
    wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&journal)
            .ok()
            .filter(|t| t.contains("\"type\":\"result\""))
            .map(|_| ())
    });
    let (server, addr) = support::start_dashboard(root.path());
    assert_eq!(support::http("GET", &addr, "/exp/live").0, 200);
    let mut page = Browser::open(&chromium, &format!("http://{addr}/exp/live"));

    // The page shows the trials.
    wait_for(Duration::from_secs(30), || {
        (page.eval("document.querySelectorAll('#table tbody tr').length") == 3).then_some(())
    });
    let title = page.eval("document.getElementById('title').textContent");
    assert_eq!(title, "live (Fix)");
    page.eval("window.__sameDocument = 42");
    // The held trials: iteration 3 (the errored one stopped at 1).
    let before = wait_for(Duration::from_secs(30), || {
        let now = page.eval(ITERS);
        (now == json!("[\"1\",\"3\",\"3\"]")).then_some(now)
    });
    support::fixture::RELEASE.store(true, std::sync::atomic::Ordering::Relaxed);
    // A new result appears, in the same document (no reload).
    let after = wait_for(Duration::from_secs(30), || {
        let now = page.eval(ITERS);
        (now == json!("[\"1\",\"8\",\"8\"]")).then_some(now)
    });
    assert_eq!(page.eval("window.__sameDocument"), 42, "the page was reloaded");
    assert!(page.eval("window.tuneRenders").as_u64().unwrap() >= 2);
    assert!(
        page.eval("document.getElementById('live').textContent")
            .as_str()
            .unwrap()
            .starts_with("live")
    );
    eprintln!("iterations before {before}, after {after}");

    drop(page);
    drop(server);
    experiment.join().unwrap();
}

#[test]
fn the_report_draws_its_plots() {
    let Some(chromium) = support::chromium() else { return };
    let root = tempfile::tempdir().unwrap();
    let exp = support::fixture::run_samples(root.path(), "exp", 6, 4);
    let html = root.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_tune"))
        .args(["report", &exp.to_string_lossy(), "-o", &html.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = root.path().join("report.png");
    let profile = tempfile::tempdir().unwrap();
    let status = Command::new(&chromium)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2400")
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // `TUNE_SCREENSHOT_DIR` keeps the screenshot (the docs' picture comes from here).
    if let Some(keep) = std::env::var_os("TUNE_SCREENSHOT_DIR") {
        std::fs::copy(&png, Path::new(&keep).join("report.png")).unwrap();
        std::fs::copy(&html, Path::new(&keep).join("report.html")).unwrap();
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.line_size / info.width as usize;
    assert!(channels >= 3);
    let near = |p: &[u8], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) < 30);
    let (mut blue, mut orange, mut dark) = (0, 0, 0);
    for p in buf[..info.buffer_size()].chunks_exact(channels) {
        blue += usize::from(near(p, [76, 114, 176]));
        orange += usize::from(near(p, [255, 127, 14]));
        dark += usize::from(near(p, [68, 1, 84]));
    }
    // The history's points and the curves (blue), the best-so-far line and the best
    // trial's curve (orange), the best trial's line in parallel coordinates (dark purple).
    assert!(blue > 150, "blue pixels: {blue}");
    assert!(orange > 200, "orange pixels: {orange}");
    assert!(dark > 50, "dark pixels: {dark}");
}
