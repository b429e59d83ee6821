-- Commands to core banking: the outbox, its deliveries to webhook endpoints, and stream consumers.
-- A command row is written in the same transaction as the verdict that caused it.

CREATE TABLE commands (
    -- Position in the command feed: assigned at commit, so the feed never skips a committed row.
    cursor      INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id  TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    -- Per-customer order; core banking applies a customer's commands in this order.
    sequence    INTEGER NOT NULL,
    -- NULL for commands the security team issued (UNFREEZE).
    verdict_id  TEXT REFERENCES verdicts (verdict_id),
    created_at  REAL NOT NULL,
    -- Who issued it: "gateway" for verdicts, the operator for UNFREEZE.
    issued_by   TEXT NOT NULL,
    -- The serialized mtsg.v1.Command without sequence and cursor (those are the columns above).
    body        BLOB NOT NULL,
    UNIQUE (customer_id, sequence)
);

-- One row per command and push endpoint.  state: pending -> delivered | dead.
CREATE TABLE command_deliveries (
    cursor           INTEGER NOT NULL REFERENCES commands (cursor),
    endpoint         TEXT NOT NULL,
    -- Copied from the command so "is an earlier command of this customer still pending?" is one index probe.
    customer_id      TEXT NOT NULL,
    sequence         INTEGER NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    -- A dispatcher holds a delivery while it sends it; a lease that ran out belongs to nobody.
    lease_owner      TEXT NOT NULL DEFAULT '',
    lease_expires_at REAL NOT NULL DEFAULT 0,
    last_attempt_at  REAL,
    last_status      INTEGER,
    last_error       TEXT NOT NULL DEFAULT '',
    delivered_at     REAL,
    PRIMARY KEY (cursor, endpoint)
) WITHOUT ROWID;
CREATE INDEX command_deliveries_customer ON command_deliveries (endpoint, customer_id, sequence)
    WHERE state = 'pending';
-- Also the claim's path: the table is WITHOUT ROWID, so this index ends in the key (cursor, endpoint) and
-- claims walk a state's deliveries in feed order, stopping at the first few that are due (no sort).
CREATE INDEX command_deliveries_state ON command_deliveries (state, endpoint, cursor);

-- Every HTTP attempt, for `mtsg commands show`.
CREATE TABLE command_attempts (
    id          INTEGER PRIMARY KEY,
    cursor      INTEGER NOT NULL,
    endpoint    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status      INTEGER,
    outcome     TEXT NOT NULL,
    error       TEXT NOT NULL
);
CREATE INDEX command_attempts_cursor ON command_attempts (cursor, endpoint);

-- Endpoints that answered 410 Gone stay disabled until an operator enables them again.
CREATE TABLE command_endpoints (
    endpoint        TEXT PRIMARY KEY,
    disabled_at     REAL,
    disabled_reason TEXT NOT NULL DEFAULT ''
);

-- The acknowledged position of each gRPC stream consumer.
CREATE TABLE command_consumers (
    consumer_id         TEXT PRIMARY KEY,
    acknowledged_cursor INTEGER NOT NULL,
    updated_at          REAL NOT NULL
);
