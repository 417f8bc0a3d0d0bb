-- Payments received from accounts and how they are applied to invoices.
-- An invoice's amount_paid is always the sum of its applications (maintained by the app in
-- the same transaction; a test checks the invariant after every operation).
CREATE TABLE payments (
    id               BIGSERIAL PRIMARY KEY,
    account_id       BIGINT NOT NULL REFERENCES accounts (id),
    method           TEXT NOT NULL CHECK (method IN ('check', 'wire', 'ach', 'card', 'other')),
    currency         TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount           NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    received_on      DATE NOT NULL,
    reference        TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL DEFAULT 'succeeded' CHECK (status IN ('succeeded', 'reversed')),
    refunded         NUMERIC(19,4) NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= amount),
    reversal_reason  TEXT,
    reversed_at      TIMESTAMPTZ,
    created_by       BIGINT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'reversed') = (reversed_at IS NOT NULL))
);
CREATE INDEX payments_account_idx ON payments (account_id, received_on DESC);

-- Applying cash to an invoice adds a positive row; unapplying (or a reversal) adds a negative
-- one, so the history of every match stays readable and reversible.
CREATE TABLE payment_applications (
    id          BIGSERIAL PRIMARY KEY,
    payment_id  BIGINT NOT NULL REFERENCES payments (id),
    invoice_id  BIGINT NOT NULL REFERENCES invoices (id),
    amount      NUMERIC(19,4) NOT NULL CHECK (amount <> 0),
    created_by  BIGINT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payment_applications_payment_idx ON payment_applications (payment_id);
CREATE INDEX payment_applications_invoice_idx ON payment_applications (invoice_id);

CREATE TABLE refunds (
    id           BIGSERIAL PRIMARY KEY,
    payment_id   BIGINT NOT NULL REFERENCES payments (id),
    amount       NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    refunded_on  DATE NOT NULL,
    reference    TEXT NOT NULL DEFAULT '',
    created_by   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Business events for connectors (CRM write-back, accounting): appended in the transaction of
-- the change, read in order by each consumer from its own cursor.
CREATE TABLE events (
    id          BIGSERIAL PRIMARY KEY,
    type        TEXT NOT NULL CHECK (type ~ '^[a-z][a-z0-9_.]*$'),
    entity      TEXT NOT NULL,
    entity_id   BIGINT NOT NULL,
    payload     JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_entity_idx ON events (entity, entity_id);
