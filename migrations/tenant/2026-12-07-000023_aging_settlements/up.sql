-- AR aging as of a past date (reports::aging_summary): every cash application with the day
-- it counts on and the invoice's aging attributes, kept by triggers, so "what settled after
-- D" is one range of one index instead of a payment lookup per application and an invoice
-- lookup per settled invoice (at 1M invoices a report 30 days back found ~70k of them, and
-- those lookups were most of its time).
--
-- `eff` is the rule of reports::mod: an application written with its payment (same
-- created_at) counts on the payment's received_on, any other (applying unapplied cash later,
-- unapplying, a reversal's negative row) on the UTC day it was made. Payments never change
-- received_on or created_at and applications are never updated, so `eff` is fixed at
-- insert. The invoice's columns follow it: a merge moves its payer, a write-off makes it
-- uncollectible, and a void takes its rows out (a void invoice is never aged).
-- `m` is the amount × 10000 (exact for NUMERIC(19,4)), signed like the application.
CREATE TABLE ar_settlements (
    application_id BIGINT PRIMARY KEY,
    invoice_id     BIGINT NOT NULL,
    eff            DATE NOT NULL,
    m              BIGINT NOT NULL,
    account_id     BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    issue_date     DATE NOT NULL,
    due            DATE NOT NULL,
    uncollectible  BOOLEAN NOT NULL
);
-- The report reads `eff > D` and needs nothing else: an index-only range.
CREATE INDEX ar_settlements_eff_idx ON ar_settlements (eff)
    INCLUDE (invoice_id, m, account_id, currency, issue_date, due, uncollectible);
CREATE INDEX ar_settlements_invoice_idx ON ar_settlements (invoice_id);

-- What a row of ar_settlements is, defined once for the trigger and the backfill.
CREATE VIEW ar_settlement_rows AS
SELECT r.id AS application_id, r.invoice_id,
       CASE WHEN p.created_at = r.created_at THEN p.received_on
            ELSE (r.created_at AT TIME ZONE 'UTC')::date END AS eff,
       (r.amount * 10000)::bigint AS m, i.bill_to_account_id AS account_id, i.currency,
       i.issue_date, COALESCE(i.due_date, i.issue_date) AS due,
       i.status = 'uncollectible' AS uncollectible
  FROM payment_applications r
  JOIN payments p ON p.id = r.payment_id
  JOIN invoices i ON i.id = r.invoice_id
 WHERE i.kind = 'invoice' AND i.status NOT IN ('draft', 'void');

CREATE FUNCTION ar_settlements_sync() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM ar_settlements s USING old_rows r WHERE s.application_id = r.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ar_settlements (application_id, invoice_id, eff, m, account_id, currency,
                                    issue_date, due, uncollectible)
        SELECT application_id, invoice_id, eff, m, account_id, currency, issue_date, due,
               uncollectible
          FROM ar_settlement_rows v
         WHERE v.application_id IN (SELECT id FROM new_rows);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ar_settlements_ins AFTER INSERT ON payment_applications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ar_settlements_sync();
CREATE TRIGGER ar_settlements_upd AFTER UPDATE ON payment_applications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ar_settlements_sync();
CREATE TRIGGER ar_settlements_del AFTER DELETE ON payment_applications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ar_settlements_sync();

CREATE FUNCTION ar_settlements_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE ar_settlements;
    RETURN NULL;
END
$$;
CREATE TRIGGER ar_settlements_truncate AFTER TRUNCATE ON payment_applications
    FOR EACH STATEMENT EXECUTE FUNCTION ar_settlements_truncate();

-- The invoice side: rows follow their invoice's payer, currency, dates and write-off, and
-- leave when it is voided (or stops being a finalized invoice). Only invoices that have
-- settlements are touched, through the invoice index.
CREATE FUNCTION ar_settlements_follow() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM ar_settlements s USING new_rows n
     WHERE s.invoice_id = n.id AND (n.kind <> 'invoice' OR n.status IN ('draft', 'void'));
    UPDATE ar_settlements s
       SET account_id = n.bill_to_account_id, currency = n.currency, issue_date = n.issue_date,
           due = COALESCE(n.due_date, n.issue_date), uncollectible = n.status = 'uncollectible'
      FROM new_rows n
     WHERE s.invoice_id = n.id
       AND (s.account_id, s.currency, s.issue_date, s.due, s.uncollectible)
           IS DISTINCT FROM (n.bill_to_account_id, n.currency, n.issue_date,
                             COALESCE(n.due_date, n.issue_date), n.status = 'uncollectible');
    RETURN NULL;
END
$$;
CREATE TRIGGER ar_settlements_follow AFTER UPDATE ON invoices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ar_settlements_follow();

INSERT INTO ar_settlements (application_id, invoice_id, eff, m, account_id, currency, issue_date,
                            due, uncollectible)
SELECT application_id, invoice_id, eff, m, account_id, currency, issue_date, due, uncollectible
  FROM ar_settlement_rows;
