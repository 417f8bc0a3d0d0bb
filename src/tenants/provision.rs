//! Creating a tenant: control row, schema, migrations, owner membership, default settings,
//! all in one transaction.

use anyhow::anyhow;
use diesel::{
    result::{DatabaseErrorKind, Error as DieselError},
    Connection, ExpressionMethods, PgConnection, RunQueryDsl,
};

use super::domain::{TenantName, TenantSlug};
use crate::{
    auth::{domain::PersonName, repo as users, Email, Role},
    db::{
        migrate::migrate_tenant_in_tx,
        schema::{control, tenant::settings},
        scope::TenantSchema,
    },
    error::{AppError, AppResult, FieldErrors},
};

/// Who will own the new tenant.
pub enum Owner {
    Existing(i64),
    New {
        email: Email,
        name: PersonName,
        password_hash: String,
    },
}

#[derive(Debug, Clone)]
pub struct Provisioned {
    pub tenant_id: i64,
    pub owner_id: i64,
    pub schema: TenantSchema,
    pub slug: String,
}

pub fn provision(
    conn: &mut PgConnection,
    slug: &TenantSlug,
    name: &TenantName,
    owner: Owner,
) -> AppResult<Provisioned> {
    conn.transaction::<Provisioned, AppError, _>(|c| {
        let inserted = diesel::insert_into(control::tenants::table)
            .values((
                control::tenants::slug.eq(slug.as_str()),
                control::tenants::name.eq(name.as_str()),
            ))
            .returning((control::tenants::id, control::tenants::schema_name))
            .get_result::<(i64, String)>(c);
        let (tenant_id, schema_name) = match inserted {
            Ok(v) => v,
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                let mut e = FieldErrors::default();
                e.add("slug", "That workspace address is taken. Choose another.");
                return Err(AppError::Validation(e));
            }
            Err(e) => return Err(e.into()),
        };
        let schema =
            TenantSchema::parse(&schema_name).map_err(|e| AppError::internal(anyhow!(e)))?;
        let owner_id = match owner {
            Owner::Existing(id) => id,
            Owner::New {
                email,
                name,
                password_hash,
            } => users::insert(c, &email, name.as_str(), &password_hash)?,
        };
        diesel::insert_into(control::memberships::table)
            .values((
                control::memberships::tenant_id.eq(tenant_id),
                control::memberships::user_id.eq(owner_id),
                control::memberships::role.eq(Role::Owner.as_str()),
            ))
            .execute(c)?;
        // Leaves search_path set to the new schema for the rest of this transaction.
        migrate_tenant_in_tx(c, tenant_id, &schema).map_err(AppError::Internal)?;
        diesel::insert_into(settings::table)
            .values((
                settings::key.eq("company.name"),
                settings::value.eq(serde_json::json!(name.as_str())),
            ))
            .execute(c)?;
        Ok(Provisioned {
            tenant_id,
            owner_id,
            schema,
            slug: slug.as_str().to_owned(),
        })
    })
}

/// Adds (or reactivates) a membership.
pub fn add_member(
    conn: &mut PgConnection,
    tenant_id: i64,
    user_id: i64,
    role: Role,
) -> AppResult<()> {
    diesel::insert_into(control::memberships::table)
        .values((
            control::memberships::tenant_id.eq(tenant_id),
            control::memberships::user_id.eq(user_id),
            control::memberships::role.eq(role.as_str()),
        ))
        .on_conflict((
            control::memberships::tenant_id,
            control::memberships::user_id,
        ))
        .do_update()
        .set((
            control::memberships::role.eq(role.as_str()),
            control::memberships::status.eq("active"),
        ))
        .execute(conn)?;
    Ok(())
}
