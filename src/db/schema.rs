//! Diesel table definitions, written by hand.
//!
//! Control tables are schema-qualified (`control.*`). Tenant tables are unqualified: they
//! resolve through the transaction-local search_path set by [`crate::db::scope`]. Tenant and
//! control tables are deliberately *not* declared joinable with each other, so a query that
//! crosses the boundary does not compile.

pub mod control {
    diesel::table! {
        control.tenants (id) {
            id -> Int8,
            slug -> Text,
            name -> Text,
            schema_name -> Text,
            schema_version -> Nullable<Text>,
            status -> Text,
            created_at -> Timestamptz,
            require_2fa_roles -> Array<Text>,
        }
    }

    diesel::table! {
        control.users (id) {
            id -> Int8,
            email -> Text,
            name -> Text,
            password_hash -> Text,
            status -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
            totp_secret_enc -> Nullable<Bytea>,
            totp_pending_enc -> Nullable<Bytea>,
            totp_enabled_at -> Nullable<Timestamptz>,
            totp_last_step -> Nullable<Int8>,
            failed_logins -> Int4,
            locked_until -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        control.memberships (id) {
            id -> Int8,
            tenant_id -> Int8,
            user_id -> Int8,
            role -> Text,
            status -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        control.sessions (id) {
            id -> Int8,
            token_hash -> Bytea,
            user_id -> Int8,
            created_at -> Timestamptz,
            last_seen_at -> Timestamptz,
            expires_at -> Timestamptz,
            revoked_at -> Nullable<Timestamptz>,
            ip -> Nullable<Text>,
            user_agent -> Nullable<Text>,
            mfa_pending -> Bool,
        }
    }

    diesel::table! {
        control.jobs (id) {
            id -> Int8,
            tenant_id -> Nullable<Int8>,
            kind -> Text,
            payload -> Jsonb,
            dedupe_key -> Nullable<Text>,
            status -> Text,
            run_at -> Timestamptz,
            attempts -> Int4,
            max_attempts -> Int4,
            locked_by -> Nullable<Text>,
            locked_at -> Nullable<Timestamptz>,
            last_error -> Nullable<Text>,
            created_at -> Timestamptz,
            finished_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        control.recovery_codes (id) {
            id -> Int8,
            user_id -> Int8,
            code_hash -> Bytea,
            used_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        control.invitations (id) {
            id -> Int8,
            tenant_id -> Int8,
            email -> Text,
            role -> Text,
            token_hash -> Bytea,
            invited_by -> Nullable<Int8>,
            expires_at -> Timestamptz,
            accepted_at -> Nullable<Timestamptz>,
            revoked_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        control.password_resets (id) {
            id -> Int8,
            user_id -> Int8,
            token_hash -> Bytea,
            expires_at -> Timestamptz,
            used_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::joinable!(memberships -> tenants (tenant_id));
    diesel::joinable!(invitations -> tenants (tenant_id));
    diesel::joinable!(memberships -> users (user_id));
    diesel::joinable!(sessions -> users (user_id));
    diesel::allow_tables_to_appear_in_same_query!(
        tenants,
        users,
        memberships,
        sessions,
        jobs,
        recovery_codes,
        invitations,
        password_resets
    );
}

pub mod tenant {
    diesel::table! {
        settings (key) {
            key -> Text,
            value -> Jsonb,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        outbox (id) {
            id -> Int8,
            kind -> Text,
            idempotency_key -> Nullable<Text>,
            payload -> Jsonb,
            status -> Text,
            attempts -> Int4,
            last_error -> Nullable<Text>,
            created_at -> Timestamptz,
            delivered_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        audit_log (id) {
            id -> Int8,
            seq -> Int8,
            at -> Timestamptz,
            actor_user_id -> Nullable<Int8>,
            actor_email -> Nullable<Text>,
            ip -> Nullable<Text>,
            action -> Text,
            entity_type -> Text,
            entity_id -> Nullable<Text>,
            before -> Nullable<Jsonb>,
            after -> Nullable<Jsonb>,
            reason -> Nullable<Text>,
            prev_hash -> Nullable<Bytea>,
            hash -> Bytea,
        }
    }

    diesel::table! {
        accounts (id) {
            id -> Int8,
            account_number -> Text,
            legal_name -> Text,
            display_name -> Text,
            name_key -> Text,
            tax_id -> Nullable<Text>,
            tax_id_key -> Nullable<Text>,
            domain -> Nullable<Text>,
            tax_mode -> Text,
            tax_rate -> Nullable<Numeric>,
            tax_exempt_certificate -> Nullable<Text>,
            currency -> Text,
            terms_kind -> Text,
            terms_days -> Int4,
            invoice_delivery -> Text,
            billing_address -> Jsonb,
            shipping_address -> Jsonb,
            po_number -> Nullable<Text>,
            owner_user_id -> Nullable<Int8>,
            csm_user_id -> Nullable<Int8>,
            status -> Text,
            parent_id -> Nullable<Int8>,
            bill_to_parent -> Bool,
            merged_into_id -> Nullable<Int8>,
            notes -> Text,
            custom_fields -> Jsonb,
            version -> Int4,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        account_external_ids (id) {
            id -> Int8,
            account_id -> Int8,
            system -> Text,
            external_id -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        custom_field_defs (id) {
            id -> Int8,
            key -> Text,
            label -> Text,
            kind -> Text,
            choices -> Array<Text>,
            required -> Bool,
            position -> Int4,
            archived -> Bool,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        contacts (id) {
            id -> Int8,
            account_id -> Int8,
            name -> Text,
            email -> Nullable<Text>,
            email_domain -> Nullable<Text>,
            phone -> Nullable<Text>,
            job_title -> Nullable<Text>,
            roles -> Array<Text>,
            receives_invoices -> Bool,
            receives_reminders -> Bool,
            status -> Text,
            version -> Int4,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        imports (id) {
            id -> Int8,
            kind -> Text,
            filename -> Text,
            status -> Text,
            on_duplicate -> Text,
            total_rows -> Int4,
            processed_rows -> Int4,
            error_rows -> Int4,
            duplicate_rows -> Int4,
            content -> Text,
            report -> Jsonb,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            finished_at -> Nullable<Timestamptz>,
        }
    }

    diesel::joinable!(account_external_ids -> accounts (account_id));
    diesel::joinable!(contacts -> accounts (account_id));

    diesel::allow_tables_to_appear_in_same_query!(
        settings,
        outbox,
        audit_log,
        accounts,
        account_external_ids,
        custom_field_defs,
        contacts,
        imports,
    );
}
