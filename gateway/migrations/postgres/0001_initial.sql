-- Huddle gateway state, PostgreSQL flavour (the SQLite flavour in ../sqlite has the same
-- tables, columns and meaning). Times are milliseconds since the Unix epoch, UTC, as BIGINT:
-- the same integer in both databases, so ordering and "only moves forward" comparisons are
-- plain integer comparisons everywhere.

CREATE TABLE sessions (
    -- 26 characters of lowercase RFC 4648 base32: 128 random bits (see store::ids).
    id                   TEXT PRIMARY KEY CHECK (id ~ '^[a-z2-7]{26}$'),
    namespace            TEXT NOT NULL,
    owner_name           TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('running', 'hibernated')),
    created_at           BIGINT NOT NULL,
    last_activity_at     BIGINT NOT NULL,
    idle_timeout_seconds BIGINT NOT NULL CHECK (idle_timeout_seconds > 0),
    max_lifetime_seconds BIGINT CHECK (max_lifetime_seconds > 0),
    deleted_at           BIGINT
);

-- The idle sweep and listings only ever look at live sessions.
CREATE INDEX sessions_live_by_activity ON sessions (last_activity_at) WHERE deleted_at IS NULL;

CREATE TABLE participants (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    invited_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, user_id)
);

CREATE TABLE snapshots (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    -- lowercase hex SHA-256 of `data`
    sha256     TEXT NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- the whole snapshot tar
    data       BYTEA NOT NULL,
    -- Set in the same transaction that inserts the row, after the data is in; readers only
    -- ever look at complete rows, so a snapshot is either wholly stored or invisible.
    complete   BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK (octet_length(data) = size_bytes)
);

CREATE INDEX snapshots_by_session ON snapshots (session_id, id DESC);

CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- no foreign key: the audit log outlives sessions and records refusals of unknown ids
    session_id TEXT,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    -- JSON, as text
    detail     TEXT NOT NULL
);

CREATE INDEX audit_events_by_session ON audit_events (session_id, at DESC, id DESC);
CREATE INDEX audit_events_by_time ON audit_events (at DESC, id DESC);
