//! The public searcher types: each a `ModelSearcher` of one algorithm with the options
//! every searcher shares.

/// Declares a public searcher type wrapping `ModelSearcher<C, $algo>`.
macro_rules! searcher_type {
    ($(#[$meta:meta])* $name:ident, $algo:ty) => {
        $(#[$meta])*
        pub struct $name<C> {
            pub(crate) inner: $crate::searcher::core::ModelSearcher<C, $algo>,
        }

        impl<C: $crate::space::Space> ::std::fmt::Debug for $name<C> {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name)).field("algo", &self.inner.algo).finish()
            }
        }

        impl<C: $crate::space::Space> $name<C> {
            /// Configs to try first, in order, before any the algorithm picks (Ray Tune's
            /// `points_to_evaluate`). Their results count like any other.
            pub fn points_to_evaluate(mut self, points: Vec<C>) -> Self {
                self.inner.set_points(points);
                self
            }

            /// A seed of its own instead of the experiment's.
            pub fn seed(mut self, seed: u64) -> Self {
                self.inner.set_seed(seed);
                self
            }

            /// Trials evaluated before the experiment (Optuna's `add_trials`): each config
            /// with its metrics. They inform the model from the first suggestion on, count
            /// towards the startup trials, but not towards `num_samples`.
            pub fn warm_start<M: $crate::metrics::Metrics>(
                mut self,
                trials: impl IntoIterator<Item = (C, M)>,
            ) -> Self {
                let rows = trials
                    .into_iter()
                    .map(|(c, m)| (c, $crate::searcher::warm::row_of(&m)))
                    .collect();
                self.inner.add_warm::<M>(rows);
                self
            }

            /// Warm start from a finished experiment: the last result of each of its
            /// trials that ended without error (see [`Self::warm_start`]).
            pub fn warm_start_from<M: $crate::metrics::Metrics>(
                mut self,
                analysis: &$crate::Analysis<C, M>,
            ) -> Self {
                self.inner.add_warm::<M>($crate::searcher::warm::rows_of(analysis));
                self
            }
        }

        impl<C: $crate::space::Space, M: $crate::metrics::Metrics>
            $crate::searcher::Searcher<C, M> for $name<C>
        {
            fn setup(&mut self, num_samples: usize, seed: u64) {
                <_ as $crate::searcher::Searcher<C, M>>::setup(&mut self.inner, num_samples, seed)
            }
            fn set_objective(&mut self, metric: $crate::trial::Key<M>, mode: $crate::trial::Mode) {
                <_ as $crate::searcher::Searcher<C, M>>::set_objective(&mut self.inner, metric, mode)
            }
            fn set_objectives(
                &mut self,
                objectives: &$crate::objectives::Objectives<M>,
            ) -> Result<(), $crate::searcher::UnsupportedObjectives> {
                <_ as $crate::searcher::Searcher<C, M>>::set_objectives(&mut self.inner, objectives)
            }
            fn suggest(&mut self, trial: $crate::trial::TrialId) -> $crate::searcher::Suggestion<C> {
                <_ as $crate::searcher::Searcher<C, M>>::suggest(&mut self.inner, trial)
            }
            fn total_trials(&self) -> Option<usize> {
                <_ as $crate::searcher::Searcher<C, M>>::total_trials(&self.inner)
            }
            fn on_trial_result(
                &mut self,
                trial: $crate::trial::TrialId,
                result: &$crate::trial::TrialResult<M>,
            ) {
                self.inner.on_trial_result(trial, result)
            }
            fn on_trial_complete(
                &mut self,
                trial: $crate::trial::TrialId,
                last: Option<&$crate::trial::TrialResult<M>>,
                error: bool,
            ) {
                self.inner.on_trial_complete(trial, last, error)
            }
            fn on_trial_complete_value(&mut self, trial: $crate::trial::TrialId, value: Option<f64>) {
                <_ as $crate::searcher::Searcher<C, M>>::on_trial_complete_value(
                    &mut self.inner,
                    trial,
                    value,
                )
            }
            fn save_state(&self) -> ::serde_json::Value {
                <_ as $crate::searcher::Searcher<C, M>>::save_state(&self.inner)
            }
            fn restore_state(
                &mut self,
                state: ::serde_json::Value,
            ) -> Result<(), $crate::state::StateError> {
                <_ as $crate::searcher::Searcher<C, M>>::restore_state(&mut self.inner, state)
            }
        }
    };
}
pub(crate) use searcher_type;
