//! Tenants (workspaces): provisioning, resolution from `/t/{slug}` and membership checks.
//!
//! Rules: a tenant owns a schema `t_<id>` created and migrated in the same transaction that
//! inserts its control row, so provisioning either fully happens or not at all. Every request
//! under `/t/{slug}` resolves the slug and the signed-in user's active membership in one
//! control query; a non-member gets 404 (we do not confirm the tenant exists), and a tenant
//! whose schema is behind this binary's migrations gets 503 until `arbor migrate` runs.

pub mod context;
pub mod domain;
pub mod handlers;
pub mod invitations;
pub mod members;
pub mod provision;
pub mod repo;
pub mod settings;

pub use context::{TenantCtx, TenantRef};
pub use domain::{TenantName, TenantSlug};
