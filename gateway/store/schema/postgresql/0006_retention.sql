-- Indexes retention needs (PostgreSQL; mirrors schema/sqlite/0006): a purge asks "does anything still point at this verdict?" and
-- "which rows are older than N days?" once per batch, which without them scans whole tables.

CREATE INDEX commands_verdict ON commands (verdict_id);
CREATE INDEX login_locations_verdict ON login_locations (verdict_id);
CREATE INDEX login_locations_time ON login_locations (observed_at);
CREATE INDEX shadow_firings_verdict ON shadow_firings (verdict_id);
CREATE INDEX customer_devices_last_seen ON customer_devices (last_seen_at);
CREATE INDEX phone_number_changes_time ON phone_number_changes (changed_at);

-- `mtsg privacy find-number`: which changes involved a number (its hash under each key).
CREATE INDEX phone_number_changes_previous ON phone_number_changes (previous_number_hash);
CREATE INDEX phone_number_changes_new ON phone_number_changes (new_number_hash);
