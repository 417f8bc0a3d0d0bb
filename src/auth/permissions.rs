//! The permission matrix: which role may do what. One table, used by the route extractor,
//! the UI (to hide what a role cannot do) and the route × role tests.
//!
//! Principles: owners and admins administer; finance runs billing; collections chase money
//! but cannot change contracts; sales create accounts and deals but never touch terms, tax,
//! payment details or invoice delivery; auditors read everything and change nothing.

use std::{fmt, marker::PhantomData, ops::Deref};

use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::Role;
use crate::{error::AppError, tenants::TenantCtx};

/// Declares the `Permission` enum and, for each variant, a marker type in [`can`] so routes
/// can name a permission in their signature (`Allowed<can::UsersManage>`).
macro_rules! permissions {
    ($($name:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission {
            $($name),*
        }

        /// Marker types, one per permission.
        pub mod can {
            use super::{Permission, Requires};
            $(
                pub struct $name;
                impl Requires for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )*
        }
    };
}

permissions!(
    DashboardView,
    AccountsView,
    AccountsCreate,
    AccountsEdit,
    AccountsEditTerms,
    AccountsMerge,
    DealsCreate,
    CatalogManage,
    SubscriptionsManage,
    BillingRun,
    InvoicesView,
    InvoicesEdit,
    InvoicesFinalize,
    InvoicesSend,
    InvoicesVoid,
    InvoicesCredit,
    PaymentsRecord,
    DunningConfigure,
    CollectionsWork,
    ReportsView,
    ReportsExport,
    ConnectorsManage,
    UsersView,
    UsersManage,
    SettingsManage,
    AuditRead,
    MailView,
    MailResend,
);

use Permission as P;
use Role::{Admin, Auditor, Collections, Finance, Owner, Sales};

const ALL: &[Role] = &[Owner, Admin, Finance, Collections, Sales, Auditor];
const ADMINS: &[Role] = &[Owner, Admin];
const BILLING: &[Role] = &[Owner, Admin, Finance];

/// The matrix. Sales' read access is further limited to accounts they own (enforced in the
/// account queries), which a role table cannot express.
pub const MATRIX: &[(Permission, &str, &[Role])] = &[
    (P::DashboardView, "dashboard.view", ALL),
    (P::AccountsView, "accounts.view", ALL),
    (
        P::AccountsCreate,
        "accounts.create",
        &[Owner, Admin, Finance, Sales],
    ),
    (
        P::AccountsEdit,
        "accounts.edit",
        &[Owner, Admin, Finance, Sales],
    ),
    (P::AccountsEditTerms, "accounts.edit_terms", BILLING),
    (P::AccountsMerge, "accounts.merge", BILLING),
    (
        P::DealsCreate,
        "deals.create",
        &[Owner, Admin, Finance, Sales],
    ),
    (P::CatalogManage, "catalog.manage", BILLING),
    (P::SubscriptionsManage, "subscriptions.manage", BILLING),
    (P::BillingRun, "billing.run", BILLING),
    (P::InvoicesView, "invoices.view", ALL),
    (P::InvoicesEdit, "invoices.edit", BILLING),
    (P::InvoicesFinalize, "invoices.finalize", BILLING),
    (
        P::InvoicesSend,
        "invoices.send",
        &[Owner, Admin, Finance, Collections],
    ),
    (P::InvoicesVoid, "invoices.void", BILLING),
    (P::InvoicesCredit, "invoices.credit", BILLING),
    (
        P::PaymentsRecord,
        "payments.record",
        &[Owner, Admin, Finance, Collections],
    ),
    (P::DunningConfigure, "dunning.configure", BILLING),
    (
        P::CollectionsWork,
        "collections.work",
        &[Owner, Admin, Finance, Collections],
    ),
    (P::ReportsView, "reports.view", ALL),
    (
        P::ReportsExport,
        "reports.export",
        &[Owner, Admin, Finance, Collections, Auditor],
    ),
    (P::ConnectorsManage, "connectors.manage", ADMINS),
    (P::UsersView, "users.view", &[Owner, Admin, Auditor]),
    (P::UsersManage, "users.manage", ADMINS),
    (P::SettingsManage, "settings.manage", ADMINS),
    (P::AuditRead, "audit.read", &[Owner, Admin, Auditor]),
    (
        P::MailView,
        "mail.view",
        &[Owner, Admin, Finance, Collections, Auditor],
    ),
    (P::MailResend, "mail.resend", BILLING),
];

impl Permission {
    fn entry(self) -> Option<&'static (Permission, &'static str, &'static [Role])> {
        MATRIX.iter().find(|(p, _, _)| *p == self)
    }

    pub fn code(self) -> &'static str {
        self.entry().map_or("unknown", |e| e.1)
    }

    pub fn parse(code: &str) -> Option<Self> {
        MATRIX.iter().find(|(_, c, _)| *c == code).map(|e| e.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

pub fn allows(role: Role, p: Permission) -> bool {
    p.entry().is_some_and(|e| e.2.contains(&role))
}

/// Codes of everything `role` may do (for templates).
pub fn codes_for(role: Role) -> Vec<&'static str> {
    MATRIX
        .iter()
        .filter(|e| e.2.contains(&role))
        .map(|e| e.1)
        .collect()
}

/// A permission as a type, so a route states what it needs in its signature.
pub trait Requires {
    const PERMISSION: Permission;
}

/// Extractor: the tenant context, after checking the member's role allows `R`.
/// Non-members get 404 (from `TenantCtx`), members without the permission 403.
pub struct Allowed<R: Requires>(pub TenantCtx, PhantomData<R>);

impl<R: Requires> Deref for Allowed<R> {
    type Target = TenantCtx;
    fn deref(&self) -> &TenantCtx {
        &self.0
    }
}

impl<R: Requires + 'static> FromRequest for Allowed<R> {
    type Error = AppError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, pl: &mut actix_web::dev::Payload) -> Self::Future {
        let fut = TenantCtx::from_request(req, pl);
        Box::pin(async move {
            let ctx = fut.await?;
            if allows(ctx.role, R::PERMISSION) {
                Ok(Allowed(ctx, PhantomData))
            } else {
                tracing::info!(permission = %R::PERMISSION, role = %ctx.role, "forbidden");
                Err(AppError::Forbidden)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_has_one_row_and_a_unique_code() {
        let mut codes: Vec<&str> = MATRIX.iter().map(|e| e.1).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), MATRIX.len());
        for (p, code, _) in MATRIX {
            assert_eq!(Permission::parse(code), Some(*p));
        }
    }

    #[test]
    fn key_rules_of_the_matrix() {
        // Owners can do everything.
        assert!(MATRIX.iter().all(|e| allows(Role::Owner, e.0)));
        // Auditors change nothing: only view/read/export permissions.
        for code in codes_for(Role::Auditor) {
            assert!(
                code.ends_with(".view") || code.ends_with(".read") || code == "reports.export",
                "{code}"
            );
        }
        // Sales: create accounts and deals, never terms, sending, voiding or crediting.
        assert!(allows(Role::Sales, P::AccountsCreate) && allows(Role::Sales, P::DealsCreate));
        for p in [
            P::AccountsEditTerms,
            P::InvoicesSend,
            P::InvoicesVoid,
            P::InvoicesCredit,
            P::PaymentsRecord,
        ] {
            assert!(!allows(Role::Sales, p), "{p}");
        }
        // Collections record payments but do not change contracts.
        assert!(allows(Role::Collections, P::PaymentsRecord));
        assert!(
            !allows(Role::Collections, P::AccountsEditTerms)
                && !allows(Role::Collections, P::InvoicesVoid)
        );
        // Only owners and admins manage users, connectors and settings.
        for r in [Role::Finance, Role::Collections, Role::Sales, Role::Auditor] {
            assert!(
                !allows(r, P::UsersManage)
                    && !allows(r, P::ConnectorsManage)
                    && !allows(r, P::SettingsManage)
            );
        }
    }
}
