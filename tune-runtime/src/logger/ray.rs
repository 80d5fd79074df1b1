//! The fields Ray Tune's readers expect in a result row beyond the metrics: trial ids that
//! are unique across experiments, checkpoint directory names that sort as text, the date,
//! the process and the host.

use std::sync::OnceLock;

use serde_json::Value;

/// A trial id unique across experiments, as Ray Tune writes them: five hex digits that
/// depend on the experiment (its name and start time) and the trial's creation index,
/// `4f1c2_00003`. The same experiment gives the same ids on every resume.
///
/// The hex part always holds a letter, so no reader takes the id for a number.
///
/// ```
/// use tune_runtime::logger::trial_id;
/// let a = trial_id("mnist", 1_700_000_000, 3);
/// assert!(a.ends_with("_00003") && a.len() == 11);
/// assert_eq!(a, trial_id("mnist", 1_700_000_000, 3));
/// assert_ne!(a[..5], trial_id("mnist", 1_700_000_001, 3)[..5]);
/// ```
pub fn trial_id(experiment: &str, started: u64, index: u32) -> String {
    let mut h = experiment_hash(experiment, started);
    let mut hex: Vec<u8> = (0..5)
        .map(|_| {
            let d = (h & 0xf) as u8;
            h >>= 4;
            if d < 10 { b'0' + d } else { b'a' + d - 10 }
        })
        .collect();
    if hex.iter().all(u8::is_ascii_digit) {
        hex[0] = b'a' + (h % 6) as u8;
    }
    let hex = String::from_utf8(hex).unwrap_or_default();
    format!("{hex}_{index:05}")
}

fn experiment_hash(experiment: &str, started: u64) -> u64 {
    // FNV-1a over the name and the start time, then a splitmix64 finalizer.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in experiment.bytes().chain(started.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// The directory name of a trial's checkpoint of `iteration`, zero-padded so that names
/// sort by iteration as text (`checkpoint_000005` before `checkpoint_000010`), as Ray
/// Tune names them. Iterations past 999,999 take more digits.
///
/// ```
/// use tune_runtime::logger::checkpoint_dir_name;
/// assert_eq!(checkpoint_dir_name(5), "checkpoint_000005");
/// assert!(checkpoint_dir_name(5) < checkpoint_dir_name(10));
/// ```
pub fn checkpoint_dir_name(iteration: u64) -> String {
    format!("checkpoint_{iteration:06}")
}

/// `YYYY-MM-DD_HH-MM-SS` (UTC) of a Unix time, Ray Tune's `date` field.
pub(crate) fn date_of(unix: u64) -> String {
    let secs = unix as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}_{:02}-{:02}-{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// This process and the machine it runs on, as result rows name them.
#[derive(Debug)]
pub(crate) struct Host {
    pub pid: u32,
    pub hostname: String,
    pub node_ip: String,
    /// `"hostname"` and `"node_ip"` as JSON strings (escaped once).
    pub hostname_json: String,
    pub node_ip_json: String,
}

/// The host of this process (looked up once).
pub(crate) fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let hostname = hostname();
        let node_ip = node_ip();
        Host {
            pid: std::process::id(),
            hostname_json: Value::from(hostname.as_str()).to_string(),
            node_ip_json: Value::from(node_ip.as_str()).to_string(),
            hostname,
            node_ip,
        }
    })
}

fn hostname() -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_etc = || std::fs::read_to_string("/etc/hostname").ok();
    from_proc
        .or_else(from_etc)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".into())
}

/// The address this machine would use to reach other machines: the local end of a UDP
/// socket "connected" to a documentation address (connecting a UDP socket picks a route
/// and sends nothing). `127.0.0.1` when there is no route.
fn node_ip() -> String {
    let probe = || -> std::io::Result<String> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        socket.connect("192.0.2.1:9")?;
        Ok(socket.local_addr()?.ip().to_string())
    };
    probe().ok().filter(|ip| ip != "0.0.0.0").unwrap_or_else(|| "127.0.0.1".into())
}

/// The point a trial last (re)started from, for `time_since_restore` and
/// `iterations_since_restore`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Since {
    pub iteration: u64,
    pub time_total_s: f64,
}

impl Since {
    pub fn iterations(&self, iteration: u64) -> u64 {
        iteration.saturating_sub(self.iteration)
    }

    pub fn time(&self, time_total_s: f64) -> f64 {
        (time_total_s - self.time_total_s).max(0.0)
    }
}

/// Flattens a config into `(path, leaf)` pairs with `/` between keys, as pandas'
/// `json_normalize(sep="/")` and Ray Tune's CSV logger do: `{"opt": {"lr": 1}}` gives
/// `opt/lr`. Arrays stay leaves.
pub(crate) fn flatten<'a>(value: &'a Value, prefix: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}/{k}") };
                flatten(v, &path, out);
            }
        }
        _ => out.push((prefix.to_string(), value)),
    }
}

/// The leaf at a `/`-separated path of a config (`None` when absent).
pub(crate) fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.as_object().and_then(|m| m.get(k)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_in_rays_format() {
        assert_eq!(date_of(0), "1970-01-01_00-00-00");
        assert_eq!(date_of(1_700_000_000), "2023-11-14_22-13-20");
        assert_eq!(date_of(951_782_400), "2000-02-29_00-00-00");
    }

    #[test]
    fn trial_ids_differ_across_experiments_and_always_hold_a_letter() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..2000u64 {
            let id = trial_id("exp", k, 0);
            assert!(id[..5].bytes().any(|b| b.is_ascii_alphabetic()), "{id}");
            assert!(id[..5].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            seen.insert(id[..5].to_string());
        }
        // 2000 draws from 16^5 values: a handful of collisions at most.
        assert!(seen.len() > 1990, "{}", seen.len());
        assert_ne!(trial_id("a", 1, 0)[..5], trial_id("b", 1, 0)[..5]);
    }

    #[test]
    fn checkpoint_names_sort_by_iteration() {
        let mut names: Vec<String> = [10, 5, 100, 99, 1].map(checkpoint_dir_name).to_vec();
        names.sort();
        assert_eq!(names[0], "checkpoint_000001");
        assert_eq!(names[4], "checkpoint_000100");
    }

    #[test]
    fn host_fields_are_set() {
        let h = host();
        assert!(!h.hostname.is_empty());
        assert!(h.node_ip.parse::<std::net::IpAddr>().is_ok(), "{}", h.node_ip);
        assert_eq!(h.pid, std::process::id());
    }

    #[test]
    fn configs_flatten_like_pandas() {
        let c = serde_json::json!({"lr": 0.1, "opt": {"Sgd": {"m": 0.9}}, "l": [1, 2]});
        let mut out = Vec::new();
        flatten(&c, "", &mut out);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["l", "lr", "opt/Sgd/m"]);
        let path: Vec<String> = ["opt", "Sgd", "m"].map(String::from).to_vec();
        assert_eq!(lookup(&c, &path), Some(&serde_json::json!(0.9)));
    }
}
