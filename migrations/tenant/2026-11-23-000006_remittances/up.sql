-- Bank or remittance statements imported for cash application. Each line is matched to a
-- payment automatically or waits in the queue for a person.
CREATE TABLE remittance_lines (
    id           BIGSERIAL PRIMARY KEY,
    filename     TEXT NOT NULL,
    line_no      INT NOT NULL,
    received_on  DATE NOT NULL,
    amount       NUMERIC(19,4) NOT NULL CHECK (amount > 0),
    currency     TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    payer        TEXT NOT NULL DEFAULT '',
    reference    TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL CHECK (status IN ('matched', 'unmatched', 'ambiguous')),
    matched_by   TEXT CHECK (matched_by IN ('invoice_number', 'amount', 'payer', 'manual')),
    payment_id   BIGINT REFERENCES payments (id),
    -- Candidates shown to the person: [{"account_id", "name", "why"}].
    suggestions  JSONB NOT NULL DEFAULT '[]',
    created_by   BIGINT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'matched') = (payment_id IS NOT NULL))
);
CREATE INDEX remittance_lines_status_idx ON remittance_lines (status, id);
