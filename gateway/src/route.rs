//! Which of the gateway's destinations a request is for, decided from its Host header and
//! path alone (no I/O), so every routing rule is one unit-tested function.
//!
//! | request | route |
//! |---|---|
//! | `port-<N>-<id>.<domain>/…` | [`Route::Port`]: port N of the session's pod |
//! | `<domain>/s/<id>/_huddle/…` | [`Route::Internal`]: the gateway's own session pages (port sign-in, who am I) |
//! | `<domain>/s/<id>/…` | [`Route::Agent`]: the session's agent, with `/s/<id>` taken off |
//! | `<domain>/s/<id>` | [`Route::AddSlash`] |
//! | `<domain>/api/…`, `<domain>/` | [`Route::Internal`]: REST API and landing page |
//! | `/healthz` on any host | [`Route::Health`] |
//! | anything else | [`Route::NotFound`] |
//!
//! A Host that is neither the domain nor a port host of it is refused, so a forged Host header
//! cannot make the gateway route anywhere the domain would not.

use crate::store::{SessionId, parse_session_id};

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The session's agent; `path` is what the agent sees (starts with `/`).
    Agent {
        id: SessionId,
        path: String,
    },
    /// Port `port` of the session's pod; the path is passed through unchanged.
    Port {
        id: SessionId,
        port: u16,
    },
    /// `/s/<id>` without the trailing slash: redirect, so relative URLs resolve.
    AddSlash {
        id: SessionId,
    },
    /// The gateway's own HTTP server (API, pages).
    Internal,
    /// The gateway's liveness answer.
    Health,
    NotFound,
}

/// Decides the route for `host` (the Host header, with or without a port) and `path` (the
/// request path without the query).
pub fn classify(domain: &str, host: &str, path: &str) -> Route {
    if path == "/healthz" {
        return Route::Health;
    }
    let host = strip_port(host).to_ascii_lowercase();
    if host == domain {
        return classify_path(path);
    }
    match port_host(&host, domain) {
        Some((port, id)) => Route::Port { id, port },
        None => Route::NotFound,
    }
}

fn classify_path(path: &str) -> Route {
    if path == "/" || path == "/api" || path.starts_with("/api/") || path.starts_with("/assets/") {
        return Route::Internal;
    }
    let Some(rest) = path.strip_prefix("/s/") else {
        return Route::NotFound;
    };
    let (id, tail) = match rest.find('/') {
        Some(slash) => (&rest[..slash], Some(&rest[slash..])),
        None => (rest, None),
    };
    let Ok(id) = parse_session_id(id) else {
        return Route::NotFound;
    };
    match tail {
        None => Route::AddSlash { id },
        Some(tail) if tail == "/_huddle" || tail.starts_with("/_huddle/") => Route::Internal,
        Some(tail) => Route::Agent {
            id,
            path: tail.to_owned(),
        },
    }
}

/// `port-<N>-<id>.<domain>` → `(N, id)`. N is 1-65535 written without leading zeros, so
/// each port has one host name.
pub fn port_host(host: &str, domain: &str) -> Option<(u16, SessionId)> {
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let rest = label.strip_prefix("port-")?;
    let (port, id) = rest.split_once('-')?;
    if port.is_empty() || port.starts_with('0') || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok()?;
    let id = parse_session_id(id).ok()?;
    Some((port, id))
}

/// The host name that serves `port` of session `id`.
pub fn port_host_name(domain: &str, port: u16, id: &SessionId) -> String {
    format!("port-{port}-{id}.{domain}")
}

fn strip_port(host: &str) -> &str {
    // IPv6 literals (`[::1]:8000`) never match a domain name; keep them whole.
    if host.starts_with('[') {
        return host;
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::new_session_id;

    const DOMAIN: &str = "huddle.test";

    #[test]
    fn session_paths_go_to_the_agent_without_the_prefix() {
        let id = new_session_id().unwrap();
        let route = classify(DOMAIN, "huddle.test:8000", &format!("/s/{id}/ws"));
        assert_eq!(
            route,
            Route::Agent {
                id: id.clone(),
                path: "/ws".into()
            }
        );
        assert_eq!(
            classify(DOMAIN, "HUDDLE.test", &format!("/s/{id}/")),
            Route::Agent {
                id: id.clone(),
                path: "/".into()
            }
        );
        assert_eq!(
            classify(DOMAIN, DOMAIN, &format!("/s/{id}")),
            Route::AddSlash { id: id.clone() }
        );
        assert_eq!(
            classify(DOMAIN, DOMAIN, &format!("/s/{id}/_huddle/port-auth")),
            Route::Internal
        );
    }

    #[test]
    fn port_hosts() {
        let id = new_session_id().unwrap();
        let host = port_host_name(DOMAIN, 3000, &id);
        assert!(host.split('.').next().unwrap().len() <= 63);
        assert_eq!(
            classify(DOMAIN, &format!("{host}:443"), "/any/path"),
            Route::Port {
                id: id.clone(),
                port: 3000
            }
        );
        // Host names are case-insensitive.
        assert_eq!(
            classify(DOMAIN, &host.to_uppercase(), "/"),
            Route::Port {
                id: id.clone(),
                port: 3000
            }
        );
        let longest = port_host_name(DOMAIN, 65535, &id);
        assert!(longest.split('.').next().unwrap().len() <= 63);
        for bad in [
            format!("port-0-{id}.{DOMAIN}"),
            format!("port-03000-{id}.{DOMAIN}"),
            format!("port-65536-{id}.{DOMAIN}"),
            format!("port--{id}.{DOMAIN}"),
            format!("port-3000-{id}.evil.test"),
            format!("port-3000-{id}.{DOMAIN}.evil.test"),
            format!("x.port-3000-{id}.{DOMAIN}"),
            format!("port-3000-../{id}.{DOMAIN}"),
        ] {
            assert_eq!(classify(DOMAIN, &bad, "/"), Route::NotFound, "{bad}");
        }
    }

    #[test]
    fn everything_else() {
        assert_eq!(classify(DOMAIN, DOMAIN, "/"), Route::Internal);
        assert_eq!(classify(DOMAIN, DOMAIN, "/api/sessions"), Route::Internal);
        assert_eq!(classify(DOMAIN, "10.0.0.1", "/healthz"), Route::Health);
        assert_eq!(classify(DOMAIN, "10.0.0.1", "/"), Route::NotFound);
        assert_eq!(
            classify(DOMAIN, "127.0.0.1:8000", "/api/sessions"),
            Route::NotFound
        );
        assert_eq!(classify(DOMAIN, DOMAIN, "/s/not-an-id/"), Route::NotFound);
        assert_eq!(classify(DOMAIN, DOMAIN, "/s/"), Route::NotFound);
        assert_eq!(classify(DOMAIN, DOMAIN, "/etc/passwd"), Route::NotFound);
        assert_eq!(classify(DOMAIN, "[::1]:8000", "/"), Route::NotFound);
    }
}
