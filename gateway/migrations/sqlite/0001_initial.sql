-- Huddle gateway state, SQLite flavour (the PostgreSQL flavour in ../postgres has the same
-- tables, columns and meaning). Times are milliseconds since the Unix epoch, UTC, as INTEGER:
-- the same integer in both databases, so ordering and "only moves forward" comparisons are
-- plain integer comparisons everywhere. STRICT tables make SQLite enforce the column types.

CREATE TABLE sessions (
    -- 26 characters of lowercase RFC 4648 base32: 128 random bits (see store::ids).
    id                   TEXT PRIMARY KEY NOT NULL
                         CHECK (length(id) = 26 AND id NOT GLOB '*[^a-z2-7]*'),
    namespace            TEXT NOT NULL,
    owner_name           TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('running', 'hibernated')),
    created_at           INTEGER NOT NULL,
    last_activity_at     INTEGER NOT NULL,
    idle_timeout_seconds INTEGER NOT NULL CHECK (idle_timeout_seconds > 0),
    max_lifetime_seconds INTEGER CHECK (max_lifetime_seconds > 0),
    deleted_at           INTEGER
) STRICT;

-- The idle sweep and listings only ever look at live sessions.
CREATE INDEX sessions_live_by_activity ON sessions (last_activity_at) WHERE deleted_at IS NULL;

CREATE TABLE participants (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    invited_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, user_id)
) STRICT;

CREATE TABLE snapshots (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
    -- lowercase hex SHA-256 of `data`
    sha256     TEXT NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
    -- the whole snapshot tar
    data       BLOB NOT NULL,
    -- Set in the same transaction that inserts the row, after the data is in; readers only
    -- ever look at complete rows, so a snapshot is either wholly stored or invisible.
    complete   INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    CHECK (length(data) = size_bytes)
) STRICT;

CREATE INDEX snapshots_by_session ON snapshots (session_id, id DESC);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- no foreign key: the audit log outlives sessions and records refusals of unknown ids
    session_id TEXT,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    -- JSON, as text
    detail     TEXT NOT NULL CHECK (json_valid(detail))
) STRICT;

CREATE INDEX audit_events_by_session ON audit_events (session_id, at DESC, id DESC);
CREATE INDEX audit_events_by_time ON audit_events (at DESC, id DESC);
