//! Integration tests of the tune workspace live in `tests/`; this library holds what they
//! and the benchmark binaries share.

pub mod relay;
pub mod s3;
