//! The records the store reads and writes, as the rest of the gateway sees them.
//!
//! Rows come out of the database as plain `*Row` structs (strings and integers) and are checked
//! on the way in to these types, so a bad value in the database is an error, never a panic.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::StoreError;
use super::ids::{SessionId, parse_session_id};

/// A point in time: milliseconds since the Unix epoch, UTC. Both databases store it as a
/// 64-bit integer, so comparisons in SQL are integer comparisons on either.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub const fn as_unix_millis(self) -> i64 {
        self.0
    }

    /// The current time, to the millisecond. A clock before 1970 reads as the epoch.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(millis)
    }
}

/// The desired state of a session, as the gateway records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    Running,
    Hibernated,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Hibernated => "hibernated",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(Self::Running),
            "hibernated" => Ok(Self::Hibernated),
            other => Err(StoreError::InvalidData(format!(
                "unknown session state {other:?}"
            ))),
        }
    }
}

/// A participant's role in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Editor,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Editor => "editor",
            Self::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "owner" => Ok(Self::Owner),
            "editor" => Ok(Self::Editor),
            "viewer" => Ok(Self::Viewer),
            other => Err(StoreError::InvalidData(format!("unknown role {other:?}"))),
        }
    }
}

/// What [`super::Store::create_session`] needs. The session starts `Running`, with its last
/// activity at `created_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    /// The Kubernetes namespace of the Session resource (or the local runtime's equivalent).
    pub namespace: String,
    pub owner_name: String,
    pub created_at: Timestamp,
    /// Whole seconds, at least one.
    pub idle_timeout: Duration,
    /// Whole seconds, at least one, if any.
    pub max_lifetime: Option<Duration>,
}

/// A live (not deleted) session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub namespace: String,
    pub owner_name: String,
    pub state: SessionState,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
    pub idle_timeout: Duration,
    pub max_lifetime: Option<Duration>,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    pub(super) id: String,
    namespace: String,
    owner_name: String,
    state: String,
    created_at: i64,
    last_activity_at: i64,
    idle_timeout_seconds: i64,
    max_lifetime_seconds: Option<i64>,
}

impl TryFrom<SessionRow> for Session {
    type Error = StoreError;

    fn try_from(row: SessionRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: stored_session_id(&row.id)?,
            namespace: row.namespace,
            owner_name: row.owner_name,
            state: row.state.parse()?,
            created_at: Timestamp(row.created_at),
            last_activity_at: Timestamp(row.last_activity_at),
            idle_timeout: seconds_from_db(row.idle_timeout_seconds)?,
            max_lifetime: row.max_lifetime_seconds.map(seconds_from_db).transpose()?,
        })
    }
}

/// What [`super::Store::add_participant`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewParticipant {
    /// Stable user identity (from the token), unique within a session.
    pub user_id: String,
    /// Display name.
    pub name: String,
    pub role: Role,
    pub invited_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub session_id: SessionId,
    pub user_id: String,
    pub name: String,
    pub role: Role,
    pub invited_at: Timestamp,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct ParticipantRow {
    session_id: String,
    user_id: String,
    name: String,
    role: String,
    invited_at: i64,
}

impl TryFrom<ParticipantRow> for Participant {
    type Error = StoreError;

    fn try_from(row: ParticipantRow) -> Result<Self, StoreError> {
        Ok(Self {
            session_id: stored_session_id(&row.session_id)?,
            user_id: row.user_id,
            name: row.name,
            role: row.role.parse()?,
            invited_at: Timestamp(row.invited_at),
        })
    }
}

/// A stored snapshot, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub id: i64,
    pub session_id: SessionId,
    pub created_at: Timestamp,
    pub size_bytes: u64,
    pub sha256: [u8; 32],
}

impl SnapshotMeta {
    /// The SHA-256 as lowercase hex, as stored.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct SnapshotMetaRow {
    id: i64,
    session_id: String,
    created_at: i64,
    size_bytes: i64,
    sha256: String,
}

/// A snapshot row with its bytes.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SnapshotRow {
    #[sqlx(flatten)]
    pub(super) meta: SnapshotMetaRow,
    pub(super) data: Vec<u8>,
}

impl TryFrom<SnapshotMetaRow> for SnapshotMeta {
    type Error = StoreError;

    fn try_from(row: SnapshotMetaRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            session_id: stored_session_id(&row.session_id)?,
            created_at: Timestamp(row.created_at),
            size_bytes: u64::try_from(row.size_bytes).map_err(|_| {
                StoreError::InvalidData(format!("negative snapshot size {}", row.size_bytes))
            })?,
            sha256: unhex_sha256(&row.sha256)?,
        })
    }
}

/// An audit event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// `None` for events that concern no session (or an id that was refused).
    pub session_id: Option<SessionId>,
    pub at: Timestamp,
    /// Who did it: a user id, or `gateway` / `gc` for the gateway itself.
    pub actor: String,
    /// What was done, a short fixed word such as `session.delete`.
    pub action: String,
    pub detail: serde_json::Value,
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct AuditRow {
    id: i64,
    session_id: Option<String>,
    at: i64,
    actor: String,
    action: String,
    detail: String,
}

impl TryFrom<AuditRow> for AuditRecord {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        let detail = serde_json::from_str(&row.detail).map_err(|e| {
            StoreError::InvalidData(format!("audit event {} detail is not JSON: {e}", row.id))
        })?;
        Ok(Self {
            id: row.id,
            event: AuditEvent {
                session_id: row
                    .session_id
                    .as_deref()
                    .map(stored_session_id)
                    .transpose()?,
                at: Timestamp(row.at),
                actor: row.actor,
                action: row.action,
                detail,
            },
        })
    }
}

fn stored_session_id(id: &str) -> Result<SessionId, StoreError> {
    parse_session_id(id)
        .map_err(|e| StoreError::InvalidData(format!("stored session id {id:?}: {e}")))
}

pub(super) fn seconds_to_db(what: &'static str, d: Duration) -> Result<i64, StoreError> {
    if d.subsec_nanos() != 0 || d.is_zero() {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be a positive whole number of seconds, not {d:?}"
        )));
    }
    i64::try_from(d.as_secs())
        .map_err(|_| StoreError::InvalidInput(format!("{what} of {d:?} is too long")))
}

fn seconds_from_db(seconds: i64) -> Result<Duration, StoreError> {
    u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| StoreError::InvalidData(format!("negative duration {seconds} s")))
}

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex_sha256(s: &str) -> Result<[u8; 32], StoreError> {
    let bad = || StoreError::InvalidData(format!("stored SHA-256 {s:?} is not 64 hex digits"));
    if s.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}
