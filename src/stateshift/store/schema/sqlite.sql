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
CREATE TABLE {p}workflows (
    workflow_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    input BLOB NOT NULL,
    input_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    app_version TEXT NOT NULL,
    parent_id TEXT,
    notify_parent INTEGER NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at DOUBLE PRECISION,
    due_at DOUBLE PRECISION,
    deadline_at DOUBLE PRECISION,
    waiting_for TEXT,
    wait_event TEXT,
    wait_count INTEGER NOT NULL DEFAULT 0,
    recoveries INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    result BLOB,
    error_type TEXT,
    error_message TEXT,
    error_traceback TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    partition_key TEXT NOT NULL DEFAULT '',
    residency TEXT NOT NULL DEFAULT '',
    data_subject TEXT
);
CREATE INDEX {prefix}workflows_due ON {p}workflows (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX {prefix}workflows_lease ON {p}workflows (lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
CREATE INDEX {prefix}workflows_parent ON {p}workflows (parent_id)
    WHERE parent_id IS NOT NULL;
CREATE TABLE {p}workflow_steps (
    workflow_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    output BLOB,
    error_type TEXT,
    error_message TEXT,
    error_traceback TEXT,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    PRIMARY KEY (workflow_id, seq)
);
CREATE TABLE {p}workflow_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL,
    name TEXT NOT NULL,
    event_id TEXT,
    payload BLOB NOT NULL,
    consumed_seq INTEGER,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX {prefix}workflow_events_id ON {p}workflow_events
    (workflow_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX {prefix}workflow_events_queue ON {p}workflow_events
    (workflow_id, name, position) WHERE consumed_seq IS NULL;
-- State (0003): versioned items and the blobs of large values; their
-- partition key and residency tag (0008).
CREATE TABLE {p}state_items (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    value BLOB,
    blob_ref TEXT,
    expires_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    partition_key TEXT NOT NULL DEFAULT '',
    residency TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, key),
    UNIQUE (expires_at, namespace, key)
);
CREATE TABLE {p}state_blobs (
    blob_ref TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
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
-- Placement (0011): values a rebalance holds back from the rows it copied
-- to a new shard until their key's switch (a workflow copy's due time).
CREATE TABLE {p}placement_held (
    table_name TEXT NOT NULL,
    row_key TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    held DOUBLE PRECISION,
    PRIMARY KEY (table_name, row_key)
);
CREATE INDEX {prefix}placement_held_key ON {p}placement_held
    (table_name, partition_key);


-- One record per idempotency key: in progress (with an expiry, so a crashed
-- call never blocks retries forever) or completed (with its result).
CREATE TABLE {p}idempotency (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    owner TEXT NOT NULL,
    result BLOB,
    expires_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX {prefix}idempotency_expires ON {p}idempotency (expires_at);

-- Queue messages: ready, in_flight (invisible until visible_at), done, dead;
-- their residency tag (0010).
CREATE TABLE {p}queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    task TEXT NOT NULL,
    args BLOB NOT NULL,
    msg_key TEXT,
    priority INTEGER NOT NULL,
    dedup_id TEXT,
    status TEXT NOT NULL,
    visible_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    last_error TEXT,
    lease_token TEXT,
    lease_owner TEXT,
    claimed_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    residency TEXT NOT NULL DEFAULT '',
    UNIQUE (queue, dedup_id)
);
CREATE INDEX {prefix}queue_messages_due
    ON {p}queue_messages (queue, status, visible_at);
CREATE INDEX {prefix}queue_messages_key
    ON {p}queue_messages (queue, msg_key, status);
CREATE INDEX {prefix}queue_messages_claimed
    ON {p}queue_messages (queue, claimed_at);

-- Messages published to topics, written with the state change that made them;
-- their residency tag (0010).
CREATE TABLE {p}outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    msg_key TEXT,
    payload BLOB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    residency TEXT NOT NULL DEFAULT ''
);

-- What each relay sink did with each outbox message.
CREATE TABLE {p}outbox_deliveries (
    sink TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    visible_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sink, message_id)
);

-- One relay per sink at a time, so messages of one key leave in order.
CREATE TABLE {p}relay_leases (
    sink TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

-- Messages a consumer has handled (or given up on), by message id.
CREATE TABLE {p}inbox (
    consumer TEXT NOT NULL,
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (consumer, message_id)
);

-- Schedules (0006): how far each cron schedule has got (app clock).
CREATE TABLE {p}schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    last_slot_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
