-- Versioned key-value state and the blobs of its large values.
-- A deleted or expired item stays as a row (a tombstone, its value cleared
-- by the purge) so its version keeps growing if the key is written again.
-- Keys collate as "C" (code point order, like SQLite), so a prefix scan is a
-- plain range. UNIQUE (expires_at, namespace, key) is the index of the
-- purge; declared inline so its name follows the table's prefix.
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
