-- The audit chain is extended when a transaction commits, not when it writes its first entry.
-- Before, the insert trigger took the chain lock and held it until commit, so every
-- transaction of a tenant that audited anything (a bill run, a burst of CRM events, an
-- import) ran one after the other from its first audited write on. Now an entry is written
-- pending (seq = -id, no hash) and a deferred constraint trigger, run at commit, takes the
-- lock and links the transaction's pending entries in the order they were written. The lock
-- is held only for that last step, and the chain is still one unbroken sequence in commit
-- order. Pending entries are visible only to their own transaction: every committed entry is
-- chained.

DROP TRIGGER audit_log_chain ON audit_log;
DROP FUNCTION audit_log_chain();

CREATE INDEX audit_log_pending_idx ON audit_log (id) WHERE seq < 0;

CREATE FUNCTION audit_log_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := -NEW.id;
    NEW.prev_hash := NULL;
    NEW.hash := '\x'::bytea;
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_log_link() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    last_seq BIGINT;
    last_hash BYTEA;
    own_seq BIGINT;
    r audit_log;
BEGIN
    -- One firing per entry; the first links them all, the others find their entry linked
    -- (looked up by id: the pending index still holds the entries just linked).
    EXECUTE format('SELECT seq FROM %I.audit_log WHERE id = $1', TG_TABLE_SCHEMA)
        INTO own_seq USING NEW.id;
    IF own_seq IS NULL OR own_seq > 0 THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.audit_log'));
    EXECUTE format('SELECT seq, hash FROM %I.audit_log WHERE seq > 0 ORDER BY seq DESC LIMIT 1', TG_TABLE_SCHEMA)
        INTO last_seq, last_hash;
    FOR r IN EXECUTE format('SELECT * FROM %I.audit_log WHERE seq < 0 ORDER BY id', TG_TABLE_SCHEMA) LOOP
        r.seq := coalesce(last_seq, 0) + 1;
        r.prev_hash := last_hash;
        r.hash := audit_digest(last_hash, r);
        EXECUTE format('UPDATE %I.audit_log SET seq = $1, prev_hash = $2, hash = $3 WHERE id = $4', TG_TABLE_SCHEMA)
            USING r.seq, r.prev_hash, r.hash, r.id;
        last_seq := r.seq;
        last_hash := r.hash;
    END LOOP;
    RETURN NULL;
END
$$;

-- Append-only, except for the one change linking makes: a pending entry gets its place in the
-- chain, its content untouched.
CREATE OR REPLACE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq < 0 AND NEW.seq > 0 AND OLD.prev_hash IS NULL
       AND (OLD.id, OLD.at, OLD.actor_user_id, OLD.actor_email, OLD.ip, OLD.action,
            OLD.entity_type, OLD.entity_id, OLD.before, OLD.after, OLD.reason)
           IS NOT DISTINCT FROM
           (NEW.id, NEW.at, NEW.actor_user_id, NEW.actor_email, NEW.ip, NEW.action,
            NEW.entity_type, NEW.entity_id, NEW.before, NEW.after, NEW.reason) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER audit_log_pending BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_pending();
CREATE CONSTRAINT TRIGGER audit_log_link AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audit_log_link();
