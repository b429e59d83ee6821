-- Verdicts, device history and phone-number changes.
-- Times are seconds since the Unix epoch (REAL); phone numbers are only keyed hashes.

CREATE TABLE verdicts (
    verdict_id          TEXT PRIMARY KEY,
    -- AIP-155 idempotency key; NULL when the caller sent none.
    request_id          TEXT UNIQUE,
    -- SHA-256 of the request, to refuse a reused request_id carrying a different request.
    request_fingerprint BLOB NOT NULL,
    customer_id         TEXT NOT NULL,
    device_id           TEXT NOT NULL,
    action              TEXT NOT NULL,
    decided_at          REAL NOT NULL,
    -- The serialized CheckLoginResponse, returned as is to a retried request.
    response            BLOB NOT NULL
);
CREATE INDEX verdicts_customer_time ON verdicts (customer_id, decided_at);

CREATE TABLE customer_devices (
    customer_id   TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    first_seen_at REAL NOT NULL,
    last_seen_at  REAL NOT NULL,
    login_count   INTEGER NOT NULL,
    PRIMARY KEY (customer_id, device_id)
) WITHOUT ROWID;
CREATE INDEX customer_devices_device ON customer_devices (device_id);

CREATE TABLE login_locations (
    id              INTEGER PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    verdict_id      TEXT NOT NULL REFERENCES verdicts (verdict_id),
    observed_at     REAL NOT NULL,
    latitude        REAL,
    longitude       REAL,
    accuracy_meters REAL,
    source          TEXT,
    client_ip       TEXT
);
CREATE INDEX login_locations_customer_time ON login_locations (customer_id, observed_at);

CREATE TABLE phone_number_changes (
    event_id             TEXT PRIMARY KEY,
    customer_id          TEXT NOT NULL,
    previous_number_hash TEXT NOT NULL,
    new_number_hash      TEXT NOT NULL,
    -- Which HMAC key made the hashes, so keys can rotate.
    hash_key_id          TEXT NOT NULL,
    changed_at           REAL NOT NULL,
    kind                 TEXT NOT NULL,
    source               TEXT NOT NULL,
    received_at          REAL NOT NULL
);
CREATE INDEX phone_number_changes_customer_time ON phone_number_changes (customer_id, changed_at);
