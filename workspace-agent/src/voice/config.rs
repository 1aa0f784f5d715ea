//! How the voice SFU reaches browsers: the ICE servers browsers should use, the UDP ports and
//! addresses the agent's own peer connections bind, and the public addresses it advertises.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HUDDLE_ICE_SERVERS` | JSON list in the browser's `RTCIceServer` shape, e.g. `[{"urls":["turn:turn.example.com:3478"],"username":"u","credential":"p"}]`; handed to browsers by `GET /voice/config` | `[]` |
//! | `HUDDLE_VOICE_UDP_PORTS` | inclusive range `FIRST-LAST` the agent's peer connections bind (one port per person in voice, so at least ten) | any free port |
//! | `HUDDLE_VOICE_PUBLIC_IPS` | comma-separated addresses to advertise as well as the local ones (1:1 NAT, a node's public IP) | none |
//!
//! The agent binds its media sockets on the address it listens on (`HUDDLE_AGENT_ADDR`): a
//! specific address binds only that one (`127.0.0.1` keeps voice on loopback, as the
//! one-machine runtime and the tests do), the unspecified address binds loopback and every
//! interface. Loopback host candidates are advertised like any other: webrtc 0.21 offers each
//! bound socket as a host candidate, and only skips loopback when it expands a wildcard, which
//! is why `127.0.0.1` is listed explicitly rather than left to `0.0.0.0`.
//!
//! The agent's own peer connections use no STUN or TURN server: they answer from their host
//! (and public) addresses, and a browser that cannot reach those directly reaches them through
//! its TURN server's relay. In a cluster that means one of two set-ups: a TURN server that can
//! reach pod addresses (`HUDDLE_ICE_SERVERS`), or a pod whose UDP ports are reachable from
//! browsers (`HUDDLE_VOICE_UDP_PORTS` mapped as host ports, `HUDDLE_VOICE_PUBLIC_IPS` set to the
//! node's public address). Media sockets are IPv4.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;

/// The variable holding the browsers' ICE servers.
pub const ICE_SERVERS_VAR: &str = "HUDDLE_ICE_SERVERS";
/// The variable holding the agent's UDP port range.
pub const UDP_PORTS_VAR: &str = "HUDDLE_VOICE_UDP_PORTS";
/// The variable holding the public addresses to advertise.
pub const PUBLIC_IPS_VAR: &str = "HUDDLE_VOICE_PUBLIC_IPS";

/// Everything the voice SFU is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceConfig {
    /// The STUN and TURN servers browsers should use (`GET /voice/config`).
    pub ice_servers: Vec<IceServer>,
    /// The ports the agent's peer connections may bind; any free port when `None`.
    pub udp_ports: Option<RangeInclusive<u16>>,
    /// Addresses advertised in addition to the local ones, with the same ports.
    pub public_ips: Vec<IpAddr>,
    /// The local addresses media sockets bind (see the module docs).
    pub bind_ips: Vec<IpAddr>,
}

impl Default for VoiceConfig {
    /// Loopback only, any port, no ICE servers: what tests and benchmarks want.
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            udp_ports: None,
            public_ips: Vec::new(),
            bind_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        }
    }
}

/// One entry of a browser's `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServer {
    /// `stun:`, `stuns:`, `turn:` or `turns:` URLs; one string is accepted as a list of one.
    #[serde(deserialize_with = "one_or_many")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A voice setting that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VoiceConfigError {
    #[error("{ICE_SERVERS_VAR} is not a JSON list of ICE servers: {0}")]
    IceServersJson(#[source] serde_json::Error),
    #[error("{ICE_SERVERS_VAR}: {url:?} is not a stun:, stuns:, turn: or turns: URL")]
    IceServerUrl { url: String },
    #[error("{ICE_SERVERS_VAR}: the TURN server {url:?} needs a username and a credential")]
    TurnWithoutCredentials { url: String },
    #[error("{UDP_PORTS_VAR}={value:?} is not a port range like 50000-50100")]
    PortRange { value: String },
    #[error("{PUBLIC_IPS_VAR}: {value:?} is not an IP address")]
    PublicIp { value: String },
}

impl VoiceConfig {
    /// Reads the voice settings through `lookup`; media sockets bind next to `listen`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        listen: SocketAddr,
    ) -> Result<Self, VoiceConfigError> {
        let non_empty = |var: &str| lookup(var).filter(|value| !value.trim().is_empty());
        let ice_servers = match non_empty(ICE_SERVERS_VAR) {
            Some(json) => parse_ice_servers(&json)?,
            None => Vec::new(),
        };
        let udp_ports = non_empty(UDP_PORTS_VAR)
            .map(|value| parse_port_range(&value))
            .transpose()?;
        let public_ips = match non_empty(PUBLIC_IPS_VAR) {
            Some(list) => parse_ips(&list)?,
            None => Vec::new(),
        };
        Ok(Self {
            ice_servers,
            udp_ports,
            public_ips,
            bind_ips: bind_ips_for(listen.ip()),
        })
    }
}

/// Loopback plus every interface for an unspecified listen address, else just that address.
fn bind_ips_for(listen: IpAddr) -> Vec<IpAddr> {
    if listen.is_unspecified() {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ]
    } else {
        vec![listen]
    }
}

fn parse_ice_servers(json: &str) -> Result<Vec<IceServer>, VoiceConfigError> {
    let servers: Vec<IceServer> =
        serde_json::from_str(json).map_err(VoiceConfigError::IceServersJson)?;
    for server in &servers {
        for url in &server.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            let is_turn = matches!(scheme, "turn" | "turns");
            let known = is_turn || matches!(scheme, "stun" | "stuns");
            if !known || url.len() <= scheme.len() + 1 {
                return Err(VoiceConfigError::IceServerUrl { url: url.clone() });
            }
            let has = |value: &Option<String>| value.as_deref().is_some_and(|v| !v.is_empty());
            if is_turn && !(has(&server.username) && has(&server.credential)) {
                return Err(VoiceConfigError::TurnWithoutCredentials { url: url.clone() });
            }
        }
    }
    Ok(servers)
}

fn parse_port_range(value: &str) -> Result<RangeInclusive<u16>, VoiceConfigError> {
    let error = || VoiceConfigError::PortRange {
        value: value.to_owned(),
    };
    let (first, last) = value.trim().split_once('-').ok_or_else(error)?;
    let first: u16 = first.trim().parse().map_err(|_| error())?;
    let last: u16 = last.trim().parse().map_err(|_| error())?;
    if first == 0 || first > last {
        return Err(error());
    }
    Ok(first..=last)
}

fn parse_ips(list: &str) -> Result<Vec<IpAddr>, VoiceConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|ip| !ip.is_empty())
        .map(|ip| {
            ip.parse().map_err(|_| VoiceConfigError::PublicIp {
                value: ip.to_owned(),
            })
        })
        .collect()
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)], listen: &str) -> Result<VoiceConfig, VoiceConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        VoiceConfig::from_lookup(
            |var| vars.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone()),
            listen.parse().unwrap(),
        )
    }

    #[test]
    fn defaults_to_no_servers_any_port_and_the_listen_address() {
        let config = read(&[], "127.0.0.1:8080").unwrap();
        assert!(config.ice_servers.is_empty());
        assert_eq!(config.udp_ports, None);
        assert!(config.public_ips.is_empty());
        assert_eq!(
            config.bind_ips,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        let everywhere = read(&[], "0.0.0.0:8080").unwrap();
        assert_eq!(everywhere.bind_ips.len(), 2);
        assert!(everywhere.bind_ips.iter().any(IpAddr::is_loopback));
    }

    #[test]
    fn reads_ice_servers_in_the_browser_shape() {
        let config = read(
            &[(
                ICE_SERVERS_VAR,
                r#"[{"urls":"stun:stun.example.com:3478"},
                    {"urls":["turn:turn.example.com:3478?transport=udp","turns:turn.example.com"],
                     "username":"u","credential":"p"}]"#,
            )],
            "0.0.0.0:8080",
        )
        .unwrap();
        assert_eq!(config.ice_servers.len(), 2);
        assert_eq!(
            config.ice_servers[0].urls,
            vec!["stun:stun.example.com:3478"]
        );
        assert_eq!(config.ice_servers[1].username.as_deref(), Some("u"));
        let json = serde_json::to_value(&config.ice_servers[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"urls": ["stun:stun.example.com:3478"]})
        );
    }

    #[test]
    fn refuses_bad_ice_servers_naming_the_variable() {
        for bad in [
            "not json",
            r#"[{"urls":["http://example.com"]}]"#,
            r#"[{"urls":["turn:turn.example.com"]}]"#,
            r#"[{"urls":["stun:"]}]"#,
            r#"[{"url":"stun:x"}]"#,
        ] {
            let error = read(&[(ICE_SERVERS_VAR, bad)], "0.0.0.0:1").unwrap_err();
            assert!(
                error.to_string().contains(ICE_SERVERS_VAR),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn reads_a_port_range_and_public_ips() {
        let config = read(
            &[
                (UDP_PORTS_VAR, "50000-50100"),
                (PUBLIC_IPS_VAR, "203.0.113.7, 2001:db8::1"),
            ],
            "0.0.0.0:8080",
        )
        .unwrap();
        assert_eq!(config.udp_ports, Some(50000..=50100));
        assert_eq!(config.public_ips.len(), 2);
        for bad in ["50000", "5-4", "0-10", "a-b", "1-70000"] {
            let error = read(&[(UDP_PORTS_VAR, bad)], "0.0.0.0:1").unwrap_err();
            assert!(error.to_string().contains(UDP_PORTS_VAR), "{bad}: {error}");
        }
        let error = read(&[(PUBLIC_IPS_VAR, "example.com")], "0.0.0.0:1").unwrap_err();
        assert!(error.to_string().contains(PUBLIC_IPS_VAR), "{error}");
    }
}
