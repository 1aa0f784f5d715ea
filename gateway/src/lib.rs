//! `huddle-gateway` as a library: the parts of the gateway that tests (and, later, the binary)
//! use. See `main.rs` for what the gateway does.

pub mod store;
