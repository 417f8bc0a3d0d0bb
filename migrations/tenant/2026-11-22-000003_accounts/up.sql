-- Accounts: the paying legal entity. Invoices follow the account, never a contact.
CREATE SEQUENCE account_number_seq;

CREATE TABLE accounts (
    id                BIGSERIAL PRIMARY KEY,
    account_number    TEXT NOT NULL UNIQUE CHECK (account_number ~ '^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$'),
    legal_name        TEXT NOT NULL CHECK (length(legal_name) BETWEEN 1 AND 200),
    display_name      TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    -- Duplicate detection keys, derived in the application (see accounts::dedupe).
    name_key          TEXT NOT NULL,
    tax_id            TEXT,
    tax_id_key        TEXT,
    domain            TEXT,
    tax_mode          TEXT NOT NULL DEFAULT 'standard' CHECK (tax_mode IN ('standard', 'custom_rate', 'exempt')),
    tax_rate          NUMERIC(7,4) CHECK (tax_rate >= 0 AND tax_rate <= 100),
    tax_exempt_certificate TEXT,
    currency          TEXT NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    terms_kind        TEXT NOT NULL DEFAULT 'net' CHECK (terms_kind IN ('net', 'due_on_receipt', 'eom')),
    terms_days        INT NOT NULL DEFAULT 30 CHECK (terms_days BETWEEN 0 AND 365),
    invoice_delivery  TEXT NOT NULL DEFAULT 'email' CHECK (invoice_delivery IN ('email', 'post')),
    billing_address   JSONB NOT NULL DEFAULT '{}',
    shipping_address  JSONB NOT NULL DEFAULT '{}',
    po_number         TEXT,
    -- Members of the tenant (control.users ids; no cross-schema foreign key by design).
    owner_user_id     BIGINT,
    csm_user_id       BIGINT,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'on_hold', 'closed', 'merged')),
    parent_id         BIGINT REFERENCES accounts (id),
    bill_to_parent    BOOLEAN NOT NULL DEFAULT false,
    merged_into_id    BIGINT REFERENCES accounts (id),
    notes             TEXT NOT NULL DEFAULT '',
    custom_fields     JSONB NOT NULL DEFAULT '{}',
    version           INT NOT NULL DEFAULT 1,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((tax_mode = 'custom_rate') = (tax_rate IS NOT NULL)),
    CHECK (tax_mode <> 'exempt' OR tax_exempt_certificate IS NOT NULL),
    CHECK (NOT bill_to_parent OR parent_id IS NOT NULL),
    CHECK (parent_id IS NULL OR parent_id <> id),
    CHECK ((status = 'merged') = (merged_into_id IS NOT NULL))
);
CREATE INDEX accounts_name_key_idx ON accounts (name_key);
CREATE INDEX accounts_tax_id_key_idx ON accounts (tax_id_key) WHERE tax_id_key IS NOT NULL;
CREATE INDEX accounts_domain_idx ON accounts (domain) WHERE domain IS NOT NULL;
CREATE INDEX accounts_parent_idx ON accounts (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX accounts_owner_idx ON accounts (owner_user_id);
CREATE INDEX accounts_display_name_idx ON accounts (lower(display_name), id);

-- The hierarchy never has a cycle. The application checks first (for a clear message); this
-- trigger is the backstop, serialised so two concurrent re-parentings cannot close a loop.
CREATE FUNCTION accounts_no_cycle() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    found BOOLEAN;
BEGIN
    IF NEW.parent_id IS NULL THEN
        RETURN NEW;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.accounts_hierarchy'));
    EXECUTE format($q$
        WITH RECURSIVE up(id, parent_id, depth) AS (
            SELECT id, parent_id, 1 FROM %1$I.accounts WHERE id = $1
            UNION ALL
            SELECT a.id, a.parent_id, up.depth + 1 FROM %1$I.accounts a JOIN up ON a.id = up.parent_id
            WHERE up.depth < 10000
        )
        SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)$q$, TG_TABLE_SCHEMA)
        INTO found USING NEW.parent_id, NEW.id;
    IF found THEN
        RAISE EXCEPTION 'account hierarchy cycle: % cannot be under %', NEW.id, NEW.parent_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_no_cycle';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_no_cycle BEFORE INSERT OR UPDATE OF parent_id ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_no_cycle();

-- Identifiers of the account in CRMs and other systems (salesforce, hubspot, ...).
CREATE TABLE account_external_ids (
    id           BIGSERIAL PRIMARY KEY,
    account_id   BIGINT NOT NULL REFERENCES accounts (id),
    system       TEXT NOT NULL CHECK (system ~ '^[a-z][a-z0-9_]{0,29}$'),
    external_id  TEXT NOT NULL CHECK (length(external_id) BETWEEN 1 AND 100),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (system, external_id)
);
CREATE INDEX account_external_ids_account_idx ON account_external_ids (account_id);

-- Per-tenant custom fields on accounts; values live in accounts.custom_fields by key.
CREATE TABLE custom_field_defs (
    id          BIGSERIAL PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    label       TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 80),
    kind        TEXT NOT NULL CHECK (kind IN ('text', 'number', 'date', 'choice')),
    choices     TEXT[] NOT NULL DEFAULT '{}',
    required    BOOLEAN NOT NULL DEFAULT false,
    position    INT NOT NULL DEFAULT 0,
    archived    BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (kind <> 'choice' OR cardinality(choices) > 0)
);

-- People at an account. Invoices record the account (and a snapshot of recipients), so a
-- contact moving to another account takes no invoice history with them.
CREATE TABLE contacts (
    id                  BIGSERIAL PRIMARY KEY,
    account_id          BIGINT NOT NULL REFERENCES accounts (id),
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email               TEXT,
    email_domain        TEXT GENERATED ALWAYS AS (lower(nullif(split_part(email, '@', 2), ''))) STORED,
    phone               TEXT,
    job_title           TEXT,
    roles               TEXT[] NOT NULL DEFAULT '{}'
                        CHECK (roles <@ ARRAY['billing', 'accounts_payable', 'signer', 'technical']::TEXT[]),
    receives_invoices   BOOLEAN NOT NULL DEFAULT false,
    receives_reminders  BOOLEAN NOT NULL DEFAULT false,
    status              TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    version             INT NOT NULL DEFAULT 1,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX contacts_account_idx ON contacts (account_id);
CREATE INDEX contacts_email_domain_idx ON contacts (email_domain) WHERE email_domain IS NOT NULL;

-- CSV imports: the upload is kept with its validated preview until committed (all or nothing).
CREATE TABLE imports (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('accounts', 'contacts')),
    filename        TEXT NOT NULL,
    -- validating -> preview -> queued -> running -> done | failed; or discarded.
    status          TEXT NOT NULL DEFAULT 'validating'
                    CHECK (status IN ('validating', 'preview', 'queued', 'running', 'done', 'failed', 'discarded')),
    on_duplicate    TEXT NOT NULL DEFAULT 'skip' CHECK (on_duplicate IN ('skip', 'create')),
    total_rows      INT NOT NULL DEFAULT 0,
    processed_rows  INT NOT NULL DEFAULT 0,
    error_rows      INT NOT NULL DEFAULT 0,
    duplicate_rows  INT NOT NULL DEFAULT 0,
    content         TEXT NOT NULL,
    report          JSONB NOT NULL DEFAULT '{}',
    created_by      BIGINT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ
);
