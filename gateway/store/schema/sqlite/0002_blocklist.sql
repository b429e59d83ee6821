-- The malicious-app registry, its version counter, applied bundles, feeds and the audit trail.

CREATE TABLE blocklist_entries (
    -- Derived from (key_type, value, package_name, source): the same indicator from
    -- the same source is one row however often it is imported.
    entry_id         TEXT PRIMARY KEY,
    key_type         TEXT NOT NULL,
    value            TEXT NOT NULL,
    package_name     TEXT NOT NULL,
    source           TEXT NOT NULL,
    category         TEXT NOT NULL,
    severity         TEXT NOT NULL,
    family           TEXT NOT NULL,
    source_reference TEXT NOT NULL,
    confidence       INTEGER NOT NULL,
    valid_from       REAL,
    valid_until      REAL,
    revoked          INTEGER NOT NULL,
    revoke_reason    TEXT NOT NULL,
    created_at       REAL NOT NULL,
    created_by       TEXT NOT NULL,
    modified_at      REAL NOT NULL,
    modified_by      TEXT NOT NULL,
    -- The registry version that last changed this row: gateways reload "change_seq > mine".
    change_seq       INTEGER NOT NULL
);
CREATE INDEX blocklist_entries_change_seq ON blocklist_entries (change_seq);

-- One row: the registry version (bumped once per committed change) and the last import.
CREATE TABLE blocklist_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    version        INTEGER NOT NULL,
    last_import_at REAL
);
INSERT INTO blocklist_state (id, version, last_import_at) VALUES (1, 0, NULL);

-- The last signed bundle applied per publisher: refuses rollbacks and forks.
CREATE TABLE applied_bundles (
    publisher      TEXT PRIMARY KEY,
    bundle_version INTEGER NOT NULL,
    entries_sha256 TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    applied_at     REAL NOT NULL
);

-- AIP-155 keys of admin writes, so a retried AddEntry or RevokeEntry does not act twice.
CREATE TABLE admin_requests (
    request_id  TEXT PRIMARY KEY,
    operation   TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    entry_id    TEXT NOT NULL,
    at          REAL NOT NULL
);

-- What each subscribed feed did last.
CREATE TABLE feed_status (
    url             TEXT PRIMARY KEY,
    last_attempt_at REAL NOT NULL,
    last_success_at REAL,
    last_error      TEXT NOT NULL,
    etag            TEXT NOT NULL,
    bundle_version  INTEGER
);

-- Every admin change: who, when, what, and the entry before and after (JSON).
CREATE TABLE audit_log (
    audit_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_log_target ON audit_log (target, audit_id);
