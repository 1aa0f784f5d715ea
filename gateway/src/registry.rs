//! State the gateway replicas share while running: where each session's agent is, when it was
//! last used, how many people are connected, who sweeps idle sessions, and a channel that tells
//! every replica a session changed.
//!
//! With Redis every replica sees the same registry. Without Redis (one machine, one gateway)
//! the same calls are answered from memory. When Redis is unreachable the calls fail fast and
//! the callers fall back: lookups go to the runtime (the Kubernetes API), activity goes to the
//! database, and nobody sweeps (no session is put to sleep on partial information).
//!
//! Redis keys (all under `huddle:`):
//! - `view:<id>`: the session's [`SessionView`] as JSON, for [`VIEW_TTL`]
//! - `activity:<id>`: last activity, Unix milliseconds, only ever raised
//! - `conns:<id>`: hash of replica → open connections on that replica
//! - `replica:<name>`: present while that replica is alive ([`REPLICA_TTL`])
//! - `gc-leader`: the replica that sweeps, for [`LEADER_TTL`]
//! - channel `huddle:changed`: session ids whose state, ports or address changed

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use tokio::sync::broadcast;

use crate::runtime::SessionView;
use crate::store::{SessionId, Timestamp};

/// How long a cached view is trusted (changes are also announced on the channel).
pub const VIEW_TTL: Duration = Duration::from_secs(30);
/// A replica that has not reported for this long is gone; its connections no longer count.
pub const REPLICA_TTL: Duration = Duration::from_secs(15);
/// How long the sweeping leader holds the lock without renewing it.
pub const LEADER_TTL: Duration = Duration::from_secs(20);
/// How long one Redis call may take before the caller falls back.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const CHANGED_CHANNEL: &str = "huddle:changed";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {REDIS_TIMEOUT:?}")]
    Timeout,
    #[error("cached value: {0}")]
    Decode(#[from] serde_json::Error),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The shared registry. Cloning is cheap.
#[derive(Clone)]
pub struct Registry {
    backend: Backend,
    replica: String,
    changed: broadcast::Sender<SessionId>,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<Mutex<Memory>>),
    Redis(ConnectionManager),
}

#[derive(Default)]
struct Memory {
    activity: HashMap<SessionId, Timestamp>,
    connections: HashMap<SessionId, u64>,
}

async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(RegistryError::Timeout),
    }
}

impl Registry {
    /// The in-process registry: one gateway, nothing shared.
    pub fn in_memory(replica: String) -> Self {
        Self {
            backend: Backend::Memory(Arc::default()),
            replica,
            changed: broadcast::channel(1024).0,
        }
    }

    /// Connects to Redis and starts listening for changes from other replicas. The connection
    /// manager reconnects by itself; until then calls fail and callers fall back.
    pub async fn redis(url: &str, replica: String) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let manager = client.get_connection_manager_with_config(config).await?;
        let registry = Self {
            backend: Backend::Redis(manager),
            replica,
            changed: broadcast::channel(1024).0,
        };
        tokio::spawn(listen_for_changes(client, registry.changed.clone()));
        Ok(registry)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the registry is shared between replicas.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Session ids announced as changed, by this replica or any other.
    pub fn changes(&self) -> broadcast::Receiver<SessionId> {
        self.changed.subscribe()
    }

    /// Tells every replica (this one included) that `id` changed, and forgets its cached view.
    pub async fn announce_change(&self, id: &SessionId) -> Result<()> {
        // Locally first: this replica must not act on the old view even if Redis is down.
        let _ = self.changed.send(id.clone());
        if let Backend::Redis(redis) = &self.backend {
            let mut redis = redis.clone();
            bounded(redis.del::<_, ()>(view_key(id))).await?;
            bounded(redis.publish::<_, _, ()>(CHANGED_CHANNEL, id.as_str())).await?;
        }
        Ok(())
    }

    /// The cached view of `id`, if another replica (or this one) resolved it recently.
    pub async fn cached_view(&self, id: &SessionId) -> Result<Option<SessionView>> {
        let Backend::Redis(redis) = &self.backend else {
            return Ok(None);
        };
        let mut redis = redis.clone();
        let json: Option<String> = bounded(redis.get(view_key(id))).await?;
        Ok(json.map(|json| serde_json::from_str(&json)).transpose()?)
    }

    /// Caches a freshly resolved view for the other replicas.
    pub async fn cache_view(&self, view: &SessionView) -> Result<()> {
        let Backend::Redis(redis) = &self.backend else {
            return Ok(());
        };
        let mut redis = redis.clone();
        let json = serde_json::to_string(view)?;
        bounded(redis.set_ex::<_, _, ()>(view_key(&view.id), json, VIEW_TTL.as_secs())).await
    }

    /// Raises the session's last activity to `at` (never lowers it).
    pub async fn record_activity(&self, id: &SessionId, at: Timestamp) -> Result<()> {
        match &self.backend {
            Backend::Memory(memory) => {
                if let Ok(mut memory) = memory.lock() {
                    let entry = memory.activity.entry(id.clone()).or_insert(at);
                    *entry = (*entry).max(at);
                }
                Ok(())
            }
            Backend::Redis(redis) => {
                let mut redis = redis.clone();
                let script = redis::Script::new(
                    "local v = redis.call('GET', KEYS[1]) \
                     if not v or tonumber(v) < tonumber(ARGV[1]) then \
                       redis.call('SET', KEYS[1], ARGV[1]) end return 0",
                );
                bounded(
                    script
                        .key(activity_key(id))
                        .arg(at.as_unix_millis())
                        .invoke_async::<()>(&mut redis),
                )
                .await
            }
        }
    }

    /// The session's last activity as the registry knows it.
    pub async fn last_activity(&self, id: &SessionId) -> Result<Option<Timestamp>> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory
                .lock()
                .ok()
                .and_then(|memory| memory.activity.get(id).copied())),
            Backend::Redis(redis) => {
                let mut redis = redis.clone();
                let millis: Option<i64> = bounded(redis.get(activity_key(id))).await?;
                Ok(millis.map(Timestamp::from_unix_millis))
            }
        }
    }

    /// Reports this replica's open connections per session (sessions missing from `counts`
    /// but reported before are set to zero by the caller passing them with 0).
    pub async fn report_connections(&self, counts: &HashMap<SessionId, u64>) -> Result<()> {
        match &self.backend {
            Backend::Memory(memory) => {
                if let Ok(mut memory) = memory.lock() {
                    for (id, count) in counts {
                        memory.connections.insert(id.clone(), *count);
                    }
                }
                Ok(())
            }
            Backend::Redis(redis) => {
                let mut redis = redis.clone();
                let mut pipe = redis::pipe();
                pipe.set_ex(
                    format!("huddle:replica:{}", self.replica),
                    1,
                    REPLICA_TTL.as_secs(),
                )
                .ignore();
                for (id, count) in counts {
                    if *count == 0 {
                        pipe.hdel(conns_key(id), &self.replica).ignore();
                    } else {
                        pipe.hset(conns_key(id), &self.replica, *count).ignore();
                    }
                }
                bounded(pipe.query_async::<()>(&mut redis)).await
            }
        }
    }

    /// Open connections to the session across live replicas.
    pub async fn connections(&self, id: &SessionId) -> Result<u64> {
        match &self.backend {
            Backend::Memory(memory) => Ok(memory
                .lock()
                .ok()
                .and_then(|memory| memory.connections.get(id).copied())
                .unwrap_or(0)),
            Backend::Redis(redis) => {
                let mut redis = redis.clone();
                let per_replica: HashMap<String, u64> =
                    bounded(redis.hgetall(conns_key(id))).await?;
                let mut total = 0;
                for (replica, count) in per_replica {
                    let alive: bool =
                        bounded(redis.exists(format!("huddle:replica:{replica}"))).await?;
                    if alive {
                        total += count;
                    }
                }
                Ok(total)
            }
        }
    }

    /// Takes or keeps the sweeping lock. Without Redis this replica is the only one and leads.
    pub async fn try_lead(&self) -> Result<bool> {
        let Backend::Redis(redis) = &self.backend else {
            return Ok(true);
        };
        let mut redis = redis.clone();
        let script = redis::Script::new(
            "local holder = redis.call('GET', KEYS[1]) \
             if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end \
             if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end \
             return 0",
        );
        let led: i64 = bounded(
            script
                .key("huddle:gc-leader")
                .arg(&self.replica)
                .arg(LEADER_TTL.as_millis() as u64)
                .invoke_async(&mut redis),
        )
        .await?;
        Ok(led == 1)
    }
}

fn view_key(id: &SessionId) -> String {
    format!("huddle:view:{id}")
}

fn activity_key(id: &SessionId) -> String {
    format!("huddle:activity:{id}")
}

fn conns_key(id: &SessionId) -> String {
    format!("huddle:conns:{id}")
}

/// Forwards ids published by any replica to this replica's listeners, reconnecting forever.
async fn listen_for_changes(client: redis::Client, changed: broadcast::Sender<SessionId>) {
    use futures::StreamExt as _;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(error) = pubsub.subscribe(CHANGED_CHANNEL).await {
                    tracing::warn!(%error, "subscribing to session changes failed");
                } else {
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(text) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Ok(id) = crate::store::parse_session_id(&text) {
                            let _ = changed.send(id);
                        }
                    }
                    tracing::warn!("lost the Redis change channel; reconnecting");
                }
            }
            Err(error) => tracing::debug!(%error, "redis unreachable for the change channel"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
