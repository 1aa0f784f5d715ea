//! The three threads behind every terminal. PTY reads and writes and `wait()` are blocking
//! calls, so each gets a plain thread instead of occupying a tokio worker.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use portable_pty::Child;
use tokio::sync::mpsc;

use super::shared::Shared;

/// How long the exit is held back for the reader to drain the shell's last output, so that a
/// viewer sees e.g. the final `logout` before `Exited`. A background job that keeps the PTY
/// open (`sleep 100 &`) would otherwise delay the exit forever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Copies everything the shell prints into the emulator and the viewers' queue, until the PTY
/// reports end of file (on Linux: EIO once no process holds the terminal open any more).
pub(crate) fn spawn_reader(
    mut pty: Box<dyn Read + Send>,
    shared: Arc<Shared>,
    drained: std_mpsc::Sender<()>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("terminal-reader".into())
        .spawn(move || {
            let mut buf = vec![0_u8; 8 * 1024];
            loop {
                match pty.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => shared.output(&buf[..n]),
                    Err(error) if error.kind() == ErrorKind::Interrupted => {}
                    Err(error) => {
                        tracing::debug!(%error, "terminal output closed");
                        break;
                    }
                }
            }
            let _ = drained.send(());
        })?;
    Ok(())
}

/// Writes each queued input whole, in queue order. Ends when the terminal is dropped (the queue
/// closes) or the PTY refuses input.
pub(crate) fn spawn_writer(
    mut pty: Box<dyn Write + Send>,
    mut input: mpsc::Receiver<Bytes>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("terminal-writer".into())
        .spawn(move || {
            // No tokio runtime on this thread, so blocking_recv is allowed.
            while let Some(bytes) = input.blocking_recv() {
                if let Err(error) = pty.write_all(&bytes).and_then(|()| pty.flush()) {
                    tracing::debug!(%error, "terminal input closed");
                    break;
                }
            }
        })?;
    Ok(())
}

/// Waits for the shell to exit, lets the reader drain, then tells the viewers.
pub(crate) fn spawn_waiter(
    mut child: Box<dyn Child + Send + Sync>,
    shared: Arc<Shared>,
    drained: std_mpsc::Receiver<()>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("terminal-waiter".into())
        .spawn(move || {
            let code = match child.wait() {
                Ok(status) => status.exit_code(),
                Err(error) => {
                    tracing::warn!(%error, "could not wait for the terminal's shell");
                    1
                }
            };
            let _ = drained.recv_timeout(DRAIN_GRACE);
            tracing::info!(code, "terminal shell exited");
            shared.exited(code);
        })?;
    Ok(())
}
