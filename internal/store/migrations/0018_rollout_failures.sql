-- Cumulative failures (docs/rollouts.md, "Thresholds"): a row that fails,
-- is offered again and fails again must count twice, and a retry must not
-- hide a failure the pause threshold had not acknowledged. Each
-- device_updates row counts the times it became failed, rolled-back or
-- timed-out; a rollout's cumulative failures are their sum. A counter per
-- row rather than per rollout keeps failure reports of many devices from
-- queueing on one hot rollouts row.
--
-- The history of earlier retries is not recorded, so the backfill counts
-- what the thresholds counted until now (one per row in a failure state)
-- and caps the acknowledged failures at that: upgrading neither pauses nor
-- aborts a running rollout, and failures are counted fully from here on.
ALTER TABLE device_updates ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
UPDATE device_updates SET failures = 1 WHERE state IN ('failed', 'rolled-back', 'timed-out');
UPDATE rollouts SET failures_acked = (SELECT COUNT(*) FROM device_updates u
    WHERE u.rollout_id = rollouts.id AND u.state IN ('failed', 'rolled-back', 'timed-out'))
WHERE failures_acked > (SELECT COUNT(*) FROM device_updates u
    WHERE u.rollout_id = rollouts.id AND u.state IN ('failed', 'rolled-back', 'timed-out'));
