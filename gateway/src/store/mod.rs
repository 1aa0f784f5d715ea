//! The gateway's durable state: sessions, participants, snapshots of hibernated sessions and
//! the audit log, in PostgreSQL (a cluster) or in an embedded SQLite file (one machine).
//!
//! [`Store`] holds one of two sqlx pools, chosen at run time by the database URL. It is an enum
//! rather than `sqlx::Any` or a trait object: each arm keeps its driver's own types (BYTEA vs
//! BLOB, identity vs AUTOINCREMENT, its own migrations), there is no boxing or `async-trait`,
//! and the SQL is written once and run against whichever pool is there (the [`on_pool!`]
//! macro expands the same code for both). The statements are portable: `$n` placeholders,
//! `RETURNING`, `TRUE`/`FALSE`, integer times — SQLite accepts all of them.
//!
//! Invariants callers rely on:
//! - a snapshot is visible only when completely stored (one transaction, `complete` set last),
//!   and older snapshots are pruned only after a newer one has committed;
//! - a session's last activity never moves backwards;
//! - deleted sessions are kept (soft delete) but no longer returned or changed.

pub mod ids;
mod types;

use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use ids::{InvalidSessionId, SessionId, new_session_id, parse_session_id};
pub use types::{
    AuditEvent, AuditRecord, NewParticipant, NewSession, Participant, Role, Session, SessionState,
    SnapshotMeta, Timestamp,
};
use types::{
    AuditRow, ParticipantRow, SessionRow, SnapshotMetaRow, SnapshotRow, hex, seconds_to_db,
};

/// How many complete snapshots are kept per session; older ones are deleted after a newer one
/// has been committed.
pub const KEEP_SNAPSHOTS: i64 = 3;

/// Default upper bound on one snapshot. PostgreSQL cannot store a BYTEA value over 1 GiB at all;
/// this stays well below that, and below what a gateway should hold in memory at once.
pub const DEFAULT_MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a caller waits for a pooled connection (PostgreSQL) or a lock (SQLite) before the
/// operation fails. Idle GC treats such a failure as "Postgres is down": the session stays up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Only the scheme is shown: the URL may carry a password.
    #[error("unsupported database URL scheme {0:?}: use postgres://… or sqlite://…")]
    UnsupportedUrl(String),
    #[error("connecting to the {backend} database: {source}")]
    Connect {
        backend: &'static str,
        source: sqlx::Error,
    },
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("session {0} not found")]
    SessionNotFound(SessionId),
    #[error("session {0} has no port {1}")]
    PortNotFound(SessionId, u16),
    #[error("session {0} already exists")]
    SessionExists(SessionId),
    #[error("{user_id} is already a participant of session {session_id}")]
    ParticipantExists {
        session_id: SessionId,
        user_id: String,
    },
    #[error("a snapshot of {size} bytes is over the limit of {limit} bytes")]
    SnapshotTooLarge { size: u64, limit: u64 },
    #[error("snapshot {id} of session {session_id} does not match its stored size and SHA-256")]
    SnapshotCorrupt { session_id: SessionId, id: i64 },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The database holds a value this code cannot read (a bug or a manual edit).
    #[error("invalid data in the database: {0}")]
    InvalidData(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
enum Backend {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is compiled once
/// per driver, so it may use any API both drivers offer with the same spelling.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Postgres($pool) => $body,
            Backend::Sqlite($pool) => $body,
        }
    };
}

mod ports;
pub use ports::{SessionPort, Visibility};

/// The gateway's state store. Cloning is cheap (it shares the pool).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    max_snapshot_bytes: u64,
    #[cfg(test)]
    faults: tests::Faults,
}

/// The `sessions` columns a [`SessionRow`] is read from, as a literal for `concat!`.
macro_rules! session_columns {
    () => {
        "id, namespace, owner_name, state, created_at, last_activity_at, \
         idle_timeout_seconds, max_lifetime_seconds"
    };
}

impl Store {
    /// Connects to `postgres://…` (or `postgresql://…`) or `sqlite://path?mode=rwc` and brings
    /// the schema up to date. Migrations are idempotent and safe to run from several gateway
    /// replicas at once (sqlx serialises them with an advisory lock on PostgreSQL).
    pub async fn connect(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        let backend = match scheme {
            "postgres" | "postgresql" => {
                let options =
                    PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
                        backend: "postgres",
                        source,
                    })?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: "postgres",
                        source,
                    })?;
                POSTGRES_MIGRATIONS.run(&pool).await?;
                Backend::Postgres(pool)
            }
            "sqlite" => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|source| StoreError::Connect {
                        backend: "sqlite",
                        source,
                    })?
                    .foreign_keys(true)
                    // WAL lets readers run beside the one writer; FULL makes a committed
                    // snapshot survive a power cut, which hibernation relies on.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(ACQUIRE_TIMEOUT);
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|source| StoreError::Connect {
                        backend: "sqlite",
                        source,
                    })?;
                SQLITE_MIGRATIONS.run(&pool).await?;
                Backend::Sqlite(pool)
            }
            other => return Err(StoreError::UnsupportedUrl(other.to_owned())),
        };
        let store = Self {
            backend,
            max_snapshot_bytes: DEFAULT_MAX_SNAPSHOT_BYTES,
            #[cfg(test)]
            faults: tests::Faults::default(),
        };
        tracing::info!(backend = store.backend_name(), "state store ready");
        Ok(store)
    }

    /// Sets the largest snapshot [`Store::put_snapshot`] accepts.
    pub fn with_max_snapshot_bytes(mut self, limit: u64) -> Self {
        self.max_snapshot_bytes = limit;
        self
    }

    /// `"postgres"` or `"sqlite"`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Records a new session, `Running`, last active at its creation time.
    pub async fn create_session(&self, new: NewSession) -> Result<Session> {
        let idle_timeout_seconds = seconds_to_db("idle timeout", new.idle_timeout)?;
        let max_lifetime_seconds = new
            .max_lifetime
            .map(|d| seconds_to_db("max lifetime", d))
            .transpose()?;
        let state = SessionState::Running;
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, namespace, owner_name, state, created_at, \
                 last_activity_at, idle_timeout_seconds, max_lifetime_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6, $7)",
            )
            .bind(new.id.as_str())
            .bind(new.namespace.as_str())
            .bind(new.owner_name.as_str())
            .bind(state.as_str())
            .bind(new.created_at.as_unix_millis())
            .bind(idle_timeout_seconds)
            .bind(max_lifetime_seconds)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::SessionExists(new.id)),
            Err(e) => return Err(e.into()),
        }
        Ok(Session {
            id: new.id,
            namespace: new.namespace,
            owner_name: new.owner_name,
            state,
            created_at: new.created_at,
            last_activity_at: new.created_at,
            idle_timeout: new.idle_timeout,
            max_lifetime: new.max_lifetime,
        })
    }

    /// The session, unless it does not exist or was deleted.
    pub async fn get_session(&self, id: &SessionId) -> Result<Option<Session>> {
        let row: Option<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE id = $1 AND deleted_at IS NULL"
            ))
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
        });
        row.map(Session::try_from).transpose()
    }

    /// Every live session, oldest first.
    pub async fn list_sessions(&self) -> Result<Vec<Session>> {
        let rows: Vec<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "SELECT ",
                session_columns!(),
                " FROM sessions WHERE deleted_at IS NULL ORDER BY created_at, id"
            ))
            .fetch_all(pool)
            .await?
        });
        let mut sessions = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id.clone();
            match Session::try_from(row) {
                Ok(session) => sessions.push(session),
                // One row that cannot be read (say, written by an older version) must not stop
                // the idle sweep, which lists sessions, for every other session.
                Err(error) => {
                    tracing::warn!(session = %id, %error, "skipping a stored session that cannot be read")
                }
            }
        }
        Ok(sessions)
    }

    /// Records the session's desired state.
    pub async fn set_state(&self, id: &SessionId, state: SessionState) -> Result<()> {
        let updated = on_pool!(self, pool => {
            sqlx::query("UPDATE sessions SET state = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id.as_str())
                .bind(state.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::SessionNotFound(id.clone()));
        }
        Ok(())
    }

    /// Moves the session's last activity to `at` if that is later than what is stored, in one
    /// statement, so concurrent writers (several gateway replicas) can never move it back.
    /// Returns whether it moved.
    pub async fn touch_activity(&self, id: &SessionId, at: Timestamp) -> Result<bool> {
        let updated = on_pool!(self, pool => {
            sqlx::query(
                "UPDATE sessions SET last_activity_at = $2 \
                 WHERE id = $1 AND deleted_at IS NULL AND last_activity_at < $2",
            )
            .bind(id.as_str())
            .bind(at.as_unix_millis())
            .execute(pool)
            .await?
            .rows_affected()
        });
        if updated > 0 {
            return Ok(true);
        }
        match self.get_session(id).await? {
            Some(_) => Ok(false),
            None => Err(StoreError::SessionNotFound(id.clone())),
        }
    }

    /// Marks the session deleted and records who did it, in one transaction. Its participants,
    /// snapshots and audit events are kept.
    pub async fn delete_session(&self, id: &SessionId, actor: &str) -> Result<()> {
        let at = Timestamp::now();
        let detail = serde_json::json!({}).to_string();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE sessions SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(id.as_str())
            .bind(at.as_unix_millis())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                // Dropping `tx` rolls it back.
                return Err(StoreError::SessionNotFound(id.clone()));
            }
            sqlx::query(INSERT_AUDIT)
                .bind(Some(id.as_str()))
                .bind(at.as_unix_millis())
                .bind(actor)
                .bind("session.delete")
                .bind(detail.as_str())
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        tracing::info!(session = %id, actor, "session deleted");
        Ok(())
    }

    /// Adds a participant to a live session. A user is in a session at most once.
    pub async fn add_participant(
        &self,
        session_id: &SessionId,
        new: NewParticipant,
    ) -> Result<Participant> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO participants (session_id, user_id, name, role, invited_at) \
                 SELECT $1, $2, $3, $4, $5 \
                 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND deleted_at IS NULL)",
            )
            .bind(session_id.as_str())
            .bind(new.user_id.as_str())
            .bind(new.name.as_str())
            .bind(new.role.as_str())
            .bind(new.invited_at.as_unix_millis())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        });
        match inserted {
            Ok(0) => Err(StoreError::SessionNotFound(session_id.clone())),
            Ok(_) => Ok(Participant {
                session_id: session_id.clone(),
                user_id: new.user_id,
                name: new.name,
                role: new.role,
                invited_at: new.invited_at,
            }),
            Err(e) if is_unique_violation(&e) => Err(StoreError::ParticipantExists {
                session_id: session_id.clone(),
                user_id: new.user_id,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The session's participants in the order they were invited.
    pub async fn participants(&self, session_id: &SessionId) -> Result<Vec<Participant>> {
        let rows: Vec<ParticipantRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT session_id, user_id, name, role, invited_at FROM participants \
                 WHERE session_id = $1 ORDER BY invited_at, user_id",
            )
            .bind(session_id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Participant::try_from).collect()
    }

    /// Stores a snapshot (the whole tar) of a live session.
    ///
    /// The row is inserted, then marked complete, in one transaction: if anything fails before
    /// the commit nothing is visible. Only after the commit are snapshots beyond the newest
    /// [`KEEP_SNAPSHOTS`] deleted; a failure there is logged and does not fail the call, since
    /// the new snapshot is already durable.
    pub async fn put_snapshot(&self, session_id: &SessionId, data: &[u8]) -> Result<SnapshotMeta> {
        let size = data.len() as u64;
        if size > self.max_snapshot_bytes {
            return Err(StoreError::SnapshotTooLarge {
                size,
                limit: self.max_snapshot_bytes,
            });
        }
        let size_bytes = i64::try_from(size).map_err(|_| StoreError::SnapshotTooLarge {
            size,
            limit: self.max_snapshot_bytes,
        })?;
        let sha256: [u8; 32] = Sha256::digest(data).into();
        let sha256_hex = hex(&sha256);
        let created_at = Timestamp::now();

        let id: i64 = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO snapshots (session_id, created_at, size_bytes, sha256, data, complete) \
                 SELECT $1, $2, $3, $4, $5, FALSE \
                 WHERE EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND deleted_at IS NULL) \
                 RETURNING id",
            )
            .bind(session_id.as_str())
            .bind(created_at.as_unix_millis())
            .bind(size_bytes)
            .bind(sha256_hex.as_str())
            .bind(data)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else {
                return Err(StoreError::SessionNotFound(session_id.clone()));
            };
            #[cfg(test)]
            self.faults.before_snapshot_complete()?;
            sqlx::query("UPDATE snapshots SET complete = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            id
        });
        tracing::info!(session = %session_id, snapshot = id, size, "snapshot stored");

        if let Err(error) = self.prune_snapshots(session_id).await {
            tracing::warn!(session = %session_id, %error, "could not delete old snapshots");
        }
        Ok(SnapshotMeta {
            id,
            session_id: session_id.clone(),
            created_at,
            size_bytes: size,
            sha256,
        })
    }

    /// Deletes every snapshot of the session but the newest [`KEEP_SNAPSHOTS`] complete ones.
    async fn prune_snapshots(&self, session_id: &SessionId) -> Result<u64> {
        let deleted = on_pool!(self, pool => {
            sqlx::query(
                "DELETE FROM snapshots WHERE session_id = $1 AND id NOT IN ( \
                     SELECT id FROM snapshots WHERE session_id = $1 AND complete \
                     ORDER BY id DESC LIMIT $2)",
            )
            .bind(session_id.as_str())
            .bind(KEEP_SNAPSHOTS)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted)
    }

    /// The session's complete snapshots, newest first, without their bytes.
    pub async fn list_snapshots(&self, session_id: &SessionId) -> Result<Vec<SnapshotMeta>> {
        let rows: Vec<SnapshotMetaRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, session_id, created_at, size_bytes, sha256 FROM snapshots \
                 WHERE session_id = $1 AND complete ORDER BY id DESC",
            )
            .bind(session_id.as_str())
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(SnapshotMeta::try_from).collect()
    }

    /// The newest complete snapshot and its bytes, checked against the stored size and SHA-256.
    pub async fn latest_snapshot(
        &self,
        session_id: &SessionId,
    ) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let row: Option<SnapshotRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, session_id, created_at, size_bytes, sha256, data FROM snapshots \
                 WHERE session_id = $1 AND complete ORDER BY id DESC LIMIT 1",
            )
            .bind(session_id.as_str())
            .fetch_optional(pool)
            .await?
        });
        let Some(SnapshotRow { meta, data }) = row else {
            return Ok(None);
        };
        let meta = SnapshotMeta::try_from(meta)?;
        let actual: [u8; 32] = Sha256::digest(&data).into();
        if data.len() as u64 != meta.size_bytes || actual != meta.sha256 {
            return Err(StoreError::SnapshotCorrupt {
                session_id: session_id.clone(),
                id: meta.id,
            });
        }
        Ok(Some((meta, data)))
    }

    /// Appends an event to the audit log; returns its id.
    pub async fn audit(&self, event: &AuditEvent) -> Result<i64> {
        let detail = event.detail.to_string();
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(INSERT_AUDIT)
                .bind(event.session_id.as_ref().map(SessionId::as_str))
                .bind(event.at.as_unix_millis())
                .bind(event.actor.as_str())
                .bind(event.action.as_str())
                .bind(detail.as_str())
                .fetch_one(pool)
                .await?
        });
        Ok(id)
    }

    /// The session's newest `limit` audit events, newest first.
    pub async fn recent_audit(
        &self,
        session_id: &SessionId,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        let rows: Vec<AuditRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, session_id, at, actor, action, detail FROM audit_events \
                 WHERE session_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(session_id.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(AuditRecord::try_from).collect()
    }
}

const INSERT_AUDIT: &str = "INSERT INTO audit_events (session_id, at, actor, action, detail) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}

#[cfg(test)]
mod tests;
