//! The operator's configuration: flags, each with an environment variable so the Helm chart
//! can set them.

use clap::Parser;
use std::net::SocketAddr;

/// Runs Huddle's Session controller.
#[derive(Debug, Clone, Parser)]
#[command(name = "huddle-operator", version)]
pub struct Config {
    /// Workspace agent image for sessions that do not name one.
    #[arg(
        long,
        env = "HUDDLE_AGENT_IMAGE",
        default_value = "ghcr.io/huddle-dev/huddle-agent:latest"
    )]
    pub agent_image: String,

    /// Pull policy of the agent container (`IfNotPresent`, `Always` or `Never`).
    #[arg(
        long,
        env = "HUDDLE_AGENT_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub agent_image_pull_policy: String,

    /// The gateway's public base URL; session and port URLs in status are built from it.
    #[arg(
        long,
        env = "HUDDLE_PUBLIC_URL",
        default_value = "http://localhost:8080"
    )]
    pub public_url: url::Url,

    /// Where a new session pod fetches its snapshot to restore, with `{namespace}` and `{name}`
    /// replaced. Unset: pods start without restoring.
    #[arg(long, env = "HUDDLE_RESTORE_URL")]
    pub restore_url: Option<String>,

    /// Watch Sessions in this namespace only; all namespaces when unset.
    #[arg(long, env = "HUDDLE_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Namespace of the leader-election Lease; normally the operator's own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, env = "HUDDLE_LEASE_NAME", default_value = "huddle-operator")]
    pub lease_name: String,

    /// This replica's identity in the Lease; normally its pod name.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Master key (at least 32 bytes) the gateway also holds. Each session pod gets only the key
    /// derived from it for that session, through a Secret. Unset: pods get no key, and nobody
    /// can join them.
    #[arg(long, env = "HUDDLE_TOKEN_KEY", hide_env_values = true)]
    pub token_key: Option<String>,

    /// ICE servers for voice, as a JSON array of RTCIceServer objects (TURN URLs and their
    /// credentials). Each session's agent gets them through its Secret (so never in a pod
    /// spec) and hands them to the browsers; needs the master key, which makes that Secret.
    #[arg(long, env = "HUDDLE_ICE_SERVERS", hide_env_values = true)]
    pub ice_servers: Option<String>,

    /// The shared secret of a TURN server run with coturn's `--use-auth-secret`: every TURN
    /// server in the ICE servers that has no credentials gets time-limited ones for the session
    /// (see `turn`). The secret itself never reaches a session.
    #[arg(long, env = "HUDDLE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Address of the `/metrics` and `/healthz` server.
    #[arg(long, env = "HUDDLE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
}

impl Config {
    /// The ICE servers for one session's agent: as configured, with TURN credentials for that
    /// session when a TURN secret is set. Malformed JSON is passed on as it is (and logged): the
    /// browser then reports what it cannot use.
    pub fn ice_servers_for(&self, session: &str) -> Option<String> {
        let servers = self.ice_servers.as_deref()?;
        let Some(secret) = self.turn_secret.as_deref() else {
            return Some(servers.to_owned());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        match crate::turn::with_credentials(servers, secret, session, now) {
            Ok(servers) => Some(servers),
            Err(error) => {
                tracing::warn!(%error, "HUDDLE_ICE_SERVERS: no TURN credentials added");
                Some(servers.to_owned())
            }
        }
    }

    /// The URL participants open for session `name`.
    pub fn session_url(&self, name: &str) -> String {
        let base = self.public_url.as_str().trim_end_matches('/');
        format!("{base}/s/{name}/")
    }

    /// The URL of forwarded port `port` of session `name`: `port-<port>-<name>.<host>`.
    pub fn port_url(&self, name: &str, port: i32) -> String {
        let mut url = self.public_url.clone();
        let host = url.host_str().unwrap_or("localhost").to_owned();
        // Setting a host that is a valid DNS name on an http(s) URL cannot fail; keep the
        // base URL's host if it somehow does.
        let _ = url.set_host(Some(&format!("port-{port}-{name}.{host}")));
        url.set_path("/");
        url.to_string()
    }

    /// The master signing key, if one is configured.
    pub fn master_key(
        &self,
    ) -> Result<Option<huddle_protocol::token::TokenKey>, huddle_protocol::token::TokenError> {
        self.token_key
            .as_ref()
            .map(|key| huddle_protocol::token::TokenKey::new(key.as_bytes().to_vec()))
            .transpose()
    }

    /// The restore URL for one session, if restoring is configured.
    pub fn restore_url_for(&self, namespace: &str, name: &str) -> Option<String> {
        self.restore_url.as_ref().map(|template| {
            template
                .replace("{namespace}", namespace)
                .replace("{name}", name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(public_url: &str) -> Config {
        Config::parse_from(["huddle-operator", "--public-url", public_url])
    }

    #[test]
    fn session_and_port_urls() {
        let config = config("https://huddle.example.com");
        assert_eq!(
            config.session_url("abc"),
            "https://huddle.example.com/s/abc/"
        );
        assert_eq!(
            config.port_url("abc", 3000),
            "https://port-3000-abc.huddle.example.com/"
        );
    }

    #[test]
    fn port_url_keeps_a_non_default_port() {
        let config = config("http://localhost:8080/");
        assert_eq!(config.session_url("x1"), "http://localhost:8080/s/x1/");
        assert_eq!(
            config.port_url("x1", 5173),
            "http://port-5173-x1.localhost:8080/"
        );
    }

    #[test]
    fn restore_url_template() {
        let mut config = config("http://h");
        assert_eq!(config.restore_url_for("ns", "s"), None);
        config.restore_url = Some("http://gw:8081/internal/{namespace}/{name}/snapshot".into());
        assert_eq!(
            config.restore_url_for("ns", "s").as_deref(),
            Some("http://gw:8081/internal/ns/s/snapshot")
        );
    }
}
