//! Huddle's end-to-end tests. They live under `tests/` in this crate and run against the local
//! cluster that `huddle-test-harness` drives; this library holds what several of them share.

pub mod agent_ws;
