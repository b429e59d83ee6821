-- The inventory a device sent with its digest (SQLite; mirrors schema/postgresql/0008). Later logins
-- of the device may send the digest alone: any gateway on this store then reads the list from here.
-- apps: the list as protobuf bytes, zlib-compressed (gateway/login/held_inventories.py). Both are NULL
-- for a device whose SDK sends no digest, and are replaced with the row's package names.
ALTER TABLE device_inventories ADD COLUMN inventory_digest TEXT;
ALTER TABLE device_inventories ADD COLUMN apps BLOB;
