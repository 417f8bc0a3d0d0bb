-- AR aging (reports::aging_repo): a slim copy of the open receivables, kept by triggers on
-- invoices in the same statement as every change, so the summary aggregates ~70-byte rows
-- with the balance already in integer minor units instead of converting NUMERIC per invoice
-- from a covering index. Triggers (not application code) keep it: every path that changes a
-- balance, status, due date or payer (payments, credit notes, write-off, void, finalize, the
-- bill run's set-based inserts, an account merge) goes through an UPDATE or INSERT on
-- invoices, and nothing can forget it.
--
-- A row exists exactly for `kind = 'invoice' AND status IN ('open', 'uncollectible') AND
-- amount_due > 0` (the rows of invoices_open_ar_idx); `m` is amount_due × 10000 (NUMERIC(19,4)
-- is exact in it); `due` is the due date, or the issue date when there is none.
CREATE TABLE ar_open (
    invoice_id     BIGINT PRIMARY KEY,
    account_id     BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    issue_date     DATE NOT NULL,
    due            DATE NOT NULL,
    m              BIGINT NOT NULL CHECK (m > 0),
    uncollectible  BOOLEAN NOT NULL
);
-- Uncollectible invoices leave AR on their write-off day: the report looks them up one by one.
CREATE INDEX ar_open_uncollectible_idx ON ar_open (invoice_id) WHERE uncollectible;

-- One function for the three statement triggers (transition tables need one event each):
-- rows of the statement's old image leave, rows of its new image that are open receivables
-- come back. Set-based, so a bill run inserting thousands of invoices pays for one INSERT.
CREATE FUNCTION ar_open_sync() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM ar_open o USING old_rows r
         WHERE o.invoice_id = r.id
           AND r.kind = 'invoice' AND r.status IN ('open', 'uncollectible') AND r.amount_due > 0;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO ar_open (invoice_id, account_id, currency, issue_date, due, m, uncollectible)
        SELECT r.id, r.bill_to_account_id, r.currency, r.issue_date,
               COALESCE(r.due_date, r.issue_date), (r.amount_due * 10000)::bigint,
               r.status = 'uncollectible'
          FROM new_rows r
         WHERE r.kind = 'invoice' AND r.status IN ('open', 'uncollectible') AND r.amount_due > 0;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER ar_open_ins AFTER INSERT ON invoices
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ar_open_sync();
CREATE TRIGGER ar_open_upd AFTER UPDATE ON invoices
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ar_open_sync();
CREATE TRIGGER ar_open_del AFTER DELETE ON invoices
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ar_open_sync();

CREATE FUNCTION ar_open_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE ar_open;
    RETURN NULL;
END
$$;
CREATE TRIGGER ar_open_truncate AFTER TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION ar_open_truncate();

INSERT INTO ar_open (invoice_id, account_id, currency, issue_date, due, m, uncollectible)
SELECT id, bill_to_account_id, currency, issue_date, COALESCE(due_date, issue_date),
       (amount_due * 10000)::bigint, status = 'uncollectible'
  FROM invoices
 WHERE kind = 'invoice' AND status IN ('open', 'uncollectible') AND amount_due > 0;

-- sum(int8) keeps a 128-bit accumulator behind a pointer, allocated per group; with ~10⁵
-- account groups and six bucket sums that allocation is most of the aggregate's time. This
-- one keeps a plain int8 (int8pl, which raises on overflow rather than wrapping, so a sum
-- that does not fit fails the report instead of mis-summing it) and starts at 0, so an empty
-- bucket is 0, not NULL.
CREATE AGGREGATE ar_sum(int8) (
    SFUNC = int8pl, STYPE = int8, INITCOND = '0', COMBINEFUNC = int8pl, PARALLEL = SAFE
);
