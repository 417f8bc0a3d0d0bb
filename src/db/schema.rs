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
        api_keys (id) {
            id -> Int8,
            name -> Text,
            scope -> Text,
            prefix -> Text,
            digest -> Bytea,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            last_used_at -> Nullable<Timestamptz>,
            revoked_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        crm_connectors (id) {
            id -> Int8,
            kind -> Text,
            name -> Text,
            token -> Text,
            status -> Text,
            settings -> Jsonb,
            secret_sealed -> Nullable<Text>,
            api_token_sealed -> Nullable<Text>,
            mapping -> Jsonb,
            mapping_version -> Int4,
            sample_payload -> Text,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        crm_inbox (id) {
            id -> Int8,
            connector_id -> Int8,
            event_id -> Text,
            object_type -> Text,
            object_id -> Text,
            change -> Text,
            occurred_at -> Nullable<Timestamptz>,
            sequence -> Nullable<Int8>,
            raw_body -> Text,
            event -> Jsonb,
            status -> Text,
            reason -> Nullable<Text>,
            problems -> Nullable<Jsonb>,
            attempts -> Int4,
            duplicates -> Int4,
            effect -> Nullable<Jsonb>,
            received_at -> Timestamptz,
            processed_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        crm_links (id) {
            id -> Int8,
            connector_id -> Int8,
            object_type -> Text,
            crm_id -> Text,
            account_id -> Nullable<Int8>,
            contact_id -> Nullable<Int8>,
            subscription_id -> Nullable<Int8>,
            invoice_id -> Nullable<Int8>,
            last_sequence -> Nullable<Int8>,
            last_occurred_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        webhook_endpoints (id) {
            id -> Int8,
            url -> Text,
            description -> Text,
            event_types -> Array<Text>,
            secret_sealed -> Text,
            status -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        connector_deliveries (id) {
            id -> Int8,
            connector -> Text,
            outbox_id -> Nullable<Int8>,
            subject -> Text,
            attempt -> Int4,
            ok -> Bool,
            http_status -> Nullable<Int4>,
            error -> Nullable<Text>,
            remote_ref -> Nullable<Text>,
            duration_ms -> Int4,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        integration_alerts (id) {
            id -> Int8,
            connector -> Text,
            summary -> Text,
            opened_at -> Timestamptz,
            notified_at -> Nullable<Timestamptz>,
            resolved_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        api_idempotency (key) {
            key -> Text,
            request_hash -> Text,
            status -> Int4,
            response_body -> Jsonb,
            created_at -> Timestamptz,
        }
    }

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

    diesel::table! {
        products (id) {
            id -> Int8,
            sku -> Text,
            name -> Text,
            description -> Text,
            gl_revenue_account -> Text,
            tax_category -> Text,
            revenue_recognition -> Text,
            status -> Text,
            version -> Int4,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        prices (id) {
            id -> Int8,
            product_id -> Int8,
            nickname -> Text,
            currency -> Text,
            status -> Text,
            current_version_id -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        price_versions (id) {
            id -> Int8,
            price_id -> Int8,
            version -> Int4,
            model_kind -> Text,
            model -> Jsonb,
            interval_months -> Int4,
            minimum_commit -> Nullable<Numeric>,
            created_at -> Timestamptz,
            created_by -> Nullable<Int8>,
        }
    }

    diesel::table! {
        subscriptions (id) {
            id -> Int8,
            number -> Text,
            account_id -> Int8,
            currency -> Text,
            status -> Text,
            start_date -> Date,
            end_date -> Nullable<Date>,
            trial_end -> Nullable<Date>,
            interval_months -> Int4,
            anchor_day -> Int4,
            timing -> Text,
            term_months -> Int4,
            auto_renew -> Bool,
            po_number -> Nullable<Text>,
            collection_method -> Text,
            terms_kind -> Nullable<Text>,
            terms_days -> Nullable<Int4>,
            billed_through -> Date,
            cancel_reason -> Nullable<Text>,
            canceled_at -> Nullable<Timestamptz>,
            external_ref -> Nullable<Text>,
            notes -> Text,
            version -> Int4,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        subscription_items (id) {
            id -> Int8,
            subscription_id -> Int8,
            product_id -> Int8,
            price_id -> Int8,
            price_version_id -> Int8,
            quantity -> Numeric,
            discount_percent -> Nullable<Numeric>,
            discount_amount -> Nullable<Numeric>,
            start_date -> Date,
            end_date -> Nullable<Date>,
            replaces_id -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        subscription_amendments (id) {
            id -> Int8,
            subscription_id -> Int8,
            kind -> Text,
            effective_date -> Date,
            summary -> Text,
            credit -> Numeric,
            charge -> Numeric,
            invoice_id -> Nullable<Int8>,
            actor_user_id -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        usage_records (id) {
            id -> Int8,
            subscription_id -> Int8,
            product_id -> Int8,
            usage_date -> Date,
            quantity -> Numeric,
            external_id -> Text,
            source -> Text,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        bill_runs (id) {
            id -> Int8,
            run_date -> Date,
            trigger -> Text,
            status -> Text,
            total -> Int4,
            processed -> Int4,
            created -> Int4,
            skipped -> Int4,
            failed -> Int4,
            failures -> Jsonb,
            requested_by -> Nullable<Int8>,
            started_at -> Nullable<Timestamptz>,
            finished_at -> Nullable<Timestamptz>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        number_series (series) {
            series -> Text,
            prefix -> Text,
            next_value -> Int8,
        }
    }

    diesel::table! {
        invoices (id) {
            id -> Int8,
            kind -> Text,
            number -> Nullable<Text>,
            status -> Text,
            account_id -> Int8,
            bill_to_account_id -> Int8,
            subscription_id -> Nullable<Int8>,
            source -> Text,
            period_start -> Nullable<Date>,
            period_end -> Nullable<Date>,
            bill_run_id -> Nullable<Int8>,
            related_invoice_id -> Nullable<Int8>,
            currency -> Text,
            issue_date -> Date,
            due_date -> Nullable<Date>,
            terms_kind -> Text,
            terms_days -> Int4,
            po_number -> Nullable<Text>,
            notes -> Text,
            bill_to -> Jsonb,
            recipients -> Array<Text>,
            subtotal -> Numeric,
            tax_total -> Numeric,
            total -> Numeric,
            credit_applied -> Numeric,
            amount_credited -> Numeric,
            amount_paid -> Numeric,
            amount_due -> Numeric,
            void_reason -> Nullable<Text>,
            version -> Int4,
            created_at -> Timestamptz,
            finalized_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        invoice_lines (id) {
            id -> Int8,
            invoice_id -> Int8,
            position -> Int4,
            kind -> Text,
            description -> Text,
            product_id -> Nullable<Int8>,
            subscription_item_id -> Nullable<Int8>,
            price_version_id -> Nullable<Int8>,
            credited_line_id -> Nullable<Int8>,
            period_start -> Nullable<Date>,
            period_end -> Nullable<Date>,
            quantity -> Numeric,
            unit_price -> Numeric,
            amount -> Numeric,
            discount -> Numeric,
            net -> Numeric,
            tax_category -> Text,
            tax_rate -> Numeric,
            tax -> Numeric,
            gl_account -> Nullable<Text>,
        }
    }

    diesel::table! {
        invoice_links (invoice_id) {
            invoice_id -> Int8,
            nonce -> Bytea,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        account_credits (id) {
            id -> Int8,
            account_id -> Int8,
            currency -> Text,
            amount -> Numeric,
            invoice_id -> Int8,
            memo -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        payments (id) {
            id -> Int8,
            account_id -> Int8,
            method -> Text,
            currency -> Text,
            amount -> Numeric,
            received_on -> Date,
            reference -> Text,
            status -> Text,
            refunded -> Numeric,
            reversal_reason -> Nullable<Text>,
            reversed_at -> Nullable<Timestamptz>,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        payment_applications (id) {
            id -> Int8,
            payment_id -> Int8,
            invoice_id -> Int8,
            amount -> Numeric,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        refunds (id) {
            id -> Int8,
            payment_id -> Int8,
            amount -> Numeric,
            refunded_on -> Date,
            reference -> Text,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        remittance_lines (id) {
            id -> Int8,
            filename -> Text,
            line_no -> Int4,
            received_on -> Date,
            amount -> Numeric,
            currency -> Text,
            payer -> Text,
            reference -> Text,
            status -> Text,
            matched_by -> Nullable<Text>,
            payment_id -> Nullable<Int8>,
            suggestions -> Jsonb,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        events (id) {
            id -> Int8,
            #[sql_name = "type"]
            event_type -> Text,
            entity -> Text,
            entity_id -> Int8,
            payload -> Jsonb,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        payment_methods (id) {
            id -> Int8,
            account_id -> Int8,
            gateway -> Text,
            token -> Text,
            customer_ref -> Nullable<Text>,
            brand -> Text,
            last4 -> Text,
            exp_month -> Nullable<Int4>,
            exp_year -> Nullable<Int4>,
            is_default -> Bool,
            auto_charge -> Bool,
            status -> Text,
            status_reason -> Nullable<Text>,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        charge_attempts (id) {
            id -> Int8,
            invoice_id -> Int8,
            account_id -> Int8,
            payment_method_id -> Int8,
            attempt_no -> Int4,
            trigger -> Text,
            idempotency_key -> Text,
            currency -> Text,
            amount -> Nullable<Numeric>,
            status -> Text,
            scheduled_for -> Timestamptz,
            attempted_at -> Nullable<Timestamptz>,
            gateway -> Nullable<Text>,
            gateway_ref -> Nullable<Text>,
            decline_code -> Nullable<Text>,
            message -> Nullable<Text>,
            payment_id -> Nullable<Int8>,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        sandbox_charges (idempotency_key) {
            idempotency_key -> Text,
            reference -> Text,
            token -> Text,
            amount_minor -> Int8,
            currency -> Text,
            outcome -> Text,
            code -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        gateway_events (gateway, event_id) {
            gateway -> Text,
            event_id -> Text,
            #[sql_name = "type"]
            event_type -> Text,
            payload -> Jsonb,
            result -> Text,
            received_at -> Timestamptz,
        }
    }

    diesel::table! {
        dunning_policies (id) {
            id -> Int8,
            name -> Text,
            is_default -> Bool,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        dunning_policy_versions (id) {
            id -> Int8,
            policy_id -> Int8,
            version -> Int4,
            definition -> Jsonb,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        account_collections (account_id) {
            account_id -> Int8,
            dunning_policy_id -> Nullable<Int8>,
            dunning_excluded -> Bool,
            on_hold -> Bool,
            hold_reason -> Nullable<Text>,
            paused_until -> Nullable<Date>,
            pause_reason -> Nullable<Text>,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        invoice_dunning (invoice_id) {
            invoice_id -> Int8,
            account_id -> Int8,
            policy_version_id -> Int8,
            started_on -> Date,
            status -> Text,
            stop_reason -> Nullable<Text>,
            disputed -> Bool,
            dispute_reason -> Nullable<Text>,
            last_evaluated_on -> Nullable<Date>,
            updated_at -> Timestamptz,
        }
    }

    diesel::table! {
        dunning_actions (id) {
            id -> Int8,
            invoice_id -> Int8,
            account_id -> Int8,
            policy_version_id -> Int8,
            step_no -> Int4,
            action -> Text,
            status -> Text,
            detail -> Text,
            due_on -> Date,
            executed_on -> Date,
            ref_kind -> Nullable<Text>,
            ref_id -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        collections_tasks (id) {
            id -> Int8,
            account_id -> Int8,
            invoice_id -> Nullable<Int8>,
            title -> Text,
            detail -> Text,
            assignee_user_id -> Nullable<Int8>,
            due_on -> Date,
            status -> Text,
            source -> Text,
            resolution -> Nullable<Text>,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            completed_at -> Nullable<Timestamptz>,
            completed_by -> Nullable<Int8>,
        }
    }

    diesel::table! {
        collections_notes (id) {
            id -> Int8,
            account_id -> Int8,
            invoice_id -> Nullable<Int8>,
            kind -> Text,
            body -> Text,
            outcome -> Nullable<Text>,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        promises_to_pay (id) {
            id -> Int8,
            account_id -> Int8,
            invoice_id -> Nullable<Int8>,
            currency -> Text,
            amount -> Numeric,
            promised_on -> Date,
            status -> Text,
            note -> Text,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            resolved_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        gl_accounts (code) {
            code -> Text,
            name -> Text,
            kind -> Text,
            role -> Nullable<Text>,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        gl_mapping_rules (id) {
            id -> Int8,
            product_id -> Nullable<Int8>,
            entity -> Nullable<Text>,
            currency -> Nullable<Text>,
            revenue_account -> Text,
            deferred_account -> Text,
            version -> Int4,
            replaces_id -> Nullable<Int8>,
            active -> Bool,
            created_by -> Nullable<Int8>,
            created_at -> Timestamptz,
            retired_at -> Nullable<Timestamptz>,
        }
    }

    diesel::table! {
        journal_entries (id) {
            id -> Int8,
            entry_date -> Date,
            source_type -> Text,
            source_id -> Int8,
            document -> Text,
            memo -> Text,
            currency -> Text,
            created_at -> Timestamptz,
        }
    }

    diesel::table! {
        journal_lines (id) {
            id -> Int8,
            entry_id -> Int8,
            position -> Int4,
            account_code -> Text,
            amount -> Numeric,
            currency -> Text,
            source_line -> Nullable<Int8>,
            memo -> Text,
        }
    }

    diesel::table! {
        revenue_schedules (id) {
            id -> Int8,
            invoice_id -> Int8,
            line_id -> Int8,
            month -> Date,
            amount -> Numeric,
            currency -> Text,
            revenue_account -> Text,
            deferred_account -> Text,
            recognized_entry_id -> Nullable<Int8>,
        }
    }

    diesel::table! {
        ledger_periods (month) {
            month -> Date,
            closed_at -> Nullable<Timestamptz>,
            closed_by -> Nullable<Int8>,
        }
    }

    diesel::joinable!(account_external_ids -> accounts (account_id));
    diesel::joinable!(contacts -> accounts (account_id));
    diesel::joinable!(prices -> products (product_id));
    diesel::joinable!(subscriptions -> accounts (account_id));
    diesel::joinable!(subscription_items -> subscriptions (subscription_id));
    diesel::joinable!(subscription_items -> products (product_id));
    diesel::joinable!(subscription_items -> price_versions (price_version_id));
    diesel::joinable!(invoice_lines -> invoices (invoice_id));
    diesel::joinable!(payment_applications -> payments (payment_id));
    diesel::joinable!(payment_applications -> invoices (invoice_id));
    diesel::joinable!(journal_lines -> journal_entries (entry_id));
    diesel::joinable!(journal_lines -> gl_accounts (account_code));

    diesel::allow_tables_to_appear_in_same_query!(
        settings,
        outbox,
        connector_deliveries,
        integration_alerts,
        crm_connectors,
        crm_inbox,
        crm_links,
        webhook_endpoints,
        audit_log,
        accounts,
        account_external_ids,
        custom_field_defs,
        contacts,
        imports,
        products,
        prices,
        price_versions,
        subscriptions,
        subscription_items,
        subscription_amendments,
        usage_records,
        bill_runs,
        number_series,
        invoices,
        invoice_lines,
        invoice_links,
        account_credits,
        payments,
        payment_applications,
        refunds,
        remittance_lines,
        events,
        payment_methods,
        charge_attempts,
        sandbox_charges,
        gateway_events,
        dunning_policies,
        dunning_policy_versions,
        account_collections,
        invoice_dunning,
        dunning_actions,
        collections_tasks,
        collections_notes,
        promises_to_pay,
        gl_accounts,
        gl_mapping_rules,
        journal_entries,
        journal_lines,
        revenue_schedules,
        ledger_periods,
    );
}
