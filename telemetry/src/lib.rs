//! Logging setup shared by every Huddle binary: `tracing` events to stderr, filtered by
//! `RUST_LOG` (default `info`).
//!
//! Set `HUDDLE_LOG_FORMAT=json` for one JSON object per line, which is what a cluster's log
//! collector wants; the default is the human-readable format.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("HUDDLE_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
