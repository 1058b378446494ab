-- Values a rebalance holds back from the rows it copied to a new shard until
-- their key's switch: a workflow copy's due time, so that no worker of the
-- new shard claims it while the old shard still answers for it.
CREATE TABLE {p}placement_held (
    table_name TEXT NOT NULL,
    row_key TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    held DOUBLE PRECISION,
    PRIMARY KEY (table_name, row_key)
);
CREATE INDEX {prefix}placement_held_key ON {p}placement_held
    (table_name, partition_key);
