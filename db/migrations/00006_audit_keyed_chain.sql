-- +goose Up

-- The audit chain becomes keyed: from now on each event's hash is an
-- HMAC-SHA256 under a key derived from KEYWARD_SECRET_KEY (web/audit), so
-- someone who can write to the database but does not hold the secret can
-- neither forge an event nor recompute a chain after changing one.
--
-- A migration cannot know the secret, so it cannot rehash what is stored.
-- It marks every existing event as 'sha256' instead, and every existing
-- head as not keyed. The first event the application appends to such a
-- chain is preceded by an audit.chain_keyed marker, itself keyed, whose
-- prev_hash is the last SHA-256 hash: the old part is sealed by the new.
-- Verification checks each event with its own algorithm and refuses a
-- 'sha256' event after a keyed one. Chains started after this migration
-- are keyed from their first event.
ALTER TABLE audit_events ADD COLUMN hash_alg text NOT NULL DEFAULT 'sha256'
    CHECK (hash_alg IN ('sha256', 'hmac-sha256'));
-- Writers say which algorithm they used; no default hides a writer that
-- does not.
ALTER TABLE audit_events ALTER COLUMN hash_alg DROP DEFAULT;

ALTER TABLE audit_chain_heads ADD COLUMN keyed boolean NOT NULL DEFAULT false;
ALTER TABLE audit_chain_heads ALTER COLUMN keyed DROP DEFAULT;

-- A head only moves forward: its sequence number grows with every event,
-- it never stops being keyed, and it is never deleted. Moving a head back
-- would hide events cut from the end of its chain; deleting it would hide
-- a whole chain. (Someone allowed to disable triggers can still do both;
-- the signed checkpoints that `keyward serve` logs are what catches them.)
-- +goose StatementBegin
CREATE FUNCTION audit_chain_heads_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.chain_id = OLD.chain_id AND NEW.seq > OLD.seq AND (NEW.keyed OR NOT OLD.keyed) THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_chain_heads only moves forward: chain %, seq % to %', OLD.chain_id, OLD.seq, NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'audit_chain_heads only moves forward: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_chain_heads_forward BEFORE UPDATE OR DELETE ON audit_chain_heads
    FOR EACH ROW EXECUTE FUNCTION audit_chain_heads_forward_only();
CREATE TRIGGER audit_chain_heads_no_truncate BEFORE TRUNCATE ON audit_chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_heads_forward_only();

-- +goose Down
-- Keyed events stay: the previous version's verifier, which knows only
-- SHA-256, reports the first of them as altered.
DROP TRIGGER audit_chain_heads_no_truncate ON audit_chain_heads;
DROP TRIGGER audit_chain_heads_forward ON audit_chain_heads;
DROP FUNCTION audit_chain_heads_forward_only();
ALTER TABLE audit_chain_heads DROP COLUMN keyed;
ALTER TABLE audit_events DROP COLUMN hash_alg;
