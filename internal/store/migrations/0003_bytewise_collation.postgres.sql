-- Fleet queries compare these columns with < and >, and the version key
-- only orders correctly bytewise. A locale collation (en_US.UTF-8) would
-- make PostgreSQL disagree with SQLite and with in-memory evaluation.
ALTER TABLE devices ALTER COLUMN installed_version_key TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN serial TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN status TYPE TEXT COLLATE "C";
ALTER TABLE devices ALTER COLUMN link TYPE TEXT COLLATE "C";
ALTER TABLE device_tags ALTER COLUMN value TYPE TEXT COLLATE "C";
ALTER TABLE products ALTER COLUMN slug TYPE TEXT COLLATE "C";
ALTER TABLE products ALTER COLUMN hardware_id TYPE TEXT COLLATE "C";
