-- Placement of workflows: the partition key that chose their shard (the
-- workflow id unless one was given, the parent's for a child), their
-- residency tag ('' when untagged), and the data subject whose key seals
-- their input, checkpoints and result (NULL when none).
ALTER TABLE {p}workflows ADD COLUMN partition_key TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}workflows ADD COLUMN residency TEXT NOT NULL DEFAULT '';
ALTER TABLE {p}workflows ADD COLUMN data_subject TEXT;
UPDATE {p}workflows SET partition_key = workflow_id;
