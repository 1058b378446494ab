-- Placement of state items: the partition key that chose their shard (the
-- item's own key unless one was given) and their residency tag ('' when
-- untagged), so the residency check and the rebalancer cover state.
ALTER TABLE {p}state_items ADD COLUMN partition_key TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}state_items ADD COLUMN residency TEXT NOT NULL DEFAULT '';
UPDATE {p}state_items SET partition_key = key;
