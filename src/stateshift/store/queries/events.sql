-- Named queries of the events patterns: idempotency, queues, outbox, inbox.

-- name: idempotency_acquire
-- Take the key when it is new, expired, or held in progress by the same
-- execution (a re-run of one workflow step) with the same payload.
INSERT INTO {p}idempotency AS r
    (key, status, payload_hash, owner, result, expires_at, created_at)
VALUES (?, 'in_progress', ?, ?, NULL, {now} + ?, {now})
ON CONFLICT (key) DO UPDATE SET
    status = 'in_progress',
    payload_hash = excluded.payload_hash,
    owner = excluded.owner,
    result = NULL,
    expires_at = excluded.expires_at,
    created_at = excluded.created_at
WHERE r.expires_at <= {now}
   OR (r.status = 'in_progress' AND r.owner = excluded.owner
       AND r.payload_hash = excluded.payload_hash)

-- name: idempotency_get
SELECT status, payload_hash, result, expires_at - {now}
FROM {p}idempotency WHERE key = ?

-- name: idempotency_complete
UPDATE {p}idempotency
SET status = 'completed', result = ?, expires_at = {now} + ?
WHERE key = ? AND owner = ? AND status = 'in_progress'

-- name: idempotency_release
DELETE FROM {p}idempotency WHERE key = ? AND owner = ? AND status = 'in_progress'

-- name: idempotency_purge
DELETE FROM {p}idempotency WHERE expires_at <= {now}

-- name: queue_insert
INSERT INTO {p}queue_messages
    (id, queue, task, args, msg_key, priority, dedup_id, status, visible_at,
     attempts, max_attempts, created_at, residency)
VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', {now} + ?, 0, ?, {now}, ?)
ON CONFLICT (queue, dedup_id) DO NOTHING

-- name: queue_insert_alone
-- The insert on its own (one round trip): no row back when the dedup id is
-- taken.
INSERT INTO {p}queue_messages
    (id, queue, task, args, msg_key, priority, dedup_id, status, visible_at,
     attempts, max_attempts, created_at, residency)
VALUES (?, ?, ?, ?, ?, ?, ?, 'ready', {now} + ?, 0, ?, {now}, ?)
ON CONFLICT (queue, dedup_id) DO NOTHING
RETURNING id

-- name: queue_find_dedup
SELECT id FROM {p}queue_messages WHERE queue = ? AND dedup_id = ?

-- name: queue_lock
SELECT pg_advisory_xact_lock(?)

-- name: queue_in_flight
SELECT COUNT(*) FROM {p}queue_messages
WHERE queue = ? AND status = 'in_flight' AND visible_at > {now}

-- name: queue_recent_claims
SELECT COUNT(*) FROM {p}queue_messages WHERE queue = ? AND claimed_at > {now} - ?

-- name: queue_busy_keys
SELECT msg_key, COUNT(*) FROM {p}queue_messages
WHERE queue = ? AND status = 'in_flight' AND visible_at > {now}
  AND msg_key IS NOT NULL
GROUP BY msg_key

-- name: queue_key_heads
SELECT msg_key, MIN(seq) FROM {p}queue_messages
WHERE queue = ? AND status IN ('ready', 'in_flight') AND msg_key IS NOT NULL
GROUP BY msg_key

-- name: queue_candidates
-- The second and third parameters are the residency filter: '*' claims
-- every tag, else only the tags listed in ',EU,US,' (',,' is untagged).
SELECT seq, id, msg_key, task, args, attempts, max_attempts, residency
FROM {p}queue_messages
WHERE queue = ? AND status IN ('ready', 'in_flight') AND visible_at <= {now}
  AND (CAST(? AS TEXT) = '*' OR instr(?, ',' || residency || ',') > 0)
ORDER BY priority DESC, seq
LIMIT ?

-- name: queue_candidates@postgresql
SELECT seq, id, msg_key, task, args, attempts, max_attempts, residency
FROM {p}queue_messages
WHERE queue = ? AND status IN ('ready', 'in_flight') AND visible_at <= {now}
  AND (CAST(? AS TEXT) = '*' OR strpos(?, ',' || residency || ',') > 0)
ORDER BY priority DESC, seq
LIMIT ?
FOR UPDATE SKIP LOCKED

-- name: queue_claim
UPDATE {p}queue_messages
SET status = 'in_flight', visible_at = {now} + ?, attempts = attempts + 1,
    lease_token = ?, lease_owner = ?, claimed_at = {now}
WHERE id = ?

-- name: queue_claim_batch
-- A claim in one statement, for a queue without limits: the candidates of
-- queue_candidates (same residency filter), claimed as they are picked.
-- ``attempts`` comes back counted with this claim.
UPDATE {p}queue_messages
SET status = 'in_flight', visible_at = {now} + ?, attempts = attempts + 1,
    lease_token = ?, lease_owner = ?, claimed_at = {now}
WHERE seq IN (
    SELECT seq FROM {p}queue_messages
    WHERE queue = ? AND status IN ('ready', 'in_flight') AND visible_at <= {now}
      AND (CAST(? AS TEXT) = '*' OR instr(?, ',' || residency || ',') > 0)
    ORDER BY priority DESC, seq
    LIMIT ?)
RETURNING seq, id, msg_key, task, args, attempts, max_attempts, residency, priority

-- name: queue_claim_batch@postgresql
-- SKIP LOCKED: concurrent claimers pass over each other's picks.
UPDATE {p}queue_messages
SET status = 'in_flight', visible_at = {now} + ?, attempts = attempts + 1,
    lease_token = ?, lease_owner = ?, claimed_at = {now}
WHERE seq IN (
    SELECT seq FROM {p}queue_messages
    WHERE queue = ? AND status IN ('ready', 'in_flight') AND visible_at <= {now}
      AND (CAST(? AS TEXT) = '*' OR strpos(?, ',' || residency || ',') > 0)
    ORDER BY priority DESC, seq
    LIMIT ?
    FOR UPDATE SKIP LOCKED)
RETURNING seq, id, msg_key, task, args, attempts, max_attempts, residency, priority

-- name: queue_ack
UPDATE {p}queue_messages
SET status = 'done', finished_at = {now}, last_error = NULL
WHERE id = ? AND lease_token = ? AND status = 'in_flight'

-- name: queue_fail
UPDATE {p}queue_messages
SET status = CASE WHEN attempts >= max_attempts OR ? = 1 THEN 'dead' ELSE 'ready' END,
    visible_at = {now} + ?,
    last_error = ?,
    finished_at = CASE WHEN attempts >= max_attempts OR ? = 1 THEN {now} END
WHERE id = ? AND lease_token = ? AND status = 'in_flight'

-- name: queue_unclaim
UPDATE {p}queue_messages
SET status = 'ready', visible_at = {now}, attempts = attempts - 1,
    claimed_at = NULL
WHERE id = ? AND lease_token = ? AND status = 'in_flight'

-- name: queue_status
SELECT status FROM {p}queue_messages WHERE id = ?

-- name: queue_names
SELECT DISTINCT queue FROM {p}queue_messages ORDER BY queue

-- name: queue_counts
SELECT queue, status, COUNT(*) FROM {p}queue_messages
GROUP BY queue, status ORDER BY queue, status

-- name: queue_dead
SELECT id, task, msg_key, attempts, last_error, finished_at
FROM {p}queue_messages WHERE queue = ? AND status = 'dead'
ORDER BY seq LIMIT ?

-- name: queue_message
SELECT id, queue, task, msg_key, priority, dedup_id, status, attempts,
       max_attempts, last_error, visible_at - {now}, created_at, finished_at
FROM {p}queue_messages WHERE id = ?

-- name: queue_redrive_all
UPDATE {p}queue_messages
SET status = 'ready', attempts = 0, visible_at = {now}, finished_at = NULL
WHERE queue = ? AND status = 'dead'

-- name: queue_redrive_one
UPDATE {p}queue_messages
SET status = 'ready', attempts = 0, visible_at = {now}, finished_at = NULL
WHERE queue = ? AND id = ? AND status = 'dead'

-- name: queue_prune
DELETE FROM {p}queue_messages WHERE status = 'done' AND finished_at < {now} - ?

-- name: outbox_insert
INSERT INTO {p}outbox (message_id, topic, msg_key, payload, created_at, residency)
VALUES (?, ?, ?, ?, {now}, ?)

-- name: outbox_pending
-- The second and third parameters filter by residency as queue_candidates
-- does: only messages the sink's region may process are handed to it.
SELECT o.seq, o.message_id, o.topic, o.msg_key, o.payload, o.created_at,
       d.status, COALESCE(d.attempts, 0), COALESCE(d.visible_at - {now}, 0),
       o.residency
FROM {p}outbox o
LEFT JOIN {p}outbox_deliveries d ON d.sink = ? AND d.message_id = o.message_id
WHERE (d.status IS NULL OR d.status = 'retry')
  AND (CAST(? AS TEXT) = '*' OR instr(?, ',' || o.residency || ',') > 0)
ORDER BY o.seq
LIMIT ?

-- name: outbox_pending@postgresql
SELECT o.seq, o.message_id, o.topic, o.msg_key, o.payload, o.created_at,
       d.status, COALESCE(d.attempts, 0), COALESCE(d.visible_at - {now}, 0),
       o.residency
FROM {p}outbox o
LEFT JOIN {p}outbox_deliveries d ON d.sink = ? AND d.message_id = o.message_id
WHERE (d.status IS NULL OR d.status = 'retry')
  AND (CAST(? AS TEXT) = '*' OR strpos(?, ',' || o.residency || ',') > 0)
ORDER BY o.seq
LIMIT ?

-- name: outbox_delivered
INSERT INTO {p}outbox_deliveries
    (sink, message_id, status, attempts, last_error, visible_at, updated_at)
VALUES (?, ?, 'delivered', ?, NULL, {now}, {now})
ON CONFLICT (sink, message_id) DO UPDATE SET
    status = 'delivered', attempts = excluded.attempts, last_error = NULL,
    updated_at = excluded.updated_at

-- name: outbox_failed
INSERT INTO {p}outbox_deliveries
    (sink, message_id, status, attempts, last_error, visible_at, updated_at)
VALUES (?, ?, ?, ?, ?, {now} + ?, {now})
ON CONFLICT (sink, message_id) DO UPDATE SET
    status = excluded.status, attempts = excluded.attempts,
    last_error = excluded.last_error, visible_at = excluded.visible_at,
    updated_at = excluded.updated_at

-- name: outbox_prune_deliveries
DELETE FROM {p}outbox_deliveries WHERE message_id IN (
    SELECT message_id FROM {p}outbox WHERE created_at < {now} - ?)

-- name: outbox_prune
DELETE FROM {p}outbox WHERE created_at < {now} - ?

-- name: relay_lease
INSERT INTO {p}relay_leases AS r (sink, owner, expires_at)
VALUES (?, ?, {now} + ?)
ON CONFLICT (sink) DO UPDATE SET
    owner = excluded.owner, expires_at = excluded.expires_at
WHERE r.expires_at <= {now} OR r.owner = excluded.owner

-- name: relay_release
DELETE FROM {p}relay_leases WHERE sink = ? AND owner = ?

-- name: inbox_status
SELECT status, attempts FROM {p}inbox WHERE consumer = ? AND message_id = ?

-- name: inbox_done
-- Inserted in the handler's own transaction: a second delivery that raced
-- the first finds the row and rolls its effects back.
INSERT INTO {p}inbox AS i
    (consumer, message_id, status, attempts, last_error, updated_at)
VALUES (?, ?, 'done', ?, NULL, {now})
ON CONFLICT (consumer, message_id) DO UPDATE SET
    status = 'done', attempts = excluded.attempts, last_error = NULL,
    updated_at = excluded.updated_at
WHERE i.status = 'failed'

-- name: inbox_failed
INSERT INTO {p}inbox AS i
    (consumer, message_id, status, attempts, last_error, updated_at)
VALUES (?, ?, ?, 1, ?, {now})
ON CONFLICT (consumer, message_id) DO UPDATE SET
    status = CASE WHEN i.attempts + 1 >= ? THEN 'dead' ELSE 'failed' END,
    attempts = i.attempts + 1, last_error = excluded.last_error,
    updated_at = excluded.updated_at
WHERE i.status = 'failed'

-- name: inbox_dead
SELECT consumer, message_id, attempts, last_error FROM {p}inbox
WHERE status = 'dead' ORDER BY updated_at LIMIT ?
