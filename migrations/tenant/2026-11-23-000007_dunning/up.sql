-- Stored payment methods, charge attempts, dunning policies and the collections workspace.

-- A tokenized method at a gateway; the card number itself never reaches us.
CREATE TABLE payment_methods (
    id            BIGSERIAL PRIMARY KEY,
    account_id    BIGINT NOT NULL REFERENCES accounts (id),
    gateway       TEXT NOT NULL CHECK (gateway IN ('sandbox', 'stripe')),
    token         TEXT NOT NULL CHECK (token <> ''),
    customer_ref  TEXT,
    brand         TEXT NOT NULL,
    last4         TEXT NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    exp_month     INT CHECK (exp_month BETWEEN 1 AND 12),
    exp_year      INT CHECK (exp_year BETWEEN 2000 AND 2100),
    is_default    BOOLEAN NOT NULL DEFAULT true,
    -- Charge every invoice of the account at finalization.
    auto_charge   BOOLEAN NOT NULL DEFAULT true,
    -- needs_update: a hard decline; never charged again until replaced.
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_update', 'removed')),
    status_reason TEXT,
    created_by    BIGINT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX payment_methods_default_idx ON payment_methods (account_id)
    WHERE is_default AND status <> 'removed';

-- One row per charge of an invoice. The idempotency key goes to the gateway, so a crash after
-- the gateway answered and before we recorded it re-asks instead of charging twice; at most
-- one attempt per invoice is live at a time.
CREATE TABLE charge_attempts (
    id                 BIGSERIAL PRIMARY KEY,
    invoice_id         BIGINT NOT NULL REFERENCES invoices (id),
    account_id         BIGINT NOT NULL REFERENCES accounts (id),
    payment_method_id  BIGINT NOT NULL REFERENCES payment_methods (id),
    attempt_no         INT NOT NULL CHECK (attempt_no >= 1),
    trigger            TEXT NOT NULL CHECK (trigger IN ('finalize', 'retry', 'dunning', 'manual')),
    idempotency_key    TEXT NOT NULL UNIQUE,
    currency           TEXT NOT NULL,
    amount             NUMERIC(19,4),
    status             TEXT NOT NULL DEFAULT 'scheduled'
                       CHECK (status IN ('scheduled', 'processing', 'pending', 'succeeded',
                                         'soft_decline', 'hard_decline', 'retryable_error', 'canceled')),
    scheduled_for      TIMESTAMPTZ NOT NULL,
    attempted_at       TIMESTAMPTZ,
    gateway            TEXT,
    gateway_ref        TEXT,
    decline_code       TEXT,
    message            TEXT,
    payment_id         BIGINT REFERENCES payments (id),
    created_by         BIGINT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (invoice_id, attempt_no)
);
CREATE UNIQUE INDEX charge_attempts_live_idx ON charge_attempts (invoice_id)
    WHERE status IN ('scheduled', 'processing', 'pending');
CREATE INDEX charge_attempts_account_idx ON charge_attempts (account_id, created_at DESC);

-- What the built-in sandbox gateway has charged, keyed like a real gateway by idempotency key.
CREATE TABLE sandbox_charges (
    idempotency_key  TEXT PRIMARY KEY,
    reference        TEXT NOT NULL UNIQUE,
    token            TEXT NOT NULL,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    code             TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Webhook events received from a gateway, stored first so a replay has one effect.
CREATE TABLE gateway_events (
    gateway       TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    type          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    result        TEXT NOT NULL DEFAULT '',
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway, event_id)
);

CREATE TABLE dunning_policies (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (name <> ''),
    is_default  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX dunning_policies_default_idx ON dunning_policies (is_default) WHERE is_default;

-- A policy's steps and retry rules; edits add a version, and an invoice keeps the version its
-- dunning started with.
CREATE TABLE dunning_policy_versions (
    id          BIGSERIAL PRIMARY KEY,
    policy_id   BIGINT NOT NULL REFERENCES dunning_policies (id),
    version     INT NOT NULL,
    definition  JSONB NOT NULL,
    created_by  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (policy_id, version)
);

-- Collections settings and state of an account (kept beside accounts, which is at diesel's
-- column limit for comfortable use).
CREATE TABLE account_collections (
    account_id         BIGINT PRIMARY KEY REFERENCES accounts (id),
    dunning_policy_id  BIGINT REFERENCES dunning_policies (id),
    dunning_excluded   BOOLEAN NOT NULL DEFAULT false,
    on_hold            BOOLEAN NOT NULL DEFAULT false,
    hold_reason        TEXT,
    paused_until       DATE,
    pause_reason       TEXT,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((paused_until IS NULL) = (pause_reason IS NULL))
);

CREATE TABLE invoice_dunning (
    invoice_id         BIGINT PRIMARY KEY REFERENCES invoices (id),
    account_id         BIGINT NOT NULL REFERENCES accounts (id),
    policy_version_id  BIGINT NOT NULL REFERENCES dunning_policy_versions (id),
    started_on         DATE NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stopped', 'completed')),
    stop_reason        TEXT,
    disputed           BOOLEAN NOT NULL DEFAULT false,
    dispute_reason     TEXT,
    last_evaluated_on  DATE,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX invoice_dunning_account_idx ON invoice_dunning (account_id);

-- Every executed (or skipped) action of a step, once: the unique key is what makes catch-up
-- and concurrent engines safe.
CREATE TABLE dunning_actions (
    id                 BIGSERIAL PRIMARY KEY,
    invoice_id         BIGINT NOT NULL REFERENCES invoices (id),
    account_id         BIGINT NOT NULL REFERENCES accounts (id),
    policy_version_id  BIGINT NOT NULL REFERENCES dunning_policy_versions (id),
    step_no            INT NOT NULL,
    action             TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('done', 'skipped', 'failed')),
    detail             TEXT NOT NULL DEFAULT '',
    due_on             DATE NOT NULL,
    executed_on        DATE NOT NULL,
    ref_kind           TEXT,
    ref_id             BIGINT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (invoice_id, policy_version_id, step_no, action)
);
CREATE INDEX dunning_actions_account_idx ON dunning_actions (account_id, created_at DESC);

CREATE TABLE collections_tasks (
    id                BIGSERIAL PRIMARY KEY,
    account_id        BIGINT NOT NULL REFERENCES accounts (id),
    invoice_id        BIGINT REFERENCES invoices (id),
    title             TEXT NOT NULL CHECK (title <> ''),
    detail            TEXT NOT NULL DEFAULT '',
    assignee_user_id  BIGINT,
    due_on            DATE NOT NULL,
    status            TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'canceled')),
    source            TEXT NOT NULL CHECK (source IN ('dunning', 'payment_failed', 'manual')),
    resolution        TEXT,
    created_by        BIGINT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at      TIMESTAMPTZ,
    completed_by      BIGINT
);
CREATE INDEX collections_tasks_open_idx ON collections_tasks (status, due_on);
CREATE INDEX collections_tasks_account_idx ON collections_tasks (account_id);

CREATE TABLE collections_notes (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id),
    invoice_id  BIGINT REFERENCES invoices (id),
    kind        TEXT NOT NULL CHECK (kind IN ('note', 'call', 'email')),
    body        TEXT NOT NULL CHECK (body <> ''),
    outcome     TEXT,
    created_by  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX collections_notes_account_idx ON collections_notes (account_id, created_at DESC);

-- Dunning waits while a promise is open and its date has not passed; a promise past its date
-- with money still due is broken and dunning resumes.
CREATE TABLE promises_to_pay (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    invoice_id   BIGINT REFERENCES invoices (id),
    currency     TEXT NOT NULL,
    amount       NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    promised_on  DATE NOT NULL,
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'kept', 'broken', 'canceled')),
    note         TEXT NOT NULL DEFAULT '',
    created_by   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ
);
CREATE INDEX promises_to_pay_account_idx ON promises_to_pay (account_id, status);

-- Late fees are invoices of their own (finalized invoices never change).
ALTER TABLE invoices DROP CONSTRAINT invoices_source_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_source_check
    CHECK (source IN ('bill_run', 'manual', 'amendment', 'credit', 'late_fee'));
