-- Integrations (accounting push now; CRM write-back and outbound webhooks later) deliver
-- through the outbox. Each attempt is logged here: the posting log and the evidence the
-- integration health page shows.
CREATE TABLE connector_deliveries (
    id           BIGSERIAL PRIMARY KEY,
    connector    TEXT NOT NULL CHECK (connector ~ '^[a-z][a-z0-9_.]*$'),
    outbox_id    BIGINT REFERENCES outbox (id),
    subject      TEXT NOT NULL DEFAULT '',
    attempt      INT NOT NULL CHECK (attempt >= 1),
    ok           BOOLEAN NOT NULL,
    http_status  INT,
    error        TEXT,
    remote_ref   TEXT,
    duration_ms  INT NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX connector_deliveries_connector_idx ON connector_deliveries (connector, id DESC);
CREATE INDEX connector_deliveries_outbox_idx ON connector_deliveries (outbox_id);

-- An integration that keeps failing raises one alert until it recovers; admins are emailed
-- when it opens.
CREATE TABLE integration_alerts (
    id           BIGSERIAL PRIMARY KEY,
    connector    TEXT NOT NULL CHECK (connector ~ '^[a-z][a-z0-9_.]*$'),
    summary      TEXT NOT NULL,
    opened_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    notified_at  TIMESTAMPTZ,
    resolved_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX integration_alerts_open_idx ON integration_alerts (connector)
    WHERE resolved_at IS NULL;
CREATE INDEX integration_alerts_opened_idx ON integration_alerts (opened_at DESC);

-- Undelivered rows per kind, oldest first (health and alert checks).
CREATE INDEX outbox_undelivered_idx ON outbox (kind, created_at)
    WHERE status IN ('pending', 'retrying', 'dead');
