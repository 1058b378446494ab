-- Residency of queue messages and outbox rows: the tag they were written
-- with ('' when untagged). Claims and relays read only the tags their
-- region may process, and `residency check` scans both tables.
ALTER TABLE {p}queue_messages ADD COLUMN residency TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}outbox ADD COLUMN residency TEXT NOT NULL DEFAULT '';
