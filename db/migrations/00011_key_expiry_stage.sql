-- +goose Up

-- How far the expiry job has got with a key's current expiry: 0 nothing
-- yet, 1 the 14-day notice (api_key.expiring) handled, 2 the 1-day notice
-- handled, 3 api_key.expired recorded. The job moves a key on with a
-- conditional UPDATE (… WHERE expiry_stage < the new stage) in the same
-- transaction as the event, so however many instances or overlapping runs
-- try, one of them writes each event. Setting or changing the expiry
-- (create, edit) sets it again, to the stages whose time has already
-- come: the person choosing the date needs no notice of it, and a key
-- given a later expiry gets its notices and its expiry recorded anew.
ALTER TABLE api_keys ADD COLUMN expiry_stage smallint NOT NULL DEFAULT 0 CHECK (expiry_stage BETWEEN 0 AND 3);
-- Keys that exist before this migration start at the stage already due
-- at the upgrade: a key that expired before it (maybe long ago) gets no api_key.expired, and one within 14
-- days or a day of its expiry no notice already late, so upgrading writes
-- no burst of stale alerts (nor, later, their webhooks). Their next stage
-- comes when due.
UPDATE api_keys SET expiry_stage = CASE
        WHEN expires_at <= now() THEN 3
        WHEN expires_at <= now() + interval '1 day' THEN 2
        ELSE 1 END
    WHERE expires_at IS NOT NULL AND expires_at <= now() + interval '14 days';
-- The job's scan: live keys with an expiry and something left to record.
CREATE INDEX api_keys_expiry_due_idx ON api_keys (expires_at, id)
    WHERE expires_at IS NOT NULL AND revoked_at IS NULL AND expiry_stage < 3;

-- +goose Down
DROP INDEX api_keys_expiry_due_idx;
ALTER TABLE api_keys DROP COLUMN expiry_stage;
