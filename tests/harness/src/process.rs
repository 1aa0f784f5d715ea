//! Huddle's own binaries started as real processes for a test, logging to the artifacts folder
//! and killed when the test drops them.

use anyhow::{Context as _, Result, bail};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running binary of this workspace. Killed (SIGKILL) on drop; [`Process::terminate`] stops
/// it the way Kubernetes would (SIGTERM) and waits.
pub struct Process {
    name: String,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// Starts workspace binary `binary` (built by `cargo test`, next to the test executable)
    /// with `args`, logging stderr and stdout to `<artifacts>/<log_name>.log`.
    pub fn start(binary: &str, log_name: &str, args: &[String]) -> Result<Self> {
        let path = workspace_binary(binary)?;
        let log = artifacts_dir()?.join(format!("{log_name}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&path)
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self {
            name: log_name.to_owned(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(mut self) -> Result<()> {
        signal(self.child.id(), "TERM")?;
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        bail!("{} did not exit within 10 s of SIGTERM", self.name)
    }

    /// Kills the process without warning, as a crash or a node failure would.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// The process's log so far (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) -> Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// Path of a binary built from this workspace: next to the `deps` folder holding the running
/// test executable.
pub fn workspace_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no parent folder")?;
    let path = dir.join(name);
    if !path.exists() {
        bail!(
            "{} not found; build it with `cargo build -p {name}`",
            path.display()
        );
    }
    Ok(path)
}

/// Where tests write logs and screenshots: `$HUDDLE_ARTIFACTS`, else `target/artifacts`.
pub fn artifacts_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("HUDDLE_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join("huddle-artifacts"),
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A free loopback port for a server under test (bound then released; the test starts its
/// server on it right away).
pub fn free_local_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
