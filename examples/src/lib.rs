//! Runnable examples: `cargo run --release --example NAME`.
