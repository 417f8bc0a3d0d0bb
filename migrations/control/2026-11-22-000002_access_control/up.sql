-- TOTP second factor. Secrets are AES-GCM encrypted with a key derived from ARBOR_SECRET_KEY.
ALTER TABLE control.users
    ADD COLUMN totp_secret_enc   BYTEA,
    ADD COLUMN totp_pending_enc  BYTEA,
    ADD COLUMN totp_enabled_at   TIMESTAMPTZ,
    -- Last accepted 30-second step: a code is never accepted twice (replay protection).
    ADD COLUMN totp_last_step    BIGINT,
    -- Consecutive failed sign-ins and the lockout they caused.
    ADD COLUMN failed_logins     INT NOT NULL DEFAULT 0,
    ADD COLUMN locked_until      TIMESTAMPTZ;

CREATE TABLE control.recovery_codes (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES control.users (id) ON DELETE CASCADE,
    code_hash  BYTEA NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, code_hash)
);

-- A session that passed the password but still owes its second factor.
ALTER TABLE control.sessions
    ADD COLUMN mfa_pending BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE control.invitations (
    id          BIGSERIAL PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES control.tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'finance', 'collections', 'sales', 'auditor')),
    token_hash  BYTEA NOT NULL UNIQUE,
    invited_by  BIGINT REFERENCES control.users (id) ON DELETE SET NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invitations_tenant_idx ON control.invitations (tenant_id, created_at DESC);

CREATE TABLE control.password_resets (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES control.users (id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Per-tenant security policy that must be checked before any tenant schema is touched.
ALTER TABLE control.tenants
    ADD COLUMN require_2fa_roles TEXT[] NOT NULL DEFAULT '{}';
