//! Warm start: trials evaluated before the experiment, as result rows.

use crate::analysis::Analysis;
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{Auto, TrialStatus};

/// The result row (metrics, then the automatic fields) of metrics reported once.
pub(crate) fn row_of<M: Metrics>(m: &M) -> Vec<f64> {
    let mut row: Vec<f64> = (0..M::NAMES.len()).map(|i| m.value(i)).collect();
    // training_iteration 1; no times.
    row.extend([1.0, 0.0, 0.0, 0.0]);
    debug_assert_eq!(row.len(), M::NAMES.len() + Auto::ALL.len());
    row
}

/// The config and last result row of each trial of `analysis` that ended without error.
pub(crate) fn rows_of<C: Space, M: Metrics>(analysis: &Analysis<C, M>) -> Vec<(C, Vec<f64>)> {
    analysis
        .trials()
        .iter()
        .filter(|t| t.status() == TrialStatus::Terminated)
        .filter_map(|t| t.last_result().map(|r| (t.config().clone(), r.values().to_vec())))
        .collect()
}
