-- The declared schema: what migrating from zero must produce.
CREATE TABLE {p}schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE {p}meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
