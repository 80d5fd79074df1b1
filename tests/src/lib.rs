//! Integration tests of the tune workspace live in `tests/`.
