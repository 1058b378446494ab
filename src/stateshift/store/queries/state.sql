-- Named queries of versioned state (stateshift.state). Times are the app's
-- clock, passed in, so tests can move it and expiry agrees with it.

-- name: lock_item
SELECT version, expires_at, blob_ref, (value IS NOT NULL OR blob_ref IS NOT NULL)
FROM {p}state_items
WHERE namespace = ? AND key = ?

-- name: lock_item@postgresql
SELECT version, expires_at, blob_ref, (value IS NOT NULL OR blob_ref IS NOT NULL)
FROM {p}state_items
WHERE namespace = ? AND key = ?
FOR UPDATE

-- A version read but not written is checked under a shared lock, so no other
-- writer can change it between the check and the commit.
-- name: check_item
SELECT version, expires_at, (value IS NOT NULL OR blob_ref IS NOT NULL)
FROM {p}state_items
WHERE namespace = ? AND key = ?

-- name: check_item@postgresql
SELECT version, expires_at, (value IS NOT NULL OR blob_ref IS NOT NULL)
FROM {p}state_items
WHERE namespace = ? AND key = ?
FOR SHARE

-- name: insert_item
INSERT INTO {p}state_items
    (namespace, key, version, value, blob_ref, expires_at, updated_at,
    partition_key, residency)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (namespace, key) DO NOTHING

-- name: update_item
UPDATE {p}state_items
SET version = ?, value = ?, blob_ref = ?, expires_at = ?, updated_at = ?,
    partition_key = ?, residency = ?
WHERE namespace = ? AND key = ? AND version = ?

-- Point reads (stateshift.state._rows, built there because they are joined
-- with the forwarding rows of placement) return tombstones and expired rows
-- too: a unit needs their version, and visibility is decided by the caller
-- with the same rule as the scans below (not expired, and a value present).

-- Scans bring the blobs of the database's own blob table with their rows:
-- one statement is one snapshot, where a second one (PostgreSQL, READ
-- COMMITTED) could miss a blob that a write replaced meanwhile.
-- name: scan_range
SELECT i.key, i.version, i.value, i.blob_ref, i.expires_at, i.residency, b.data
FROM {p}state_items i
LEFT JOIN {p}state_blobs b ON b.blob_ref = i.blob_ref
WHERE i.namespace = ? AND i.key > ? AND i.key >= ? AND i.key < ?
    AND (i.expires_at IS NULL OR i.expires_at > ?)
    AND (i.value IS NOT NULL OR i.blob_ref IS NOT NULL)
ORDER BY i.key
LIMIT ?

-- name: scan_open
SELECT i.key, i.version, i.value, i.blob_ref, i.expires_at, i.residency, b.data
FROM {p}state_items i
LEFT JOIN {p}state_blobs b ON b.blob_ref = i.blob_ref
WHERE i.namespace = ? AND i.key > ? AND i.key >= ?
    AND (i.expires_at IS NULL OR i.expires_at > ?)
    AND (i.value IS NOT NULL OR i.blob_ref IS NOT NULL)
ORDER BY i.key
LIMIT ?

-- name: expired_with_payload
SELECT namespace, key, blob_ref FROM {p}state_items
WHERE expires_at <= ? AND (value IS NOT NULL OR blob_ref IS NOT NULL)
ORDER BY expires_at
LIMIT ?

-- name: clear_payload
UPDATE {p}state_items SET value = NULL, blob_ref = NULL
WHERE namespace = ? AND key = ? AND expires_at <= ?

-- name: old_tombstones
SELECT namespace, key FROM {p}state_items
WHERE expires_at <= ? AND value IS NULL AND blob_ref IS NULL
ORDER BY expires_at
LIMIT ?

-- name: delete_tombstone
DELETE FROM {p}state_items
WHERE namespace = ? AND key = ? AND expires_at <= ?
    AND value IS NULL AND blob_ref IS NULL

-- name: put_blob
INSERT INTO {p}state_blobs (blob_ref, data, created_at) VALUES (?, ?, ?)

-- name: get_blob
SELECT data FROM {p}state_blobs WHERE blob_ref = ?

-- name: delete_blob
DELETE FROM {p}state_blobs WHERE blob_ref = ?
