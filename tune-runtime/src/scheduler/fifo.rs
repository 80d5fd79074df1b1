//! First in, first out: every trial runs until its stop criteria end it.

use super::{Decision, Scheduler};
use crate::metrics::Metrics;
use crate::space::Space;
use crate::trial::{TrialId, TrialResult};

/// The default scheduler: never pauses or stops a trial, starts trials in creation order.
#[derive(Debug, Clone, Copy, Default)]
pub struct FifoScheduler;

impl FifoScheduler {
    /// The scheduler.
    pub fn new() -> Self {
        Self
    }
}

impl<C: Space, M: Metrics> Scheduler<C, M> for FifoScheduler {
    fn name(&self) -> &str {
        "FIFO"
    }

    fn always_continues(&self) -> bool {
        true
    }

    fn on_trial_result(&mut self, _trial: TrialId, _result: &TrialResult<M>) -> Decision {
        Decision::Continue
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::{Cfg, Score};

    #[test]
    fn runs_pending_trials_first_in_order() {
        let mut s = FifoScheduler;
        let pick = <FifoScheduler as Scheduler<Cfg, Score>>::choose_trial_to_run(
            &mut s,
            &[TrialId(3), TrialId(4)],
            &[TrialId(1)],
        );
        assert_eq!(pick, Some(TrialId(3)));
        let pick = <FifoScheduler as Scheduler<Cfg, Score>>::choose_trial_to_run(
            &mut s,
            &[],
            &[TrialId(1)],
        );
        assert_eq!(pick, Some(TrialId(1)));
        assert_eq!(<FifoScheduler as Scheduler<Cfg, Score>>::name(&s), "FIFO");
    }
}
