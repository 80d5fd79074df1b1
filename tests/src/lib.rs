//! Integration tests of the tune workspace live in `tests/`; this library holds what they
//! and the benchmark binaries share.

#[cfg(feature = "object-store-azure")]
pub mod azurite;
pub mod relay;
pub mod s3;
