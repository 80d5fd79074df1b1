//! The runner: one driver thread that owns all experiment state, a pool of worker threads
//! that run trainable code, and the journal that records everything.
//!
//! The driver is not generic: it knows trials by id, configs as JSON and results as rows
//! of `f64`, and reaches the user's types only through the object-safe traits of
//! `model.rs` (implemented once per trainable in `typed.rs`). Its concerns are one file
//! each:
//!
//! | file | concern |
//! |---|---|
//! | `driver.rs` | the state, the start and end of a run, the event loop |
//! | `lifecycle.rs` | creating, admitting, starting, stepping and ending trials |
//! | `results.rs` | applying results; how many steps a worker runs at once |
//! | `checkpoints.rs` | checkpoint requests, the lineage, `keep_checkpoints_num` |
//! | `rollback.rs` | retries (`max_failures`) and rollbacks along the lineage |
//! | `pausing.rs` | scheduler pauses (memory, disk) and stops |
//! | `exploit.rs` | population based training's exploits |
//! | `stopping.rs` | Ctrl-C and SIGTERM, failed writes, hung steps |
//! | `resume.rs` | resuming from the journal and replaying it to the searcher and scheduler |
//! | `snapshot.rs` | when the searcher's and scheduler's state is saved |
//! | `status.rs` | the status table and the summary |
//! | `events.rs` | what the callbacks (the loggers of the trial files, the user's) are told |
//! | `files.rs` | the experiment directory: lock, links, leftovers, file repair |
//! | `shared.rs` | experiments shared by several processes: following, claims, takeovers |
//! | `state.rs` | a trial's record, live state and phase |
//! | `worker.rs` | worker threads and their tasks |
//! | `threads.rs` | CPU budgets: the rayon pool each trial's code runs in |
//! | `isolation.rs` | trials in child processes |

pub(crate) mod capture;
mod checkpoints;
mod driver;
mod events;
mod exploit;
mod files;
mod interrupt;
mod isolation;
mod lifecycle;
pub(crate) mod model;
mod pausing;
mod results;
mod resume;
mod rollback;
pub(crate) mod settings;
mod shared;
mod snapshot;
mod state;
mod status;
mod stopping;
pub(crate) mod threads;
pub(crate) mod typed;
mod worker;

pub(crate) use isolation::{Isolated, serve_if_worker};
pub use isolation::{WORKER_ENV, is_worker};
pub(crate) use settings::{Column, Errored, FaultSettings, Settings};

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::analysis::Analysis;
use crate::trainable::{Trainable, TrainableSpec};
use crate::tuner::RunError;

use model::Factory;
use typed::{TypedFactory, TypedModel};

type C<T> = <T as TrainableSpec>::Config;
type M<T> = <T as TrainableSpec>::Metrics;

/// Runs an experiment of `T` (in child processes when `isolate`): the driver does the
/// work; this only wraps the typed pieces and unwraps the typed analysis.
pub(crate) fn run<T: Trainable>(
    settings: Settings,
    model: TypedModel<T>,
    isolate: bool,
) -> Result<Analysis<C<T>, M<T>>, RunError> {
    if isolate {
        isolation::stopped_limit().map_err(RunError::InvalidOption)?;
    }
    let factory: Arc<dyn Factory> = if isolate {
        Arc::new(TypedFactory::<Isolated<T>>::new())
    } else {
        Arc::new(TypedFactory::<T>::new())
    };
    let analysis = driver::run(settings, Box::new(model), factory)?;
    analysis
        .downcast::<Analysis<C<T>, M<T>>>()
        .map(|a| *a)
        .map_err(|_| RunError::InvalidOption("internal: the analysis has another type".into()))
}

pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for unseeded experiments (recorded in the journal).
pub(crate) fn entropy_seed() -> u64 {
    let nanos =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYY-MM-DD_HH-MM-SS` in UTC.
pub(crate) fn date_stamp() -> String {
    let secs = unix_now() as i64;
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
#[cfg(test)]
mod tests;
