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
-- State (0003): versioned items and the blobs of large values.
CREATE TABLE {p}state_items (
    namespace TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    value BYTEA,
    blob_ref TEXT,
    expires_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key),
    UNIQUE (expires_at, namespace, key)
);
CREATE TABLE {p}state_blobs (
    blob_ref TEXT PRIMARY KEY,
    data BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
