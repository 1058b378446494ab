-- Schedules (0006): where each cron schedule has got to. last_slot_at is the
-- latest slot (app clock) whose workflow was started, or the moment a tick
-- first saw the schedule; slots after it are due.
CREATE TABLE {p}schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    last_slot_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
