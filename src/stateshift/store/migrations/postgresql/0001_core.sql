-- Facts about the store itself: its id, when it was created.
CREATE TABLE {p}meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO {p}meta (name, value) VALUES ('created_at', CAST({now} AS TEXT));
