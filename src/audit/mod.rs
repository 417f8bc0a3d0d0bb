//! The audit log: who did what to which record, when, from where, and why.
//!
//! Rules: every write records an entry in the same transaction as the change (so there is no
//! change without its entry). The table is append-only (a trigger rejects UPDATE, DELETE and
//! TRUNCATE) and hash-chained: each row's hash covers its content and the previous row's hash,
//! computed in the database when the transaction commits (a deferred trigger links the
//! transaction's entries under a short lock, so long transactions of one tenant do not queue
//! behind each other), so `arbor audit verify` can find the first altered row. Security events
//! of a user (sign-in, failed sign-in, 2FA and password changes) are recorded in every tenant
//! the user is an active member of.

pub mod handlers;
pub mod repo;

use diesel::PgConnection;
use serde_json::Value;

use crate::{
    db::{self, scope::TenantSchema},
    error::AppResult,
    tenants::TenantCtx,
};

/// Who acted. `user_id` is `None` for the system (jobs, connectors) and unknown visitors.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub email: Option<String>,
    pub ip: Option<String>,
}

impl Actor {
    pub fn from_ctx(ctx: &TenantCtx, req: &actix_web::HttpRequest) -> Self {
        Self {
            user_id: Some(ctx.user.id),
            email: Some(ctx.user.email.clone()),
            ip: client_ip(req),
        }
    }

    pub fn system() -> Self {
        Self::default()
    }
}

pub fn client_ip(req: &actix_web::HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

/// One audit entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub action: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub reason: Option<String>,
}

impl Entry {
    pub fn new(action: &str, entity_type: &str, entity_id: impl ToString) -> Self {
        Self {
            action: action.to_owned(),
            entity_type: entity_type.to_owned(),
            entity_id: Some(entity_id.to_string()),
            before: None,
            after: None,
            reason: None,
        }
    }

    pub fn before(mut self, v: Value) -> Self {
        self.before = Some(v);
        self
    }

    pub fn after(mut self, v: Value) -> Self {
        self.after = Some(v);
        self
    }

    pub fn reason(mut self, r: Option<String>) -> Self {
        self.reason = r.filter(|r| !r.trim().is_empty());
        self
    }
}

/// Records an entry; call inside the tenant transaction of the change.
pub fn record(conn: &mut PgConnection, actor: &Actor, entry: &Entry) -> AppResult<()> {
    repo::insert(conn, actor, entry)
}

/// Records a user's security event in each tenant they belong to (separate transactions;
/// a failure in one tenant does not lose the others).
pub fn record_for_user(
    conn: &mut PgConnection,
    user_id: i64,
    actor: &Actor,
    entry: &Entry,
) -> AppResult<()> {
    let tenants = crate::tenants::repo::for_user(conn, user_id)?;
    for t in tenants {
        let Ok(schema) = TenantSchema::parse(&t.schema_name) else {
            continue;
        };
        if let Err(e) = db::scope::in_tenant(conn, &schema, |c| record(c, actor, entry)) {
            tracing::error!(tenant = %t.slug, error = ?e, "could not record security event");
        }
    }
    Ok(())
}

/// Result of verifying a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Intact {
        rows: i64,
    },
    Broken {
        rows: i64,
        first_bad_seq: i64,
        first_bad_id: i64,
        reason: String,
    },
}
