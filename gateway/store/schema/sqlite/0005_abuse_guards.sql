-- Replay protection and the FREEZE safety valve (SQLite; mirrors schema/postgresql/0005).

-- A nonce a device sent with a login; a second login with it is a replay.  Rows older than the
-- freshest telemetry the gateway accepts are useless (such a login is refused anyway) and purged.
CREATE TABLE login_nonces (
    device_id TEXT NOT NULL,
    nonce     TEXT NOT NULL,
    seen_at   REAL NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE INDEX login_nonces_seen_at ON login_nonces (seen_at);

-- One row.  tripped_at is set when FREEZE verdicts exceed the cap and stays set until the
-- security team resets the valve; counting starts again at counting_since.
CREATE TABLE safety_valve (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    tripped_at     REAL,
    counting_since REAL NOT NULL,
    reset_at       REAL,
    reset_by       TEXT
);
INSERT INTO safety_valve (id, counting_since) VALUES (1, 0);

-- The valve counts recent FREEZE verdicts; retention deletes old verdicts by time.
CREATE INDEX verdicts_action_time ON verdicts (action, decided_at);
CREATE INDEX verdicts_time ON verdicts (decided_at);
