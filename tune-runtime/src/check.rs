//! `validate_save_restore`: the check behind the `#[test]` that `#[trainable]` generates.
//!
//! SKELETON: the trainable helper implements this module.

/// Why a trainable failed the save/restore check.
#[derive(Debug, thiserror::Error)]
#[error("save/restore check failed")]
pub struct SaveRestoreError;

/// Checks that a trainable restored from a checkpoint continues exactly like the original.
pub fn validate_save_restore() {}
/// Like [`validate_save_restore`] with options.
pub fn validate_save_restore_with() {}
/// Panicking form, called by generated tests.
pub fn check_save_restore() {}
/// Panicking form for function trainables, called by generated tests.
pub fn check_function_trainable() {}
