//! Open connections to public ports, so that making a port private cuts them at once.
//!
//! Connections that were let in only because a port was public keep a duplicate of their
//! upstream socket here: WebSocket tunnels register theirs ([`Revocable::register`]), other
//! upgrades that pingora proxies connect through [`RevocableConnect`]. Shutting the duplicate
//! down ends the connection in both directions. The duplicate belongs to us (no fd number reuse can hit another socket) and is
//! closed when the request ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::protocols::l4::socket::SocketAddr;
use pingora::protocols::l4::stream::Stream;
use pingora::{Error, ErrorType, OrErr as _};

use crate::store::SessionId;

type Key = (SessionId, u16);

/// Upstream sockets of anonymous public-port connections, by session and port.
#[derive(Clone, Default)]
pub struct Revocable {
    sockets: Arc<Mutex<HashMap<Key, HashMap<u64, std::net::TcpStream>>>>,
    next: Arc<AtomicU64>,
}

impl Revocable {
    /// A connector for one request to `port` of `id`, and the handle that forgets its socket.
    pub fn connector(&self, id: &SessionId, port: u16) -> (RevocableConnect, Registration) {
        let registration = self.registration(id, port);
        (
            RevocableConnect {
                revocable: self.clone(),
                key: registration.key.clone(),
                serial: registration.serial,
            },
            registration,
        )
    }

    /// Keeps a duplicate of a tunnel's upstream socket to `port` of `id` until the returned
    /// handle is dropped.
    pub fn register(
        &self,
        id: &SessionId,
        port: u16,
        upstream: &tokio::net::TcpStream,
    ) -> std::io::Result<Registration> {
        use std::os::fd::AsFd as _;
        let duplicate = std::net::TcpStream::from(upstream.as_fd().try_clone_to_owned()?);
        let registration = self.registration(id, port);
        self.insert(&registration.key, registration.serial, duplicate);
        Ok(registration)
    }

    fn registration(&self, id: &SessionId, port: u16) -> Registration {
        Registration {
            revocable: self.clone(),
            key: (id.clone(), port),
            serial: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Ports of `id` with open anonymous connections.
    pub fn ports_of(&self, id: &SessionId) -> Vec<u16> {
        self.sockets.lock().map_or_else(
            |_| Vec::new(),
            |sockets| {
                sockets
                    .keys()
                    .filter(|(session, _)| session == id)
                    .map(|(_, port)| *port)
                    .collect()
            },
        )
    }

    /// Cuts every anonymous connection to `port` of `id`; returns how many.
    pub fn revoke(&self, id: &SessionId, port: u16) -> usize {
        let cut = self
            .sockets
            .lock()
            .ok()
            .and_then(|mut sockets| sockets.remove(&(id.clone(), port)))
            .unwrap_or_default();
        for socket in cut.values() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        cut.len()
    }

    fn insert(&self, key: &Key, serial: u64, socket: std::net::TcpStream) {
        if let Ok(mut sockets) = self.sockets.lock() {
            sockets
                .entry(key.clone())
                .or_default()
                .insert(serial, socket);
        }
    }

    fn remove(&self, key: &Key, serial: u64) {
        if let Ok(mut sockets) = self.sockets.lock()
            && let Some(open) = sockets.get_mut(key)
        {
            open.remove(&serial);
            if open.is_empty() {
                sockets.remove(key);
            }
        }
    }
}

/// Forgets the request's socket when dropped (the request ended).
pub struct Registration {
    revocable: Revocable,
    key: Key,
    serial: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.revocable.remove(&self.key, self.serial);
    }
}

/// pingora's connector for one revocable upstream connection.
#[derive(Clone)]
pub struct RevocableConnect {
    revocable: Revocable,
    key: Key,
    serial: u64,
}

impl std::fmt::Debug for RevocableConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RevocableConnect({}:{})", self.key.0, self.key.1)
    }
}

#[async_trait]
impl pingora::connectors::L4Connect for RevocableConnect {
    async fn connect(&self, addr: &SocketAddr) -> pingora::Result<Stream> {
        let inet = *addr
            .as_inet()
            .ok_or_else(|| Error::explain(ErrorType::ConnectError, "not an IP address"))?;
        let stream = tokio::net::TcpStream::connect(inet).await.or_err(
            ErrorType::ConnectRefused,
            "connecting to the forwarded port",
        )?;
        stream
            .set_nodelay(true)
            .or_err(ErrorType::ConnectError, "setting TCP_NODELAY")?;
        let std_stream = stream
            .into_std()
            .or_err(ErrorType::ConnectError, "taking the socket")?;
        let duplicate = std_stream
            .try_clone()
            .or_err(ErrorType::ConnectError, "duplicating the socket")?;
        let stream = tokio::net::TcpStream::from_std(std_stream)
            .or_err(ErrorType::ConnectError, "registering the socket")?;
        self.revocable.insert(&self.key, self.serial, duplicate);
        Ok(stream.into())
    }
}
