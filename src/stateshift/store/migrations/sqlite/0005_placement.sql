-- Placement: residency audit log, forwarding pointers for keys that moved
-- shard, rebalance progress, per-subject data keys, and a probe table.
CREATE TABLE {p}placement_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at DOUBLE PRECISION NOT NULL,
    tag TEXT NOT NULL,
    region TEXT NOT NULL,
    operation TEXT NOT NULL,
    key TEXT NOT NULL,
    home_region TEXT NOT NULL,
    target_region TEXT NOT NULL
);
CREATE TABLE {p}placement_forward (
    partition_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    shard_id TEXT NOT NULL,
    rebalance_id TEXT NOT NULL
);
CREATE TABLE {p}placement_rebalance (
    rebalance_id TEXT PRIMARY KEY,
    region TEXT NOT NULL,
    old_shards TEXT NOT NULL,
    new_shards TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE {p}placement_moves (
    rebalance_id TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (rebalance_id, partition_key)
);
CREATE TABLE {p}subject_keys (
    subject TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    key_bytes BLOB,
    home_region TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    forgotten_at DOUBLE PRECISION
);
CREATE TABLE {p}placement_probe (
    partition_key TEXT NOT NULL,
    item_key TEXT NOT NULL,
    residency TEXT NOT NULL,
    value BLOB NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (partition_key, item_key)
);
