//! The gateway's configuration: flags, each with an environment variable so the Helm chart and
//! `scripts/run` can set them. The defaults are the one-machine setup: agents as local
//! processes, SQLite in the data folder, the in-process registry, everything on loopback.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where session agents run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// `Session` custom resources; the operator starts the pods.
    Kubernetes,
    /// `huddle-agent` child processes on this machine.
    Process,
    /// Containers through the Docker API (Docker or podman), with bollard.
    Docker,
}

/// Runs Huddle's gateway.
#[derive(Debug, Clone, Parser)]
#[command(name = "huddle-gateway", version)]
pub struct Config {
    /// Address browsers connect to.
    #[arg(long, env = "HUDDLE_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// Address of the gateway's own HTTP server: the REST API and pages behind the proxy, and
    /// the snapshot store agents restore from. Keep it off the public network.
    #[arg(long, env = "HUDDLE_INTERNAL_LISTEN", default_value = "127.0.0.1:8001")]
    pub internal_listen: SocketAddr,

    /// The URL people open. Its host is the session domain: ports are served at
    /// `port-<N>-<id>.<host>`.
    #[arg(
        long,
        env = "HUDDLE_PUBLIC_URL",
        default_value = "http://localhost:8000"
    )]
    pub public_url: url::Url,

    /// The URL agents use to reach the internal server (to restore snapshots). Defaults to
    /// `http://<internal-listen>`.
    #[arg(long, env = "HUDDLE_INTERNAL_URL")]
    pub internal_url: Option<url::Url>,

    /// Where session agents run.
    #[arg(long, env = "HUDDLE_RUNTIME", value_enum, default_value = "process")]
    pub runtime: RuntimeKind,

    /// `postgres://…` or `sqlite://…`; defaults to SQLite in the data folder.
    #[arg(long, env = "HUDDLE_DATABASE_URL")]
    pub database_url: Option<String>,

    /// `redis://…`; unset: an in-process registry (one gateway replica only).
    #[arg(long, env = "HUDDLE_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Master signing key (at least 32 bytes). Each session's tokens are signed with a key
    /// derived from it. Unset on one machine: a key is generated once into the data folder.
    #[arg(long, env = "HUDDLE_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,

    /// Bearer token that may use every API call (list all sessions, create when creation is
    /// closed, manage any session).
    #[arg(long, env = "HUDDLE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Let anyone who can reach the gateway create sessions. Set false to require the admin
    /// token for `POST /api/sessions`.
    #[arg(long, env = "HUDDLE_OPEN_CREATION", default_value_t = true, action = clap::ArgAction::Set)]
    pub open_creation: bool,

    /// Folder for the one-machine runtimes: SQLite database, generated key, workspaces.
    #[arg(long, env = "HUDDLE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Namespace for the Session resources the gateway creates (Kubernetes runtime).
    #[arg(long, env = "HUDDLE_SESSION_NAMESPACE", default_value = "default")]
    pub session_namespace: String,

    /// The built browser UI (`web/dist`): the gateway serves its landing page, and agents it
    /// starts as processes inherit the variable and serve the IDE from it. Without a build the
    /// gateway shows a plain built-in landing page.
    #[arg(long, env = "HUDDLE_WEB_DIR", default_value = huddle_web::DEFAULT_WEB_DIR)]
    pub web_dir: PathBuf,

    /// The agent program (process runtime). Default: `huddle-agent` beside this binary.
    #[arg(long, env = "HUDDLE_AGENT_BINARY")]
    pub agent_binary: Option<PathBuf>,

    /// The agent image (Docker runtime).
    #[arg(
        long,
        env = "HUDDLE_AGENT_IMAGE",
        default_value = "localhost/huddle-agent:dev"
    )]
    pub agent_image: String,

    /// Docker API socket (Docker runtime); podman serves the same API.
    #[arg(
        long,
        env = "DOCKER_HOST",
        default_value = "unix:///run/podman/podman.sock"
    )]
    pub docker_host: String,

    /// Idle timeout of sessions created without one.
    #[arg(long, env = "HUDDLE_DEFAULT_IDLE_TIMEOUT", value_parser = parse_duration, default_value = "30m")]
    pub default_idle_timeout: Duration,

    /// How often the leader looks for idle sessions.
    #[arg(long, env = "HUDDLE_GC_INTERVAL", value_parser = parse_duration, default_value = "15s")]
    pub gc_interval: Duration,

    /// How long before an idle or lifetime stop connected people are warned.
    #[arg(long, env = "HUDDLE_STOP_WARNING", value_parser = parse_duration, default_value = "60s")]
    pub stop_warning: Duration,

    /// Activity is written to the registry and the database at most this often per session.
    #[arg(long, env = "HUDDLE_ACTIVITY_FLUSH", value_parser = parse_duration, default_value = "5s")]
    pub activity_flush: Duration,

    /// How long invite links stay valid.
    #[arg(long, env = "HUDDLE_INVITE_TTL", value_parser = parse_duration, default_value = "7d")]
    pub invite_ttl: Duration,

    /// API requests per second allowed from one client address (burst: 3x).
    #[arg(long, env = "HUDDLE_API_RATE", default_value_t = 20)]
    pub api_rate: u32,

    /// Largest request body proxied to a session (uploads); larger gets 413.
    #[arg(long, env = "HUDDLE_MAX_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Proxy worker threads.
    #[arg(long, env = "HUDDLE_THREADS", default_value_t = 2)]
    pub threads: usize,

    /// This replica's name in the registry (connection counts, GC leadership).
    #[arg(long, env = "POD_NAME")]
    pub replica: Option<String>,

    /// Take the listening sockets over from a running gateway (pingora graceful upgrade): start
    /// the new binary with `--upgrade`, then send SIGQUIT to the old one.
    #[arg(long)]
    pub upgrade: bool,

    /// Unix socket the listening sockets are handed over on during an upgrade.
    #[arg(
        long,
        env = "HUDDLE_UPGRADE_SOCKET",
        default_value = "/tmp/huddle-gateway-upgrade.sock"
    )]
    pub upgrade_socket: PathBuf,

    /// Seconds a stopping gateway keeps serving open connections (SIGTERM or upgrade).
    #[arg(long, env = "HUDDLE_GRACE_SECONDS", default_value_t = 10)]
    pub grace_seconds: u64,
}

impl Config {
    /// The session domain: the public URL's host, lowercased.
    pub fn domain(&self) -> String {
        self.public_url
            .host_str()
            .unwrap_or("localhost")
            .to_ascii_lowercase()
    }

    /// Whether cookies must be `Secure` (the public URL is https).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// The base URL agents reach the internal server at.
    pub fn internal_base_url(&self) -> String {
        match &self.internal_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.internal_listen),
        }
    }

    /// The data folder, defaulting to `$HOME/.local/share/huddle`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            home.join(".local/share/huddle")
        })
    }
}

/// Parses `90s`, `30m`, `2h`, `7d` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "ms" => return Ok(Duration::from_millis(number)),
        _ => return Err(format!("{text:?}: unknown unit {unit:?}")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn domain_and_defaults() {
        let config = Config::parse_from([
            "huddle-gateway",
            "--public-url",
            "https://Huddle.Example.com",
        ]);
        assert_eq!(config.domain(), "huddle.example.com");
        assert!(config.secure_cookies());
        assert_eq!(config.runtime, RuntimeKind::Process);
        assert_eq!(config.internal_base_url(), "http://127.0.0.1:8001");
    }
}
