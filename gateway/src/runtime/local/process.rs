//! Agents as child processes of the gateway, each on its own loopback port.
//!
//! On one machine there is no pod network: every agent's forwarded ports are this machine's
//! loopback ports. That is the point of the one-machine mode (your dev server on :3000 is
//! `port-3000-<id>.localhost`); the Docker launcher gives each session its own address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use super::{LaunchSpec, Launched, Launcher};
use crate::runtime::{Result, RuntimeError};
use crate::store::SessionId;

/// How long an agent gets to save its documents after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Starts `huddle-agent` processes.
pub struct ProcessLauncher {
    program: PathBuf,
    logs: PathBuf,
    children: Mutex<HashMap<SessionId, Child>>,
}

impl ProcessLauncher {
    /// `program` is the agent binary; each agent's output goes to `<logs>/<id>.log`.
    pub fn new(program: PathBuf, logs: PathBuf) -> Self {
        Self {
            program,
            logs,
            children: Mutex::default(),
        }
    }

    /// `huddle-agent` next to the running gateway binary.
    pub fn default_program() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("huddle-agent")))
            .unwrap_or_else(|| PathBuf::from("huddle-agent"))
    }
}

fn free_loopback_port() -> std::io::Result<u16> {
    // Bound and released at once: the agent binds it a moment later. Another program taking
    // it in between makes the agent fail to start, which is reported, not hidden.
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SIGTERM lets the agent write open documents back; std has no safe kill(2) with a
        // signal, and the workspace forbids unsafe code, so kill(1) sends it.
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

#[async_trait]
impl Launcher for ProcessLauncher {
    async fn start(&self, spec: &LaunchSpec) -> Result<Launched> {
        let launch_error =
            |what: &str, error: std::io::Error| RuntimeError::Launch(format!("{what}: {error}"));
        tokio::fs::create_dir_all(&spec.workspace)
            .await
            .map_err(|e| launch_error("creating the workspace", e))?;
        tokio::fs::create_dir_all(&self.logs)
            .await
            .map_err(|e| launch_error("creating the log folder", e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", spec.id)))
            .map_err(|e| launch_error("opening the agent log", e))?;
        let stderr = log
            .try_clone()
            .map_err(|e| launch_error("opening the agent log", e))?;
        let port = free_loopback_port().map_err(|e| launch_error("finding a free port", e))?;
        let agent = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let child = Command::new(&self.program)
            .env("HUDDLE_AGENT_ADDR", agent.to_string())
            .env("HUDDLE_SESSION_ID", spec.id.as_str())
            .env("HUDDLE_WORKSPACE", &spec.workspace)
            .env("HUDDLE_TOKEN_KEY", &spec.token_key)
            // If the gateway is killed outright its agents notice and stop too.
            .env("HUDDLE_PARENT_PID", std::process::id().to_string())
            .env_remove("HUDDLE_RESTORE_URL")
            // The gateway's own secrets stay with the gateway.
            .env_remove("HUDDLE_ADMIN_TOKEN")
            .env_remove("HUDDLE_DATABASE_URL")
            .env_remove("HUDDLE_REDIS_URL")
            .current_dir(&spec.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| launch_error(&format!("starting {}", self.program.display()), e))?;
        tracing::info!(session = %spec.id, %agent, pid = child.id(), "agent process started");
        if let Some(mut old) = self.children.lock().await.insert(spec.id.clone(), child) {
            let _ = old.kill().await;
        }
        Ok(Launched {
            agent,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
    }

    async fn is_running(&self, id: &SessionId) -> bool {
        let mut children = self.children.lock().await;
        match children.get_mut(id) {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    async fn stop(&self, id: &SessionId) -> Result<()> {
        let child = self.children.lock().await.remove(id);
        if let Some(mut child) = child {
            terminate(&mut child).await;
        }
        Ok(())
    }

    async fn stop_all(&self) {
        let children: Vec<Child> = self.children.lock().await.drain().map(|(_, c)| c).collect();
        futures::future::join_all(children.into_iter().map(|mut child| async move {
            terminate(&mut child).await;
        }))
        .await;
    }
}
