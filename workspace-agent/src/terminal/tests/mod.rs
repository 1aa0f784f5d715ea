//! Tests against real PTYs running `/bin/sh`. Every wait has a deadline instead of a sleep, so
//! a slow machine makes them slower, not flaky.

mod errors;
mod input;
mod snapshots;
mod viewers;

use std::num::NonZeroU16;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::snapshot::{self, Snapshot};
use super::{Subscription, Terminal, TerminalConfig, TerminalOutput, TerminalSize};

const DEADLINE: Duration = Duration::from_secs(5);

/// `/bin/sh` (dash here: no line editor, so typed input comes back exactly as typed) with a
/// fixed prompt.
fn sh_config() -> TerminalConfig {
    TerminalConfig {
        program: Some("/bin/sh".into()),
        env: vec![("PS1".into(), "$ ".into())],
        ..TerminalConfig::default()
    }
}

fn sh() -> Terminal {
    Terminal::spawn(sh_config()).expect("start /bin/sh on a pty")
}

/// A fresh emulator with the snapshot written into it, as a browser joining late would have.
fn replay(snapshot: &Snapshot) -> vt100::Parser {
    let mut parser = vt100::Parser::new(
        NonZeroU16::new(snapshot.size.rows).expect("rows"),
        NonZeroU16::new(snapshot.size.cols).expect("cols"),
        500,
    );
    parser.process(&snapshot.bytes);
    parser
}

/// Polls `probe` until it returns `Some`, failing after the deadline.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A viewer as the browser is one: applies what it receives to its own emulator.
struct Viewer {
    subscription: Subscription,
    parser: vt100::Parser,
    raw: Vec<u8>,
    resyncs: usize,
    size: TerminalSize,
    exit_code: Option<u32>,
}

impl Viewer {
    fn new(terminal: &Terminal) -> Self {
        let (snapshot, subscription) = terminal.subscribe();
        Self::starting_from(snapshot, subscription)
    }

    fn starting_from(snapshot: Snapshot, subscription: Subscription) -> Self {
        Self {
            subscription,
            parser: replay(&snapshot),
            raw: Vec::new(),
            resyncs: 0,
            size: snapshot.size,
            exit_code: None,
        }
    }

    fn apply(&mut self, output: TerminalOutput) {
        match output {
            TerminalOutput::Chunk(bytes) => {
                self.parser.process(&bytes);
                self.raw.extend_from_slice(&bytes);
            }
            TerminalOutput::Resync(snapshot) => {
                self.resyncs += 1;
                self.size = snapshot.size;
                self.parser = replay(&snapshot);
            }
            TerminalOutput::Exited(code) => self.exit_code = Some(code),
        }
    }

    fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    fn text(&self) -> String {
        snapshot::plain_text(self.parser.screen())
    }

    /// Applies output until `done` holds, failing after the deadline.
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            match timeout_at(deadline, self.subscription.next()).await {
                Ok(Some(output)) => self.apply(output),
                Ok(None) => panic!("output ended before {what}; saw:\n{}", self.text()),
                Err(_) => panic!("timed out waiting for {what}; saw:\n{}", self.text()),
            }
        }
    }
}
