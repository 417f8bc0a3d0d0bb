//! Every route, declared once. The macro registers the handlers and produces a table of
//! `(method, path, permission)` that the route × role tests and the tenant isolation sweep
//! iterate, so a new route cannot escape them.

use actix_web::web;

use crate::{
    accounts, audit, auth, catalog, dashboard, email, health, invoicing, payments, reports,
    subscriptions, tenants,
};

/// One registered route. `permission` is what the handler's `Allowed<_>` extractor demands
/// (`None`: any member for tenant routes, or public for the others).
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub permission: Option<&'static str>,
}

/// The per-IP limiter of the sign-in routes.
pub type AuthLimit = actix_governor::GovernorConfig<
    actix_governor::PeerIpKeyExtractor,
    actix_governor::governor::middleware::NoOpMiddleware<
        actix_governor::governor::clock::QuantaInstant,
    >,
>;

macro_rules! routes {
    ($fn_name:ident, $table:ident, $($method:ident $path:literal => $handler:path, $perm:expr;)*) => {
        pub fn $fn_name(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
        }
        pub const $table: &[RouteSpec] = &[
            $(RouteSpec { method: stringify!($method), path: $path, permission: $perm }),*
        ];
    };
}

/// Like `routes!`, with every resource behind the shared per-IP rate limiter.
macro_rules! limited_routes {
    ($fn_name:ident, $table:ident, $($method:ident $path:literal => $handler:path, $perm:expr;)*) => {
        pub fn $fn_name(cfg: &mut web::ServiceConfig, limit: &AuthLimit) {
            $(cfg.service(
                web::resource($path)
                    .guard(actix_web::guard::fn_guard(|ctx| ctx.head().method.as_str().eq_ignore_ascii_case(stringify!($method))))
                    .route(web::$method().to($handler))
                    .wrap(actix_governor::Governor::new(limit)),
            );)*
        }
        pub const $table: &[RouteSpec] = &[
            $(RouteSpec { method: stringify!($method), path: $path, permission: $perm }),*
        ];
    };
}

// Routes under /t/{slug}: membership is always checked; the permission on top.
routes!(tenant_routes, TENANT_ROUTES,
    get "" => dashboard::handlers::show, Some("dashboard.view");
    get "/" => dashboard::handlers::show, Some("dashboard.view");
    get "/mail" => email::handlers::list, Some("mail.view");
    get "/mail/{id}" => email::handlers::detail, Some("mail.view");
    post "/mail/{id}/retry" => email::handlers::retry, Some("mail.resend");
    get "/members" => tenants::members::list, Some("users.view");
    post "/members/invite" => tenants::invitations::invite, Some("users.manage");
    get "/members/{uid}" => tenants::members::detail, Some("users.view");
    post "/members/{uid}/role" => tenants::members::change_role, Some("users.manage");
    post "/members/{uid}/deactivate" => tenants::members::deactivate, Some("users.manage");
    post "/members/{uid}/reactivate" => tenants::members::reactivate, Some("users.manage");
    post "/invitations/{id}/revoke" => tenants::invitations::revoke_invite, Some("users.manage");
    get "/accounts" => accounts::handlers::list, Some("accounts.view");
    get "/accounts.csv" => accounts::csv_io::export_accounts, Some("accounts.view");
    get "/contacts.csv" => accounts::csv_io::export_contacts, Some("accounts.view");
    get "/accounts/new" => accounts::handlers::new_form, Some("accounts.create");
    post "/accounts" => accounts::handlers::create, Some("accounts.create");
    get "/accounts/{aid}" => accounts::handlers::detail, Some("accounts.view");
    get "/accounts/{aid}/section/{kind}" => accounts::edit::show, Some("accounts.view");
    get "/accounts/{aid}/general/edit" => accounts::edit::edit_general, Some("accounts.edit");
    post "/accounts/{aid}/general" => accounts::edit::save_general, Some("accounts.edit");
    get "/accounts/{aid}/terms/edit" => accounts::edit::edit_terms, Some("accounts.edit_terms");
    post "/accounts/{aid}/terms" => accounts::edit::save_terms, Some("accounts.edit_terms");
    get "/accounts/{aid}/addresses/edit" => accounts::edit::edit_addresses, Some("accounts.edit");
    post "/accounts/{aid}/addresses" => accounts::edit::save_addresses, Some("accounts.edit");
    get "/accounts/{aid}/custom/edit" => accounts::edit::edit_custom, Some("accounts.edit");
    post "/accounts/{aid}/custom" => accounts::edit::save_custom, Some("accounts.edit");
    post "/accounts/{aid}/contacts" => accounts::contacts::add, Some("accounts.edit");
    get "/accounts/{aid}/merge" => accounts::merge::form, Some("accounts.merge");
    post "/accounts/{aid}/merge" => accounts::merge::submit, Some("accounts.merge");
    get "/contacts/{cid}" => accounts::contacts::detail, Some("accounts.view");
    post "/contacts/{cid}" => accounts::contacts::save, Some("accounts.edit");
    post "/contacts/{cid}/move" => accounts::contacts::move_to, Some("accounts.edit");
    get "/imports/new" => accounts::import::new_form, Some("accounts.create");
    post "/imports" => accounts::import::upload, Some("accounts.create");
    get "/imports/{iid}" => accounts::import::show, Some("accounts.create");
    post "/imports/{iid}/commit" => accounts::import::commit, Some("accounts.create");
    post "/imports/{iid}/discard" => accounts::import::discard, Some("accounts.create");
    get "/settings/custom-fields" => accounts::custom_fields::page, Some("settings.manage");
    post "/settings/custom-fields" => accounts::custom_fields::add, Some("settings.manage");
    post "/settings/custom-fields/{fid}/archive" => accounts::custom_fields::archive, Some("settings.manage");
    get "/catalog" => catalog::handlers::list, Some("invoices.view");
    post "/catalog/products" => catalog::handlers::create_product, Some("catalog.manage");
    get "/catalog/products/{pid}" => catalog::handlers::product, Some("invoices.view");
    post "/catalog/products/{pid}" => catalog::handlers::update_product, Some("catalog.manage");
    post "/catalog/products/{pid}/prices" => catalog::handlers::add_price, Some("catalog.manage");
    post "/catalog/prices/{prid}" => catalog::handlers::change_price, Some("catalog.manage");
    get "/accounts/{aid}/subscriptions/new" => subscriptions::handlers::new_form, Some("subscriptions.manage");
    post "/accounts/{aid}/subscriptions" => subscriptions::handlers::create, Some("subscriptions.manage");
    post "/accounts/{aid}/subscriptions/preview" => subscriptions::handlers::preview_form, Some("subscriptions.manage");
    get "/subscriptions/{sid}" => subscriptions::handlers::detail, Some("accounts.view");
    post "/subscriptions/{sid}/amend" => subscriptions::handlers::amend_submit, Some("subscriptions.manage");
    post "/subscriptions/{sid}/usage" => subscriptions::handlers::add_usage, Some("subscriptions.manage");
    get "/usage/import" => subscriptions::usage_import::form, Some("subscriptions.manage");
    post "/usage/import" => subscriptions::usage_import::upload, Some("subscriptions.manage");
    get "/invoices" => invoicing::list::list, Some("invoices.view");
    get "/invoices.csv" => invoicing::list::export, Some("invoices.view");
    post "/accounts/{aid}/invoices" => invoicing::handlers::new_one_off, Some("invoices.edit");
    get "/invoices/{inv}" => invoicing::handlers::detail, Some("invoices.view");
    get "/invoices/{inv}/pdf" => invoicing::handlers::pdf, Some("invoices.view");
    post "/invoices/{inv}/lines" => invoicing::handlers::add_line, Some("invoices.edit");
    post "/invoices/{inv}/lines/{lid}/delete" => invoicing::handlers::remove_line, Some("invoices.edit");
    post "/invoices/{inv}/notes" => invoicing::handlers::save_notes, Some("invoices.edit");
    post "/invoices/{inv}/finalize" => invoicing::handlers::finalize_one, Some("invoices.finalize");
    post "/invoices/{inv}/send" => invoicing::handlers::send, Some("invoices.send");
    post "/invoices/{inv}/void" => invoicing::handlers::void, Some("invoices.void");
    post "/invoices/{inv}/write-off" => invoicing::writeoff::write_off, Some("invoices.void");
    post "/invoices/{inv}/credit" => invoicing::handlers::credit, Some("invoices.credit");
    post "/invoices/{inv}/link" => invoicing::handlers::link, Some("invoices.send");
    get "/accounts/{aid}/statement" => invoicing::statement::page, Some("invoices.view");
    get "/accounts/{aid}/statement.pdf" => invoicing::statement::pdf_download, Some("invoices.view");
    get "/accounts/{aid}/statement.csv" => invoicing::statement::csv, Some("invoices.view");
    post "/accounts/{aid}/statement/email" => invoicing::statement::email, Some("invoices.send");
    post "/accounts/{aid}/payments" => payments::handlers::record, Some("payments.record");
    post "/accounts/{aid}/payment-methods" => payments::methods::add_form, Some("payments.record");
    post "/accounts/{aid}/payment-methods/{pmid}/{op}" => payments::methods::change, Some("payments.record");
    post "/invoices/{inv}/charge" => payments::methods::charge_now, Some("payments.record");
    get "/payments/{pay}" => payments::handlers::detail, Some("invoices.view");
    post "/payments/{pay}/apply" => payments::handlers::apply, Some("payments.record");
    post "/payments/{pay}/unapply/{inv}" => payments::handlers::unapply, Some("payments.record");
    post "/payments/{pay}/refund" => payments::handlers::refund, Some("payments.record");
    post "/payments/{pay}/reverse" => payments::handlers::reverse, Some("payments.record");
    get "/cash" => payments::cash::page, Some("invoices.view");
    post "/cash/import" => payments::cash::import, Some("payments.record");
    post "/cash/lines/{rid}/match" => payments::cash::match_line, Some("payments.record");
    post "/cash/lines/{rid}/unmatch" => payments::cash::unmatch, Some("payments.record");
    get "/collections" => crate::dunning::collections::inbox, Some("collections.work");
    post "/collections/tasks/{tid}/complete" => crate::dunning::collections::complete, Some("collections.work");
    post "/collections/tasks/{tid}/assign" => crate::dunning::collections::reassign, Some("collections.work");
    post "/accounts/{aid}/collections/notes" => crate::dunning::collections::forms::add_note, Some("collections.work");
    post "/accounts/{aid}/collections/promises" => crate::dunning::collections::forms::add_promise, Some("collections.work");
    post "/accounts/{aid}/collections/promises/{ppid}/cancel" => crate::dunning::collections::forms::cancel_promise, Some("collections.work");
    post "/accounts/{aid}/collections/pause" => crate::dunning::collections::forms::pause, Some("collections.work");
    post "/accounts/{aid}/collections/hold" => crate::dunning::collections::forms::hold, Some("collections.work");
    post "/accounts/{aid}/collections/policy" => crate::dunning::collections::forms::set_policy, Some("dunning.configure");
    post "/invoices/{inv}/dispute" => crate::dunning::collections::forms::dispute, Some("collections.work");
    get "/settings/dunning" => crate::dunning::policies::list, Some("dunning.configure");
    post "/settings/dunning" => crate::dunning::policies::create, Some("dunning.configure");
    get "/settings/dunning/{polid}" => crate::dunning::policies::edit, Some("dunning.configure");
    post "/settings/dunning/{polid}" => crate::dunning::policies::save, Some("dunning.configure");
    post "/settings/dunning/{polid}/default" => crate::dunning::policies::make_default, Some("dunning.configure");
    get "/billing/runs" => invoicing::runs::list, Some("invoices.view");
    post "/billing/runs" => invoicing::runs::start, Some("billing.run");
    get "/billing/runs/{run}" => invoicing::runs::show, Some("invoices.view");
    get "/settings/billing" => invoicing::runs::settings, Some("settings.manage");
    get "/settings/payments" => payments::settings::page, Some("connectors.manage");
    post "/settings/payments" => payments::settings::save, Some("connectors.manage");
    post "/settings/billing" => invoicing::runs::save_settings, Some("settings.manage");
    get "/ledger/accounts" => crate::ledger::handlers::page, Some("connectors.manage");
    post "/ledger/accounts" => crate::ledger::handlers::add_account, Some("connectors.manage");
    post "/ledger/mappings" => crate::ledger::handlers::save_rule, Some("connectors.manage");
    post "/ledger/mappings/retire" => crate::ledger::handlers::retire_rule, Some("connectors.manage");
    get "/ledger/journal" => crate::ledger::journal::page, Some("reports.view");
    get "/ledger/reconciliation" => crate::ledger::journal::reconciliation, Some("reports.view");
    get "/ledger/export.csv" => crate::ledger::journal::export_csv, Some("reports.export");
    get "/ledger/export.hledger" => crate::ledger::journal::export_hledger, Some("reports.export");
    get "/ledger/export.beancount" => crate::ledger::journal::export_beancount, Some("reports.export");
    get "/ledger/export.qbo.json" => crate::ledger::journal::export_qbo, Some("reports.export");
    get "/ledger/export.xero.json" => crate::ledger::journal::export_xero, Some("reports.export");
    get "/ledger/invoices.qbo.json" => crate::ledger::journal::invoices_qbo, Some("reports.export");
    get "/ledger/invoices.xero.json" => crate::ledger::journal::invoices_xero, Some("reports.export");
    get "/ledger/revenue" => crate::ledger::revenue_handlers::page, Some("reports.view");
    post "/ledger/revenue/recognize" => crate::ledger::revenue_handlers::recognize_now, Some("connectors.manage");
    get "/ledger/revenue/waterfall" => crate::ledger::revenue_handlers::waterfall_page, Some("reports.view");
    get "/ledger/revenue/waterfall.csv" => crate::ledger::revenue_handlers::waterfall_csv, Some("reports.export");
    get "/ledger/periods" => crate::ledger::revenue_handlers::periods, Some("reports.view");
    post "/ledger/periods" => crate::ledger::revenue_handlers::set_period, Some("connectors.manage");
    get "/reports/aging" => reports::aging_handlers::page, Some("reports.view");
    get "/reports/mrr" => reports::mrr_handlers::page, Some("reports.view");
    get "/reports/invoice-status" => reports::status_by_rep::page, Some("reports.view");
    get "/reports/collections" => reports::collections_handlers::page, Some("reports.view");
    get "/audit" => audit::handlers::page, Some("audit.read");
    get "/audit.csv" => audit::handlers::export_csv, Some("audit.read");
    get "/settings/security" => tenants::settings::page, Some("settings.manage");
    post "/settings/security" => tenants::settings::save, Some("settings.manage");
    get "/settings/api-keys" => crate::api::keys::page, Some("connectors.manage");
    post "/settings/api-keys" => crate::api::keys::create, Some("connectors.manage");
    post "/settings/api-keys/revoke" => crate::api::keys::revoke, Some("connectors.manage");
    get "/settings/accounting" => crate::ledger::push::page, Some("connectors.manage");
    post "/settings/accounting" => crate::ledger::push::save, Some("connectors.manage");
    post "/settings/accounting/send" => crate::ledger::push::send_from, Some("connectors.manage");
    get "/integrations" => crate::integrations::handlers::page, Some("connectors.manage");
    get "/crm" => crate::crm::handlers::list, Some("connectors.manage");
    post "/crm" => crate::crm::handlers::create, Some("connectors.manage");
    get "/crm/{crmid}" => crate::crm::handlers::detail, Some("connectors.manage");
    post "/crm/{crmid}" => crate::crm::handlers::save_settings, Some("connectors.manage");
    post "/crm/{crmid}/mapping" => crate::crm::handlers::save_mapping, Some("connectors.manage");
    get "/crm/events/{eid}" => crate::crm::handlers::event, Some("connectors.manage");
    post "/crm/events/{eid}/replay" => crate::crm::handlers::replay, Some("connectors.manage");
    get "/settings/webhooks" => crate::crm::handlers::webhooks, Some("connectors.manage");
    post "/settings/webhooks" => crate::crm::handlers::add_webhook, Some("connectors.manage");
    post "/settings/webhooks/{wid}/toggle" => crate::crm::handlers::toggle_webhook, Some("connectors.manage");
    get "/integrations/deliveries.csv" => crate::integrations::handlers::deliveries_csv, Some("connectors.manage");
    post "/integrations/outbox/{oid}/retry" => crate::integrations::handlers::redeliver, Some("connectors.manage");
);

// Routes for a signed-in user, outside any tenant.
routes!(account_routes, ACCOUNT_ROUTES,
    get "/security" => auth::account::page, None;
    post "/2fa/start" => auth::account::start_2fa, None;
    post "/2fa/confirm" => auth::account::confirm_2fa, None;
    post "/2fa/disable" => auth::account::disable_2fa, None;
    post "/2fa/recovery-codes" => auth::account::regenerate_codes, None;
    post "/sessions/{id}/revoke" => auth::account::revoke_session, None;
    post "/sessions/revoke-others" => auth::account::revoke_other_sessions, None;
    post "/password" => auth::account::change_password, None;
);

// Sign-in and friends: public, rate limited per IP.
limited_routes!(auth_routes, AUTH_ROUTES,
    get "/signup" => auth::handlers::signup_form, None;
    post "/signup" => auth::handlers::signup, None;
    get "/login" => auth::handlers::login_form, None;
    post "/login" => auth::handlers::login, None;
    get "/login/2fa" => auth::mfa::form, None;
    post "/login/2fa" => auth::mfa::submit, None;
    get "/password/forgot" => auth::reset::forgot_form, None;
    post "/password/forgot" => auth::reset::forgot, None;
    get "/password/reset/{token}" => auth::reset::reset_form, None;
    post "/password/reset/{token}" => auth::reset::reset, None;
    get "/invite/{token}" => tenants::invitations::accept_form, None;
    post "/invite/{token}" => tenants::invitations::accept, None;
);

routes!(public_routes, PUBLIC_ROUTES,
    get "/healthz" => health::healthz, None;
    get "/readyz" => health::readyz, None;
    get "/" => tenants::handlers::home, None;
    post "/logout" => auth::handlers::logout, None;
    get "/p/{slug}/invoices/{id}/{token}" => invoicing::hosted::page, None;
    get "/p/{slug}/invoices/{id}/{token}/pdf" => invoicing::hosted::pdf, None;
    post "/hooks/{slug}/stripe" => payments::webhook::stripe, None;
    post "/hooks/{slug}/crm/{token}" => crate::crm::receive::receive, None;
);

// The JSON API: authenticated by API key (bearer), not by session; `None` here because the
// key's scope, not a role, decides (read keys may only GET).
routes!(api_routes, API_ROUTES,
    get "/api/v1/openapi.json" => crate::api::openapi::serve, None;
    get "/api/v1/accounts" => crate::api::accounts::list, None;
    post "/api/v1/accounts" => crate::api::accounts::create, None;
    get "/api/v1/accounts/{id}" => crate::api::accounts::get, None;
    get "/api/v1/accounts/{id}/contacts" => crate::api::accounts::contacts, None;
    post "/api/v1/accounts/{id}/contacts" => crate::api::writes::create_contact, None;
    get "/api/v1/invoices" => crate::api::billing::invoices, None;
    get "/api/v1/invoices/{id}" => crate::api::billing::invoice, None;
    get "/api/v1/payments" => crate::api::billing::payments, None;
    get "/api/v1/subscriptions" => crate::api::billing::subscriptions, None;
    post "/api/v1/subscriptions" => crate::api::writes::create_subscription, None;
    post "/api/v1/usage_records" => crate::api::usage::create, None;
);
