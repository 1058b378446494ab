-- Placement: the residency audit log, forwarding rows, rebalance progress,
-- per-subject data keys and the probe table.

-- name: audit_append
INSERT INTO {p}placement_audit
    (at, tag, region, operation, key, home_region, target_region)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: audit_list
SELECT at, tag, region, operation, key, home_region, target_region
FROM {p}placement_audit
WHERE at >= ?
ORDER BY at, id
LIMIT ?;

-- name: forward_get
SELECT kind, shard_id FROM {p}placement_forward WHERE partition_key = ?;

-- name: forward_put
INSERT INTO {p}placement_forward (partition_key, kind, shard_id, rebalance_id)
VALUES (?, ?, ?, ?)
ON CONFLICT (partition_key) DO UPDATE
SET kind = excluded.kind, shard_id = excluded.shard_id,
    rebalance_id = excluded.rebalance_id;

-- name: forward_delete
DELETE FROM {p}placement_forward WHERE partition_key = ? AND kind = ?;

-- name: forward_clear
DELETE FROM {p}placement_forward WHERE rebalance_id = ?;

-- name: rebalance_get
SELECT region, old_shards, new_shards, state
FROM {p}placement_rebalance WHERE rebalance_id = ?;

-- name: rebalance_put
INSERT INTO {p}placement_rebalance
    (rebalance_id, region, old_shards, new_shards, state, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, {now}, {now})
ON CONFLICT (rebalance_id) DO UPDATE
SET state = excluded.state, updated_at = excluded.updated_at;

-- name: move_put
INSERT INTO {p}placement_moves (rebalance_id, partition_key, source, target, state)
VALUES (?, ?, ?, ?, 'planned')
ON CONFLICT (rebalance_id, partition_key) DO NOTHING;

-- name: move_state
UPDATE {p}placement_moves SET state = ?
WHERE rebalance_id = ? AND partition_key = ?;

-- name: move_list
SELECT partition_key, source, target, state FROM {p}placement_moves
WHERE rebalance_id = ? ORDER BY partition_key;

-- name: subject_key_get
SELECT key_id, key_bytes, forgotten_at FROM {p}subject_keys WHERE subject = ?;

-- name: subject_key_create
INSERT INTO {p}subject_keys
    (subject, key_id, key_bytes, home_region, created_at, forgotten_at)
VALUES (?, ?, ?, ?, {now}, NULL)
ON CONFLICT (subject) DO NOTHING;

-- name: subject_key_forget
INSERT INTO {p}subject_keys AS k
    (subject, key_id, key_bytes, home_region, created_at, forgotten_at)
VALUES (?, '', NULL, ?, {now}, {now})
ON CONFLICT (subject) DO UPDATE
SET key_bytes = NULL, forgotten_at = COALESCE(k.forgotten_at, {now});


-- name: probe_get
SELECT value, version, residency FROM {p}placement_probe
WHERE partition_key = ? AND item_key = ?;

-- name: probe_put
INSERT INTO {p}placement_probe AS t (partition_key, item_key, residency, value, version)
VALUES (?, ?, ?, ?, 1)
ON CONFLICT (partition_key, item_key) DO UPDATE
SET value = excluded.value, residency = excluded.residency,
    version = t.version + 1;

