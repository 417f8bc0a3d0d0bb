-- CRM connectors (issue #8): where deals come from, how their fields map, and what went back.
CREATE TABLE crm_connectors (
    id                BIGSERIAL PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('hubspot', 'salesforce', 'generic')),
    name              TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 80),
    -- The unguessable path segment of the receiving URL (/hooks/<tenant>/crm/<token>).
    token             TEXT NOT NULL UNIQUE CHECK (token ~ '^[a-z0-9]{24,64}$'),
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
    -- Non-secret settings: accepted HubSpot signature versions, Salesforce organization id,
    -- API bases, write-back target.
    settings          JSONB NOT NULL DEFAULT '{}',
    -- Sealed (AES-GCM, base64): the webhook signing / client secret and the write-back token.
    secret_sealed     TEXT,
    api_token_sealed  TEXT,
    mapping           JSONB NOT NULL,
    mapping_version   INT NOT NULL DEFAULT 1 CHECK (mapping_version >= 1),
    sample_payload    TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every received event, stored raw before anything else happens to it. The event id is the
-- idempotency key: a duplicate only bumps `duplicates`.
CREATE TABLE crm_inbox (
    id            BIGSERIAL PRIMARY KEY,
    connector_id  BIGINT NOT NULL REFERENCES crm_connectors (id),
    event_id      TEXT NOT NULL CHECK (length(event_id) BETWEEN 1 AND 200),
    object_type   TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    change        TEXT NOT NULL,
    occurred_at   TIMESTAMPTZ,
    sequence      BIGINT,
    raw_body      TEXT NOT NULL,
    event         JSONB NOT NULL,
    status        TEXT NOT NULL DEFAULT 'received'
                  CHECK (status IN ('received', 'applied', 'held', 'ignored', 'failed')),
    reason        TEXT,
    problems      JSONB,
    attempts      INT NOT NULL DEFAULT 0,
    duplicates    INT NOT NULL DEFAULT 0,
    effect        JSONB,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at  TIMESTAMPTZ,
    UNIQUE (connector_id, event_id)
);
CREATE INDEX crm_inbox_status_idx ON crm_inbox (status, id);
CREATE INDEX crm_inbox_object_idx ON crm_inbox (connector_id, object_type, object_id, id);

-- What each CRM record became in Arbor, and the newest change applied to it (ordering).
CREATE TABLE crm_links (
    id               BIGSERIAL PRIMARY KEY,
    connector_id     BIGINT NOT NULL REFERENCES crm_connectors (id),
    object_type      TEXT NOT NULL CHECK (object_type IN ('deal', 'company', 'contact')),
    crm_id           TEXT NOT NULL,
    account_id       BIGINT REFERENCES accounts (id),
    contact_id       BIGINT REFERENCES contacts (id),
    subscription_id  BIGINT REFERENCES subscriptions (id),
    invoice_id       BIGINT REFERENCES invoices (id),
    last_sequence    BIGINT,
    last_occurred_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (connector_id, object_type, crm_id)
);
CREATE INDEX crm_links_account_idx ON crm_links (account_id);
CREATE INDEX crm_links_subscription_idx ON crm_links (subscription_id);
CREATE INDEX crm_links_invoice_idx ON crm_links (invoice_id);

-- Outbound webhooks for any subscriber: signed, retried through the outbox, logged in
-- connector_deliveries.
CREATE TABLE webhook_endpoints (
    id             BIGSERIAL PRIMARY KEY,
    url            TEXT NOT NULL CHECK (url ~ '^https?://'),
    description    TEXT NOT NULL DEFAULT '',
    -- Event types delivered; empty means all.
    event_types    TEXT[] NOT NULL DEFAULT '{}',
    secret_sealed  TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
