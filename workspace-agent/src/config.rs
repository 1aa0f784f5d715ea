//! The agent's configuration, read from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HUDDLE_AGENT_ADDR` | address and port to listen on | `0.0.0.0:8080` |
//! | `HUDDLE_SESSION_ID` | the session this agent serves; tokens must name it | `local` |
//! | `HUDDLE_WORKSPACE` | the folder participants share | `/workspace` |
//! | `HUDDLE_TOKEN_KEY` | the key participant tokens are signed with (at least 32 bytes) | none: nobody can join |
//! | `HUDDLE_RESTORE_URL` | where to fetch a snapshot to restore at start (404: start fresh) | none |
//! | `HUDDLE_PARENT_PID` | exit when this process is no longer the agent's parent (the one-machine gateway that started it died) | none |
//! | `HUDDLE_SHELL` | the program terminals run | `$SHELL`, else `/bin/bash`, else `/bin/sh` |
//! | `HUDDLE_ICE_SERVERS` | STUN/TURN servers for browsers, as a JSON `RTCIceServer` list | none |
//! | `HUDDLE_VOICE_UDP_PORTS` | `FIRST-LAST` UDP ports for voice, one per person in voice | any free port |
//! | `HUDDLE_VOICE_PUBLIC_IPS` | comma-separated public (1:1 NAT) addresses to advertise for voice | none |
//!
//! Voice binds its UDP sockets on the listen address's IP (loopback and every interface for
//! `0.0.0.0`); see [`crate::voice::config`] for the details.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use huddle_crds::names;

use crate::voice::{VoiceConfig, VoiceConfigError};

/// The environment variable holding the listen address.
pub const ADDR_VAR: &str = "HUDDLE_AGENT_ADDR";

/// How long open connections may take to finish after a shutdown signal before the agent exits
/// anyway. Long-lived WebSockets would otherwise hold the pod until the kubelet kills it
/// (after `terminationGracePeriodSeconds`, 30 s by default).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the agent reads at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    pub session_id: String,
    pub workspace: std::path::PathBuf,
    /// The token signing key; `None` means no token can be valid.
    pub token_key: Option<String>,
    pub shell: Option<String>,
    pub restore_url: Option<String>,
    /// The process that started this agent and whose death ends it.
    pub parent_pid: Option<u32>,
    /// The built browser UI (`web/dist`).
    pub web_dir: std::path::PathBuf,
    pub voice: VoiceConfig,
}

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The listen address did not parse as `IP:PORT`.
    #[error("{ADDR_VAR}={value:?} is not an IP:PORT address")]
    InvalidAddr {
        /// The value as found in the environment.
        value: String,
        /// Why it did not parse.
        #[source]
        source: std::net::AddrParseError,
    },
    #[error(transparent)]
    Voice(#[from] VoiceConfigError),
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the configuration through `lookup`, which maps a variable name to its value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let addr = match lookup(ADDR_VAR) {
            Some(value) => value
                .parse()
                .map_err(|source| ConfigError::InvalidAddr { value, source })?,
            None => default_addr(),
        };
        let voice = VoiceConfig::from_lookup(&lookup, addr)?;
        Ok(Self {
            addr,
            session_id: lookup("HUDDLE_SESSION_ID").unwrap_or_else(|| "local".to_owned()),
            workspace: lookup("HUDDLE_WORKSPACE")
                .unwrap_or_else(|| "/workspace".to_owned())
                .into(),
            token_key: lookup("HUDDLE_TOKEN_KEY").filter(|key| !key.is_empty()),
            shell: lookup("HUDDLE_SHELL").filter(|shell| !shell.is_empty()),
            restore_url: lookup("HUDDLE_RESTORE_URL").filter(|url| !url.is_empty()),
            parent_pid: lookup("HUDDLE_PARENT_PID").and_then(|pid| pid.parse().ok()),
            web_dir: lookup("HUDDLE_WEB_DIR")
                .filter(|dir| !dir.is_empty())
                .unwrap_or_else(|| huddle_web::DEFAULT_WEB_DIR.to_owned())
                .into(),
            voice,
        })
    }
}

/// `0.0.0.0:8080`: every interface of the pod, on the port the operator's probes use.
fn default_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, names::AGENT_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_all_interfaces_on_the_agent_port() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.addr, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn reads_the_address_from_the_environment() {
        let config =
            Config::from_lookup(|var| (var == ADDR_VAR).then(|| "127.0.0.1:9000".into())).unwrap();
        assert_eq!(config.addr, "127.0.0.1:9000".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn voice_binds_where_the_agent_listens_and_bad_voice_settings_are_refused() {
        let config =
            Config::from_lookup(|var| (var == ADDR_VAR).then(|| "127.0.0.1:9000".into())).unwrap();
        assert_eq!(config.voice.bind_ips, vec![config.addr.ip()]);
        let err =
            Config::from_lookup(|var| (var == "HUDDLE_VOICE_UDP_PORTS").then(|| "lots".into()))
                .unwrap_err();
        assert!(err.to_string().contains("HUDDLE_VOICE_UDP_PORTS"), "{err}");
    }

    #[test]
    fn rejects_an_address_without_a_port() {
        let err = Config::from_lookup(|_| Some("localhost".into())).unwrap_err();
        assert!(err.to_string().contains(ADDR_VAR), "{err}");
    }
}
