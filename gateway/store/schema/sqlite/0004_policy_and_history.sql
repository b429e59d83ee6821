-- Policy versions, shadow-scenario firings, and the history the new detectors compare with.

-- Every applied policy document is kept; the highest version is in force.
CREATE TABLE policy_versions (
    version          INTEGER PRIMARY KEY,
    document         TEXT NOT NULL,
    document_sha256  TEXT NOT NULL,
    applied_by       TEXT NOT NULL,
    applied_at       REAL NOT NULL,
    comment          TEXT NOT NULL,
    -- The earlier version this one brought back (a rollback); NULL for a new document.
    restored_version INTEGER
);

-- What shadow scenarios would have done, one row per scenario that fired on a verdict.
CREATE TABLE shadow_firings (
    id             INTEGER PRIMARY KEY,
    verdict_id     TEXT NOT NULL REFERENCES verdicts (verdict_id),
    customer_id    TEXT NOT NULL,
    decided_at     REAL NOT NULL,
    policy_version TEXT NOT NULL,
    scenario_id    TEXT NOT NULL,
    would_action   TEXT NOT NULL,
    actual_action  TEXT NOT NULL
);
CREATE INDEX shadow_firings_time ON shadow_firings (decided_at);

-- Each device's app list at its latest login: sorted package names, zlib-compressed (signals/inventory.py).
CREATE TABLE device_inventories (
    device_id   TEXT PRIMARY KEY,
    observed_at REAL NOT NULL,
    packages    BLOB NOT NULL
) WITHOUT ROWID;

-- The country of a login location, when the SDK or the bank's edge knew it.
ALTER TABLE login_locations ADD COLUMN country_code TEXT NOT NULL DEFAULT '';
