-- The ports a session forwards, and who may open each: `private` (the session's participants,
-- via a cookie on the port's own host) or `public` (anyone with the URL).
CREATE TABLE session_ports (
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    port       INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
    PRIMARY KEY (session_id, port)
) STRICT;
