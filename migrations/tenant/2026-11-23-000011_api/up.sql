-- JSON API keys: only a keyed digest of the token is stored; the prefix is public and lets
-- the key be found without scanning digests.
CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
    prefix TEXT NOT NULL UNIQUE,
    digest BYTEA NOT NULL,
    created_by BIGINT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);

-- Stored responses of POSTs sent with an Idempotency-Key (kept 24 hours).
CREATE TABLE api_idempotency (
    key TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 255),
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_body JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
