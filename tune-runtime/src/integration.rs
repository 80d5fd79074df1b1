//! Training frameworks as trials, with nothing hand-written (each behind a feature).
//!
//! - [`burn`](mod@burn) (feature `burn`): a burn `SupervisedTraining` run reports each
//!   epoch's validation metrics, stops and pauses at epoch boundaries, and checkpoints
//!   burn's own records.

#[cfg(feature = "burn")]
pub mod burn;
