-- Everything in this folder runs once per tenant schema, with search_path set to it.
-- Tables are unqualified on purpose.

-- Tenant settings (company profile, invoice defaults, security policy) as typed JSON values.
CREATE TABLE settings (
    key         TEXT PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_.]*$'),
    value       JSONB NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every side effect that leaves the system is written here in the same transaction
-- as the change that causes it, then delivered by a job with retries.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    idempotency_key  TEXT UNIQUE,
    payload          JSONB NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'retrying', 'delivered', 'captured', 'dead')),
    attempts         INT NOT NULL DEFAULT 0,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX outbox_status_idx ON outbox (status, id);
CREATE INDEX outbox_kind_idx ON outbox (kind, id DESC);
