-- Named queries of the operational side: schedules, listing, the doctor.

-- name: schedule_rows
SELECT name, cron, last_slot_at FROM {p}schedules;

-- name: schedule_add
INSERT INTO {p}schedules (name, cron, last_slot_at, updated_at)
VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING;

-- name: schedule_lock
SELECT cron, last_slot_at FROM {p}schedules WHERE name = ?;

-- name: schedule_lock@postgresql
SELECT cron, last_slot_at FROM {p}schedules WHERE name = ? FOR UPDATE;

-- name: schedule_advance
UPDATE {p}schedules SET cron = ?, last_slot_at = ?, updated_at = ?
WHERE name = ?;

-- name: list_workflows
-- Empty strings mean "any"; statuses is a comma-separated list.
SELECT workflow_id, name, status, waiting_for, due_at, created_at, updated_at,
    finished_at, parent_id, error_type, error_message
FROM {p}workflows
WHERE (CAST(? AS TEXT) = ''
        OR ',' || CAST(? AS TEXT) || ',' LIKE '%,' || status || ',%')
    AND (CAST(? AS TEXT) = '' OR name = CAST(? AS TEXT))
    AND (CAST(? AS TEXT) = '' OR parent_id = CAST(? AS TEXT))
ORDER BY created_at DESC, workflow_id DESC
LIMIT ?;

-- name: count_by_status
SELECT status, COUNT(*) FROM {p}workflows GROUP BY status ORDER BY status;

-- name: doctor_pending_not_due
SELECT workflow_id, name, status, waiting_for FROM {p}workflows
WHERE status = 'pending' AND due_at IS NULL;

-- name: doctor_running_without_lease
SELECT workflow_id, name, status, waiting_for FROM {p}workflows
WHERE status = 'running' AND lease_expires_at IS NULL AND due_at IS NULL;

-- name: doctor_waiting_for_nothing
SELECT workflow_id, name, status, waiting_for FROM {p}workflows
WHERE status = 'waiting' AND due_at IS NULL AND wait_event IS NULL
    AND wait_count = 0;

-- name: doctor_event_not_woken
-- The awaited event is already queued, yet the workflow was never made due.
SELECT w.workflow_id, w.name, w.status, w.waiting_for FROM {p}workflows w
WHERE w.status = 'waiting' AND w.due_at IS NULL AND w.wait_event IS NOT NULL
    AND EXISTS (
        SELECT 1 FROM {p}workflow_events e
        WHERE e.workflow_id = w.workflow_id AND e.name = w.wait_event
            AND e.consumed_seq IS NULL
    );

-- name: doctor_children_short
-- Fewer unfinished children will notify the parent than it still waits for.
SELECT w.workflow_id, w.name, w.status, w.waiting_for FROM {p}workflows w
WHERE w.status = 'waiting' AND w.due_at IS NULL AND w.wait_count > 0
    AND w.wait_count > (
        SELECT COUNT(*) FROM {p}workflows c
        WHERE c.parent_id = w.workflow_id AND c.notify_parent = 1
            AND c.status NOT IN ('succeeded', 'failed', 'cancelled')
    );

-- name: doctor_overdue
-- Due long ago, or leased by a worker that stopped renewing long ago: the
-- wake-up source exists, but nothing seems to be running due work.
SELECT workflow_id, name, status, waiting_for, due_at, lease_expires_at
FROM {p}workflows
WHERE status IN ('pending', 'running', 'waiting')
    AND (due_at < ? OR lease_expires_at < {now} - ?);

-- name: doctor_parked
SELECT workflow_id, name, status, error_message FROM {p}workflows
WHERE status IN ('dead', 'blocked', 'compensation_failed');

-- name: doctor_make_due
UPDATE {p}workflows SET due_at = ?, updated_at = ?
WHERE workflow_id = ? AND status = ? AND due_at IS NULL;

-- name: history_export
SELECT name, input, status, app_version, created_at, updated_at
FROM {p}workflows WHERE workflow_id = ?;

-- name: history_steps
SELECT seq, kind, name, status, attempts, output, error_type, error_message
FROM {p}workflow_steps WHERE workflow_id = ? ORDER BY seq;
