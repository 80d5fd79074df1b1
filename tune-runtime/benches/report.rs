//! The HTML report of an experiment of 10,000 trials (20 results of 3 metrics each, 4
//! hyperparameters, one an enum): time to fold the journal, build the report and write
//! the page, its size, and (where Chromium is installed) the time headless Chromium takes
//! to load and draw it, with the page's own render time.
//!
//! Run: `cargo bench -p tune-runtime --bench report` (`TUNE_CHROMIUM` names the browser,
//! default `chromium`; `--trials N` changes the size).

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use tune_runtime::report::{Report, ReportOptions};
use tune_runtime::storage::ExperimentLog;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let trials: u32 = args
        .iter()
        .position(|a| a == "--trials")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let exp = dir.path().join("big");
    std::fs::create_dir_all(&exp)?;
    let mut j = std::io::BufWriter::new(std::fs::File::create(
        exp.join(tune_runtime::storage::JOURNAL_FILE),
    )?);
    writeln!(
        j,
        r#"{{"type":"experiment","version":3,"name":"big","trainable":"Model","metrics":["loss","acc","lr_now"],"seed":1,"started":1700000000}}"#
    )?;
    let mut state = 1u64;
    let mut rand = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    for t in 0..trials {
        let lr = 10f64.powf(-4.0 + 3.0 * rand());
        let layers = 1 + (rand() * 8.0) as u32;
        let opt = if rand() < 0.5 {
            format!(r#"{{"Sgd":{{"momentum":{}}}}}"#, rand() * 0.9)
        } else {
            r#"{"Adam":{}}"#.to_string()
        };
        writeln!(
            j,
            r#"{{"type":"trial","trial":{t},"id":"{t:05}","dir":"Model_{t:05}","config":{{"lr":{lr},"layers":{layers},"opt":{opt}}}}}"#
        )?;
        writeln!(j, r#"{{"type":"status","trial":{t},"status":"RUNNING"}}"#)?;
        let n = if rand() < 0.5 { 20 } else { 5 };
        let base = (lr.log10() + 2.5).abs() + 0.1 * f64::from(layers);
        for it in 1..=n {
            let loss = base / f64::from(it) + 0.05 * rand();
            writeln!(
                j,
                r#"{{"type":"result","trial":{t},"v":[{loss},{},{lr},{it},0.1,{},{}]}}"#,
                1.0 - loss / 4.0,
                0.1 * f64::from(it),
                1_700_000_000 + it
            )?;
        }
        writeln!(j, r#"{{"type":"status","trial":{t},"status":"TERMINATED"}}"#)?;
    }
    writeln!(j, r#"{{"type":"end","ended":1700001000}}"#)?;
    j.flush()?;
    drop(j);

    let start = Instant::now();
    let log = ExperimentLog::from_dir(&exp)?;
    let fold = start.elapsed();
    let report = Report::from_log(&log, &ReportOptions::default());
    let built = start.elapsed() - fold;
    let html = dir.path().join("report.html");
    report.write_html(&html)?;
    let total = start.elapsed();
    // `--keep DIR` keeps the page (the docs' screenshot comes from a small one).
    if let Some(keep) = args.iter().position(|a| a == "--keep").and_then(|i| args.get(i + 1)) {
        std::fs::copy(&html, std::path::Path::new(keep).join("report.html"))?;
    }
    let size = std::fs::metadata(&html)?.len();
    println!(
        "trials: {trials}, results: {}",
        log.trials().iter().map(|t| t.num_results()).sum::<usize>()
    );
    println!("fold the journal: {:.0} ms", fold.as_secs_f64() * 1e3);
    println!("build the report (incl. importance): {:.0} ms", built.as_secs_f64() * 1e3);
    println!(
        "fold + build + write: {:.0} ms, page {:.1} MB",
        total.as_secs_f64() * 1e3,
        size as f64 / 1e6
    );

    let chromium = std::env::var("TUNE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir()?;
    for run in 1..=3 {
        let start = Instant::now();
        let out = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--window-size=1280,1600", "--dump-dom"])
            .arg(format!("file://{}", html.display()))
            .output();
        let Ok(out) = out else {
            println!("chromium: not found (`{chromium}`), page load not measured");
            break;
        };
        let wall = start.elapsed();
        let dom = String::from_utf8_lossy(&out.stdout);
        let timing = dom
            .split("<footer id=\"timing\">")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or("no timing in the page (did the script fail?)");
        println!(
            "chromium run {run}: start, load, draw and dump the page: {:.0} ms; the page says: {timing}",
            wall.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
