-- Which endpoints the installation's gateways push commands to (SQLite; mirrors schema/postgresql/0007).
-- Each serving gateway announces its configured endpoints here, so a command made anywhere (the
-- security team's UNFREEZE from a host with no push settings) is queued for every one of them.
ALTER TABLE command_endpoints ADD COLUMN announced_at REAL;
