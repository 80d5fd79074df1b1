//! Error types shared by the whole crate.

use std::fmt;
use std::path::PathBuf;

/// A config value that lies outside the domain declared for its field.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainViolation {
    /// Dotted path of the field, e.g. `optimizer.lr`.
    pub path: String,
    /// What is wrong and what the domain allows.
    pub message: String,
}

impl fmt::Display for DomainViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

/// An error turning a numeric vector (from a model-based searcher) back into a config.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpaceError {
    /// The vector does not have one entry per dimension.
    #[error("expected {expected} values (one per dimension of the space), got {got}")]
    WrongLength {
        /// `Space::num_dims()` of the space.
        expected: usize,
        /// Length of the vector that was passed.
        got: usize,
    },
    /// An active dimension holds NaN or an infinite value.
    #[error("dimension `{name}` holds {value}, which is not a finite number")]
    NotFinite {
        /// Name of the dimension.
        name: String,
        /// The offending value.
        value: f64,
    },
}

/// An error reading a config from JSON (a config file, `points_to_evaluate`, a journal).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not valid JSON, a key is unknown or missing, or a value has the wrong type.
    #[error("invalid config: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is well formed but some values lie outside their domains.
    #[error("config values outside their domains: {}", join(.0))]
    Domain(Vec<DomainViolation>),
}

fn join(v: &[DomainViolation]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// An error saving or restoring a trainable's checkpoint.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The trainable's state could not be serialized.
    #[error("could not serialize the state of `{trainable}`: {source}")]
    Serialize {
        /// Name of the trainable.
        trainable: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// The checkpoint's bytes do not hold a state of this trainable.
    #[error("could not restore `{trainable}` from its checkpoint: {source}")]
    Deserialize {
        /// Name of the trainable.
        trainable: &'static str,
        /// The deserializer's error (which names the missing or unexpected field).
        source: serde_json::Error,
    },
    /// Reading or writing a checkpoint file failed.
    #[error("checkpoint I/O failed on `{}`: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The trainable's own `save_files`/`restore_files` hook failed.
    #[error("checkpoint hook of `{trainable}` failed: {message}")]
    Hook {
        /// Name of the trainable.
        trainable: &'static str,
        /// The hook's error message.
        message: String,
    },
    /// The binary state file (`state.safetensors`) could not be written or does not hold
    /// the trainable's `#[checkpoint(binary)]` fields.
    #[error("binary checkpoint `{}` of `{trainable}`: {message}", path.display())]
    Tensors {
        /// Name of the trainable.
        trainable: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong (names the field).
        message: String,
    },
    /// A function trainable was asked for a checkpoint but has not made one.
    #[error(
        "`{trainable}` has not made a checkpoint (call `session.checkpoint(&state)` before `report`)"
    )]
    NoCheckpoint {
        /// Name of the trainable.
        trainable: &'static str,
    },
}

/// The runner's request to stop: returned by [`Session::report`](crate::Session::report)
/// when the trial must end. Propagate it with `?`; the runner treats it as a normal end,
/// not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the trial was stopped by the runner")]
pub struct Stopped;

/// Returned by `step` of a function trainable whose function has returned `Ok(())`: the
/// trial is complete. The runner ends the trial normally (see [`TrainError::is_finished`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the training function returned: the trial is finished")]
pub struct Finished;

/// The error type of user training code: any error converts into it with `?`.
///
/// Like `anyhow::Error`, it does not implement `std::error::Error` itself, so that every
/// `E: std::error::Error` can convert into it.
pub struct TrainError {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// `Result` with [`TrainError`] as the error type.
pub type TrainResult<T> = Result<T, TrainError>;

impl TrainError {
    /// An error with a plain message.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self { inner: message.to_string().into() }
    }

    /// The underlying error.
    pub fn source_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// Whether this error is the runner's request to stop (see [`crate::Stopped`]).
    pub fn is_stop(&self) -> bool {
        self.inner.is::<Stopped>()
    }

    /// Whether this error says that a function trainable's function has returned: the
    /// trial is complete and ends normally (see [`crate::Finished`]).
    pub fn is_finished(&self) -> bool {
        self.inner.is::<Finished>()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TrainError {
    fn from(e: E) -> Self {
        Self { inner: Box::new(e) }
    }
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)?;
        let mut source = self.inner.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// The `Debug` form of the public error types is their message (`Display`), so that
/// `fn main() -> Result<(), E>` and `unwrap()` print what went wrong and what to change,
/// not the variant's fields. (`RunError` does the same in `tuner.rs`.)
macro_rules! debug_is_display {
    ($($ty:ty),* $(,)?) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    )*};
}

debug_is_display!(
    TrainError,
    SpaceError,
    ConfigError,
    CheckpointError,
    crate::analysis::AnalysisError,
    crate::journal::JournalError,
    crate::state::StateError,
    crate::scheduler::SchedulerError,
    crate::scheduler::ReplayError,
    crate::trainable::InvalidResources,
    crate::searcher::UnsupportedObjectives,
    crate::searcher::UnsupportedSpace,
    crate::check::SaveRestoreError,
);
