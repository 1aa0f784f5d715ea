//! `huddle-ot`: the collaborative editing core, central-server operational transformation
//! (Jupiter / ot.js).
//!
//! - [`operation`]: text operations, `compose`, `transform`, the ot.js JSON wire format;
//! - [`document`]: the server's authoritative copy of a file (revision, bounded history, dedupe);
//! - [`client`]: the client state machine, the reference for the TypeScript client;
//! - [`cursor`]: transforming cursors/selections and (line, column) conversion;
//! - [`checksum`]: the CRC-32 broadcast to detect divergence.
//!
//! Positions and lengths everywhere are Unicode code points. The networking (messages, rooms,
//! broadcast) lives in the agent; this crate is pure and synchronous.

pub mod checksum;
pub mod client;
pub mod cursor;
pub mod document;
pub mod operation;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod simulation;

pub use client::{Client, ClientError, State, Submission};
pub use cursor::{Bias, LineCol, Range, Selection};
pub use document::{AppliedOp, ClientId, DocError, Document, Outcome};
pub use operation::{Component, OtError, TextOperation};
