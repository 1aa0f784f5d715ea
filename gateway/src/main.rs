//! `huddle-gateway`: the front door of Huddle, a pingora proxy.
//!
//! It will route `/s/<id>/…` to the session's agent and `port-<N>-<id>.<domain>` to port N of
//! the session pod; check tokens and port visibility; track activity in Redis; hibernate idle
//! sessions into Postgres (sqlx) and wake them on access; serve the REST API that creates
//! sessions; and, on one machine without Kubernetes, start agents itself (as processes, or as
//! containers through bollard) with SQLite instead of Postgres.
//!
//! None of that exists yet: this binary says so and exits with status 2.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("huddle-gateway: the gateway lands with the gateway issue");
    ExitCode::from(2)
}
