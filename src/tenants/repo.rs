//! Tenant and membership queries (control schema only).

use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, PgConnection, QueryDsl,
    RunQueryDsl,
};

use crate::{
    db::schema::control::{invitations, memberships, tenants, users},
    error::AppResult,
};

/// A tenant as resolved for a member.
#[derive(Debug, Clone, diesel::Queryable)]
pub struct MemberTenant {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub schema_name: String,
    pub schema_version: Option<String>,
    pub role: String,
    pub require_2fa_roles: Vec<String>,
}

pub fn membership(
    conn: &mut PgConnection,
    slug: &str,
    user_id: i64,
) -> AppResult<Option<MemberTenant>> {
    Ok(memberships::table
        .inner_join(tenants::table)
        .filter(tenants::slug.eq(slug))
        .filter(memberships::user_id.eq(user_id))
        .filter(
            memberships::status
                .eq("active")
                .and(tenants::status.eq("active")),
        )
        .select((
            tenants::id,
            tenants::slug,
            tenants::name,
            tenants::schema_name,
            tenants::schema_version,
            memberships::role,
            tenants::require_2fa_roles,
        ))
        .first(conn)
        .optional()?)
}

pub fn for_user(conn: &mut PgConnection, user_id: i64) -> AppResult<Vec<MemberTenant>> {
    Ok(memberships::table
        .inner_join(tenants::table)
        .filter(memberships::user_id.eq(user_id))
        .filter(
            memberships::status
                .eq("active")
                .and(tenants::status.eq("active")),
        )
        .select((
            tenants::id,
            tenants::slug,
            tenants::name,
            tenants::schema_name,
            tenants::schema_version,
            memberships::role,
            tenants::require_2fa_roles,
        ))
        .order(tenants::name)
        .load(conn)?)
}

#[derive(Debug, Clone, diesel::Queryable)]
pub struct Member {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub joined: chrono::DateTime<chrono::Utc>,
}

pub fn members(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Vec<Member>> {
    Ok(memberships::table
        .inner_join(users::table)
        .filter(memberships::tenant_id.eq(tenant_id))
        .select((
            users::id,
            users::name,
            users::email,
            memberships::role,
            memberships::status,
            memberships::created_at,
        ))
        .order((users::name, users::id))
        .load(conn)?)
}

pub fn find_id_by_slug(conn: &mut PgConnection, slug: &str) -> AppResult<Option<(i64, String)>> {
    Ok(tenants::table
        .filter(tenants::slug.eq(slug))
        .select((tenants::id, tenants::schema_name))
        .first(conn)
        .optional()?)
}

pub fn schema_of(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Option<String>> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::schema_name)
        .first(conn)
        .optional()?)
}

pub fn slug_of(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Option<String>> {
    Ok(tenants::table
        .filter(tenants::id.eq(tenant_id))
        .select(tenants::slug)
        .first(conn)
        .optional()?)
}

/// Whether any active membership of the user requires a second factor for its role.
pub fn requires_2fa(conn: &mut PgConnection, user_id: i64) -> AppResult<bool> {
    Ok(for_user(conn, user_id)?
        .iter()
        .any(|t| t.require_2fa_roles.contains(&t.role)))
}

pub fn set_require_2fa_roles(
    conn: &mut PgConnection,
    tenant_id: i64,
    roles: &[String],
) -> AppResult<Vec<String>> {
    let before: Vec<String> = tenants::table
        .find(tenant_id)
        .select(tenants::require_2fa_roles)
        .first(conn)?;
    diesel::update(tenants::table.find(tenant_id))
        .set(tenants::require_2fa_roles.eq(roles))
        .execute(conn)?;
    Ok(before)
}

pub fn require_2fa_roles(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Vec<String>> {
    Ok(tenants::table
        .find(tenant_id)
        .select(tenants::require_2fa_roles)
        .first(conn)?)
}

#[derive(Debug, Clone, diesel::Queryable)]
pub struct MembershipRow {
    pub user_id: i64,
    pub role: String,
    pub status: String,
}

pub fn membership_of(
    conn: &mut PgConnection,
    tenant_id: i64,
    user_id: i64,
) -> AppResult<Option<MembershipRow>> {
    Ok(memberships::table
        .filter(memberships::tenant_id.eq(tenant_id))
        .filter(memberships::user_id.eq(user_id))
        .select((memberships::user_id, memberships::role, memberships::status))
        .first(conn)
        .optional()?)
}

pub fn active_owner_count(conn: &mut PgConnection, tenant_id: i64) -> AppResult<i64> {
    Ok(memberships::table
        .filter(memberships::tenant_id.eq(tenant_id))
        .filter(memberships::role.eq("owner"))
        .filter(memberships::status.eq("active"))
        .count()
        .get_result(conn)?)
}

pub fn set_membership(
    conn: &mut PgConnection,
    tenant_id: i64,
    user_id: i64,
    role: &str,
    status: &str,
) -> AppResult<()> {
    diesel::update(
        memberships::table
            .filter(memberships::tenant_id.eq(tenant_id))
            .filter(memberships::user_id.eq(user_id)),
    )
    .set((memberships::role.eq(role), memberships::status.eq(status)))
    .execute(conn)?;
    Ok(())
}

/// An invitation that can still be accepted: not used, not revoked, not expired.
#[diesel::dsl::auto_type]
pub fn invitation_pending(now: chrono::DateTime<chrono::Utc>) -> _ {
    invitations::accepted_at
        .is_null()
        .and(invitations::revoked_at.is_null())
        .and(invitations::expires_at.gt(now))
}
