-- The inventory a device sent with its digest (PostgreSQL; mirrors schema/sqlite/0008). Later logins
-- of the device may send the digest alone: any replica then reads the list from here.
-- apps: the list as protobuf bytes, zlib-compressed (gateway/login/held_inventories.py). Both are NULL
-- for a device whose SDK sends no digest, and are replaced with the row's package names.
ALTER TABLE device_inventories ADD COLUMN inventory_digest TEXT;
ALTER TABLE device_inventories ADD COLUMN apps BYTEA;
