-- Control data shared by all tenants. Tenant-owned data never lives here.
CREATE TABLE control.tenants (
    id            BIGSERIAL PRIMARY KEY,
    slug          TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    schema_name   TEXT GENERATED ALWAYS AS ('t_' || id::text) STORED UNIQUE,
    -- Version of the newest tenant migration applied to this tenant's schema;
    -- requests to a tenant whose schema is behind are refused.
    schema_version TEXT,
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE control.users (
    id              BIGSERIAL PRIMARY KEY,
    email           TEXT NOT NULL,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash   TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON control.users (lower(email));

CREATE TABLE control.memberships (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES control.users (id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'finance', 'collections', 'sales', 'auditor')),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON control.memberships (user_id);

-- Server-side sessions: the cookie carries a random token, the table only its SHA-256.
CREATE TABLE control.sessions (
    id            BIGSERIAL PRIMARY KEY,
    token_hash    BYTEA NOT NULL UNIQUE,
    user_id       BIGINT NOT NULL REFERENCES control.users (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_user_idx ON control.sessions (user_id);

-- One queue for all background work, drained with FOR UPDATE SKIP LOCKED.
CREATE TABLE control.jobs (
    id            BIGSERIAL PRIMARY KEY,
    tenant_id     BIGINT REFERENCES control.tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]*$'),
    payload       JSONB NOT NULL DEFAULT '{}'::jsonb,
    -- Optional key that makes enqueueing idempotent (e.g. one bill run per tenant and day).
    dedupe_key    TEXT UNIQUE,
    status        TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'dead')),
    run_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts      INT NOT NULL DEFAULT 0,
    max_attempts  INT NOT NULL DEFAULT 8 CHECK (max_attempts > 0),
    locked_by     TEXT,
    locked_at     TIMESTAMPTZ,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE INDEX jobs_ready_idx ON control.jobs (run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_running_idx ON control.jobs (locked_at) WHERE status = 'running';
CREATE INDEX jobs_tenant_idx ON control.jobs (tenant_id, status);
