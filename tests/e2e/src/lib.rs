//! Huddle's end-to-end tests. They live under `tests/` in this crate and run against the local
//! cluster that `huddle-test-harness` drives; this library itself is empty.
