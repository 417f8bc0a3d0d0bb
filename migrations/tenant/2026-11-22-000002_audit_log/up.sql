-- Append-only, hash-chained audit log. Each row's hash covers its content and the previous
-- row's hash, so changing or removing any row breaks the chain from there on
-- (`arbor audit verify`). The chain position (seq) is assigned under a lock inside the
-- insert trigger, so concurrent writers cannot fork the chain.
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    seq           BIGINT NOT NULL UNIQUE,
    at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_user_id BIGINT,
    actor_email   TEXT,
    ip            TEXT,
    action        TEXT NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    entity_type   TEXT NOT NULL,
    entity_id     TEXT,
    before        JSONB,
    after         JSONB,
    reason        TEXT,
    prev_hash     BYTEA,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, seq DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, seq DESC);
CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE FUNCTION audit_digest(prev BYTEA, r audit_log) RETURNS BYTEA
LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(
        coalesce(prev, '\x'::bytea) ||
        convert_to(concat_ws(E'\x1f',
            r.seq::text,
            (extract(epoch FROM r.at) * 1000000)::bigint::text,
            coalesce(r.actor_user_id::text, ''),
            coalesce(r.actor_email, ''),
            coalesce(r.ip, ''),
            r.action,
            r.entity_type,
            coalesce(r.entity_id, ''),
            coalesce(r.before::text, ''),
            coalesce(r.after::text, ''),
            coalesce(r.reason, '')), 'UTF8'))
$$;

CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    last_seq BIGINT;
    last_hash BYTEA;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.audit_log'));
    EXECUTE format('SELECT seq, hash FROM %I.audit_log ORDER BY seq DESC LIMIT 1', TG_TABLE_SCHEMA)
        INTO last_seq, last_hash;
    NEW.seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := last_hash;
    NEW.hash := audit_digest(last_hash, NEW);
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
END
$$;

CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change();
