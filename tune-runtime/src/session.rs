//! The function API: a training function reports each step through a [`Session`].
//!
//! SKELETON: the trainable helper implements this module (see the API below).

use crate::metrics::Metrics;
use crate::trainable::TrialContext;

/// The runner's request to stop: returned by [`Session::report`] when the trial must end.
/// Propagate it with `?`; the runner treats it as a normal end, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the trial was stopped by the runner")]
pub struct Stopped;

/// The handle a function trainable reports through.
#[derive(Debug)]
pub struct Session<M: Metrics> {
    ctx: TrialContext,
    _m: std::marker::PhantomData<M>,
}

impl<M: Metrics> Session<M> {
    /// The trial's context.
    pub fn context(&self) -> &TrialContext {
        &self.ctx
    }
}

/// Runs a training function on a thread of its own and steps it one report at a time.
#[derive(Debug)]
pub struct FunctionRunner<C, M> {
    _p: std::marker::PhantomData<(C, M)>,
}
