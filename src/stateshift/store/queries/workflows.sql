-- Named queries of the workflow engine. Every write to a claimed workflow
-- carries the claim's epoch (the fence): zero rows changed means LeaseLost.

-- name: insert
INSERT INTO {p}workflows (workflow_id, name, input, input_hash, status,
    app_version, parent_id, epoch, lease_owner, lease_expires_at, due_at,
    deadline_at, created_at, updated_at, partition_key, residency, data_subject)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {now} + ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id) DO NOTHING;

-- name: start
-- The insert of one new workflow on its own (one round trip): no row back
-- when the id is taken.
INSERT INTO {p}workflows (workflow_id, name, input, input_hash, status,
    app_version, parent_id, epoch, lease_owner, lease_expires_at, due_at,
    deadline_at, created_at, updated_at, partition_key, residency, data_subject)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {now} + ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id) DO NOTHING
RETURNING workflow_id;

-- name: identity
SELECT name, input_hash, status FROM {p}workflows WHERE workflow_id = ?;

-- name: claim_next
-- A lease that ran out first (its worker crashed: one more recovery), else
-- the earliest due workflow, in one statement. COALESCE stops at the first
-- subquery that finds a row.
UPDATE {p}workflows SET status = 'running', epoch = epoch + 1, lease_owner = ?,
    lease_expires_at = {now} + ?, due_at = NULL, updated_at = ?,
    recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END
WHERE workflow_id = COALESCE(
    (SELECT workflow_id FROM {p}workflows
    WHERE lease_expires_at < {now}
        AND (app_version = ? OR app_version = '' OR ? = '')
    ORDER BY lease_expires_at LIMIT 1),
    (SELECT workflow_id FROM {p}workflows
    WHERE due_at <= ? AND (app_version = ? OR app_version = '' OR ? = '')
    ORDER BY due_at LIMIT 1)
)
RETURNING workflow_id, name, input, epoch, recoveries, cancel_requested,
    parent_id, deadline_at, partition_key, residency, data_subject;

-- name: claim_next@postgresql
UPDATE {p}workflows SET status = 'running', epoch = epoch + 1, lease_owner = ?,
    lease_expires_at = {now} + ?, due_at = NULL, updated_at = ?,
    recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END
WHERE workflow_id = COALESCE(
    (SELECT workflow_id FROM {p}workflows
    WHERE lease_expires_at < {now}
        AND (app_version = ? OR app_version = '' OR ? = '')
    ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED),
    (SELECT workflow_id FROM {p}workflows
    WHERE due_at <= ? AND (app_version = ? OR app_version = '' OR ? = '')
    ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)
)
RETURNING workflow_id, name, input, epoch, recoveries, cancel_requested,
    parent_id, deadline_at, partition_key, residency, data_subject;

-- name: claim_own
UPDATE {p}workflows SET status = 'running', epoch = epoch + 1,
    lease_expires_at = {now} + ?, due_at = NULL, updated_at = ?,
    recoveries = recoveries + 1
WHERE workflow_id = (
    SELECT workflow_id FROM {p}workflows
    WHERE lease_expires_at IS NOT NULL AND lease_owner = ?
        AND (app_version = ? OR app_version = '' OR ? = '')
        -- Not the workflows this process has claimed or is running.
        AND workflow_id NOT IN (SELECT value FROM json_each(?))
    LIMIT 1
)
RETURNING workflow_id, name, input, epoch, recoveries, cancel_requested,
    parent_id, deadline_at, partition_key, residency, data_subject;

-- name: claim_own@postgresql
UPDATE {p}workflows SET status = 'running', epoch = epoch + 1,
    lease_expires_at = {now} + ?, due_at = NULL, updated_at = ?,
    recoveries = recoveries + 1
WHERE workflow_id = (
    SELECT workflow_id FROM {p}workflows
    WHERE lease_expires_at IS NOT NULL AND lease_owner = ?
        AND (app_version = ? OR app_version = '' OR ? = '')
        -- Not the workflows this process has claimed or is running.
        AND workflow_id NOT IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))
    LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING workflow_id, name, input, epoch, recoveries, cancel_requested,
    parent_id, deadline_at, partition_key, residency, data_subject;

-- name: claim_id
UPDATE {p}workflows SET status = 'running', epoch = epoch + 1, lease_owner = ?,
    lease_expires_at = {now} + ?, due_at = NULL, updated_at = ?,
    recoveries = recoveries + CASE WHEN status = 'running' THEN 1 ELSE 0 END
WHERE workflow_id = ? AND (due_at <= ? OR lease_expires_at < {now})
    AND (app_version = ? OR app_version = '' OR ? = '')
RETURNING workflow_id, name, input, epoch, recoveries, cancel_requested,
    parent_id, deadline_at, partition_key, residency, data_subject;

-- name: history
SELECT seq, kind, name, status, attempts, output, error_type, error_message,
    error_traceback
FROM {p}workflow_steps WHERE workflow_id = ? ORDER BY seq;

-- name: claim_history@sqlite
-- One more RETURNING column for claim_own, claim_next and claim_id: the
-- claimed workflow's history as a JSON array of history rows (output in hex),
-- so a claim is one statement on its own: no BEGIN, history read or COMMIT.
-- Sound on SQLite because a lone write statement takes the write lock before
-- it reads: no step of the workflow can commit between the claim and this
-- subquery. Not on PostgreSQL, whose statement snapshot could miss a step
-- committed by the old holder while the claim waited for the row lock.
(SELECT json_group_array(json_array(seq, kind, name, status, attempts,
        CASE WHEN output IS NULL THEN NULL ELSE hex(output) END,
        error_type, error_message, error_traceback))
    FROM (SELECT * FROM {p}workflow_steps s
        WHERE s.workflow_id = {p}workflows.workflow_id ORDER BY seq))

-- name: claim_batch@postgresql
-- claim_next for many workflows in one statement (as many as the limit): leases that ran out
-- first (oldest first), then the earliest due; a row another claim has
-- locked is skipped. The two last columns (0 for a lease that ran out, 1
-- for due work; then the time it ranks by) give the order to run them in.
WITH expired AS (
    SELECT workflow_id, 0 AS tier, lease_expires_at AS ranked_at
    FROM {p}workflows
    WHERE lease_expires_at < {now}
        AND (app_version = ? OR app_version = '' OR ? = '')
    ORDER BY lease_expires_at LIMIT CAST(? AS integer) FOR UPDATE SKIP LOCKED
), due AS (
    SELECT workflow_id, 1 AS tier, due_at AS ranked_at FROM {p}workflows
    WHERE due_at <= ? AND (app_version = ? OR app_version = '' OR ? = '')
        AND workflow_id NOT IN (SELECT workflow_id FROM expired)
    ORDER BY due_at
    LIMIT CAST(? AS integer) - (SELECT count(*) FROM expired)
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT * FROM expired UNION ALL SELECT * FROM due
)
UPDATE {p}workflows w SET status = 'running', epoch = w.epoch + 1,
    lease_owner = ?, lease_expires_at = {now} + ?, due_at = NULL,
    updated_at = ?,
    recoveries = w.recoveries + CASE WHEN w.status = 'running' THEN 1 ELSE 0 END
FROM picked WHERE w.workflow_id = picked.workflow_id
RETURNING w.workflow_id, w.name, w.input, w.epoch, w.recoveries,
    w.cancel_requested, w.parent_id, w.deadline_at, w.partition_key,
    w.residency, w.data_subject, picked.tier, picked.ranked_at;

-- name: histories@postgresql
-- The histories of the workflows a claim_batch took (ids as a JSON array),
-- read in the claim's transaction: a later statement, so it sees every step
-- their old holders committed before the claim got their rows.
SELECT workflow_id, seq, kind, name, status, attempts, output, error_type,
    error_message, error_traceback
FROM {p}workflow_steps
WHERE workflow_id IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))
ORDER BY workflow_id, seq;

-- name: release_batch@postgresql
-- release for many claimed workflows in one statement, each fenced by its
-- own epoch (pairs [workflow_id, epoch] as a JSON array).
UPDATE {p}workflows w SET status = 'pending', due_at = ?, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = ?
FROM (SELECT r ->> 0 AS workflow_id, CAST(r ->> 1 AS bigint) AS epoch
    FROM jsonb_array_elements(CAST(? AS jsonb)) AS r) AS released
WHERE w.workflow_id = released.workflow_id AND w.epoch = released.epoch
RETURNING w.workflow_id;

-- name: fence
UPDATE {p}workflows SET lease_expires_at = {now} + ?, updated_at = ?
WHERE workflow_id = ? AND epoch = ?
RETURNING cancel_requested;

-- name: checkpoint@postgresql
-- The common step in one statement and one round trip (run on its own, in
-- autocommit): the fence renews the lease only at the claim's epoch, and the
-- checkpoint is inserted only from the fenced row. No row back: LeaseLost.
WITH fence AS (
    UPDATE {p}workflows SET lease_expires_at = {now} + ?, updated_at = ?
    WHERE workflow_id = ? AND epoch = ?
    RETURNING workflow_id, cancel_requested
), saved AS (
    INSERT INTO {p}workflow_steps (workflow_id, seq, kind, name, status,
        attempts, output, started_at, finished_at)
    SELECT workflow_id, ?, ?, ?, 'ok', ?, ?, ?, ? FROM fence
    ON CONFLICT (workflow_id, seq) DO UPDATE SET kind = excluded.kind,
        name = excluded.name, status = excluded.status,
        attempts = excluded.attempts, output = excluded.output,
        error_type = NULL, error_message = NULL, error_traceback = NULL,
        finished_at = excluded.finished_at
    RETURNING seq
)
SELECT cancel_requested, (SELECT COUNT(*) FROM saved) FROM fence;

-- name: checkpoint_in_lease@sqlite
-- The common step in one statement, run on its own (autocommit takes the
-- write lock first, as BEGIN IMMEDIATE does): the checkpoint is inserted only
-- while the claim's epoch holds. It leaves the lease as it is; the engine
-- uses it only while the lease was renewed recently. No row back: LeaseLost.
INSERT INTO {p}workflow_steps (workflow_id, seq, kind, name, status,
    attempts, output, started_at, finished_at)
SELECT workflow_id, ?, ?, ?, 'ok', ?, ?, ?, ? FROM {p}workflows
WHERE workflow_id = ? AND epoch = ?
ON CONFLICT (workflow_id, seq) DO UPDATE SET kind = excluded.kind,
    name = excluded.name, status = excluded.status,
    attempts = excluded.attempts, output = excluded.output,
    error_type = NULL, error_message = NULL, error_traceback = NULL,
    finished_at = excluded.finished_at
RETURNING (SELECT cancel_requested FROM {p}workflows w
    WHERE w.workflow_id = {p}workflow_steps.workflow_id);

-- name: save_step
INSERT INTO {p}workflow_steps (workflow_id, seq, kind, name, status, attempts,
    output, error_type, error_message, error_traceback, started_at, finished_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id, seq) DO UPDATE SET kind = excluded.kind,
    name = excluded.name, status = excluded.status,
    attempts = excluded.attempts, output = excluded.output,
    error_type = excluded.error_type, error_message = excluded.error_message,
    error_traceback = excluded.error_traceback,
    finished_at = excluded.finished_at;

-- name: suspend
UPDATE {p}workflows SET status = 'waiting',
    due_at = CASE WHEN cancel_requested = 1 THEN ? ELSE ? END,
    waiting_for = ?, wait_event = ?, wait_count = ?, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = ?
WHERE workflow_id = ? AND epoch = ?;

-- name: release
UPDATE {p}workflows SET status = 'pending', due_at = ?, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = ?
WHERE workflow_id = ? AND epoch = ?;

-- name: finish
UPDATE {p}workflows SET status = ?, result = ?, error_type = ?,
    error_message = ?, error_traceback = ?, due_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, waiting_for = NULL, wait_event = NULL,
    wait_count = 0, updated_at = ?, finished_at = ?
WHERE workflow_id = ? AND epoch = ?
RETURNING notify_parent;

-- name: park
UPDATE {p}workflows SET status = ?, error_type = ?, error_message = ?,
    error_traceback = ?, due_at = NULL, lease_owner = NULL,
    lease_expires_at = NULL, updated_at = ?
WHERE workflow_id = ? AND epoch = ?;

-- name: lock
SELECT status FROM {p}workflows WHERE workflow_id = ?;

-- name: lock@postgresql
SELECT status FROM {p}workflows WHERE workflow_id = ? FOR UPDATE;

-- name: notify_parent
UPDATE {p}workflows SET wait_count = wait_count - 1,
    due_at = CASE WHEN wait_count <= 1 THEN ? ELSE due_at END
WHERE workflow_id = ? AND status = 'waiting' AND wait_count > 0;

-- name: clear_notify
UPDATE {p}workflows SET notify_parent = 0
WHERE parent_id = ? AND notify_parent = 1;

-- name: next_event
SELECT position, payload FROM {p}workflow_events
WHERE workflow_id = ? AND name = ? AND consumed_seq IS NULL
ORDER BY position LIMIT 1;

-- name: consume_event
UPDATE {p}workflow_events SET consumed_seq = ? WHERE position = ?;

-- name: insert_event
INSERT INTO {p}workflow_events (workflow_id, name, event_id, payload, created_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT DO NOTHING;

-- name: wake_for_event
UPDATE {p}workflows SET due_at = ?
WHERE workflow_id = ? AND status = 'waiting' AND wait_event = ?;

-- name: request_cancel
UPDATE {p}workflows SET cancel_requested = 1,
    due_at = CASE WHEN status IN ('pending', 'waiting') THEN ? ELSE due_at END
WHERE workflow_id = ? AND status IN ('pending', 'running', 'waiting');

-- name: children
SELECT workflow_id FROM {p}workflows
WHERE parent_id = ? AND status IN ('pending', 'running', 'waiting');

-- name: revive
UPDATE {p}workflows SET status = 'pending', due_at = ?, recoveries = 0,
    epoch = epoch + 1, lease_owner = NULL, lease_expires_at = NULL,
    error_type = NULL, error_message = NULL, error_traceback = NULL,
    updated_at = ?
WHERE workflow_id = ? AND status IN ('dead', 'blocked', 'compensation_failed');

-- name: status
SELECT workflow_id, name, status, result, error_type, error_message,
    error_traceback, waiting_for, created_at, updated_at, finished_at,
    app_version, parent_id, recoveries, due_at
FROM {p}workflows WHERE workflow_id = ?;

-- name: steps
SELECT seq, kind, name, status, attempts, started_at, finished_at, error_type,
    error_message, error_traceback
FROM {p}workflow_steps WHERE workflow_id = ? ORDER BY seq;

-- name: next_wake
SELECT MIN(due_at) FROM {p}workflows WHERE due_at IS NOT NULL;

-- name: cancel_parked
UPDATE {p}workflows SET status = 'cancelled', cancel_requested = 1,
    epoch = epoch + 1, due_at = NULL, updated_at = ?, finished_at = ?
WHERE workflow_id = ? AND status IN ('dead', 'blocked', 'compensation_failed')
RETURNING notify_parent, parent_id;

-- name: children_of
SELECT workflow_id, status, result, error_type, error_message
FROM {p}workflows WHERE parent_id = ?;

-- name: outcome
SELECT workflow_id, status, result, error_type, error_message
FROM {p}workflows WHERE workflow_id = ?;

-- name: mark_notify
UPDATE {p}workflows SET notify_parent = 1 WHERE workflow_id = ?;
