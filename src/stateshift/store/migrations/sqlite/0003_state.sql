-- Versioned key-value state and the blobs of its large values.
-- A deleted or expired item stays as a row (a tombstone, its value cleared
-- by the purge) so its version keeps growing if the key is written again.
-- UNIQUE (expires_at, namespace, key) is the index of the purge; declared
-- inline so its name follows the table's prefix.
CREATE TABLE {p}state_items (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value BLOB,
    blob_ref TEXT,
    expires_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key),
    UNIQUE (expires_at, namespace, key)
);
CREATE TABLE {p}state_blobs (
    blob_ref TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
