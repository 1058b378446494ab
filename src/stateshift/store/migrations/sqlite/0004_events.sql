-- Events: idempotency records, queue messages, the outbox and the inbox.

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

-- Queue messages: ready, in_flight (invisible until visible_at), done, dead.
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
    UNIQUE (queue, dedup_id)
);
CREATE INDEX {prefix}queue_messages_due
    ON {p}queue_messages (queue, status, visible_at);
CREATE INDEX {prefix}queue_messages_key
    ON {p}queue_messages (queue, msg_key, status);
CREATE INDEX {prefix}queue_messages_claimed
    ON {p}queue_messages (queue, claimed_at);

-- Messages published to topics, written with the state change that made them.
CREATE TABLE {p}outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    msg_key TEXT,
    payload BLOB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
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
