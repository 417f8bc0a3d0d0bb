//! Contact queries (tenant-scoped).

use chrono::Utc;
use diesel::{prelude::*, PgConnection};
use serde::Serialize;
use serde_json::Value;

use super::domain::{ContactRole, Fields};
use crate::{
    auth::Email,
    db::schema::tenant::contacts,
    error::{AppResult, FieldErrors},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contacts)]
pub struct Contact {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub roles: Vec<String>,
    pub receives_invoices: bool,
    pub receives_reminders: bool,
    pub status: String,
    pub version: i32,
}

/// What a person sets on a contact.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContactData {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub job_title: Option<String>,
    pub roles: Vec<String>,
    pub receives_invoices: bool,
    pub receives_reminders: bool,
    pub status: String,
}

impl Contact {
    pub fn data(&self) -> ContactData {
        ContactData {
            name: self.name.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            job_title: self.job_title.clone(),
            roles: self.roles.clone(),
            receives_invoices: self.receives_invoices,
            receives_reminders: self.receives_reminders,
            status: self.status.clone(),
        }
    }
}

impl ContactData {
    /// Parses a contact from a form (`role_<code>` checkboxes) or CSV row (`roles` list).
    pub fn parse(f: &Fields, errors: &mut FieldErrors) -> Option<Self> {
        let before = errors.0.len();
        let name = f.get("name");
        if name.is_empty() {
            errors.add("name", "Enter the contact's name.");
        } else if name.chars().count() > 200 {
            errors.add("name", "Use at most 200 characters.");
        }
        let email = match f.get("email") {
            "" => None,
            e => match Email::parse(e) {
                Ok(e) => Some(e.as_str().to_owned()),
                Err(m) => {
                    errors.add("email", m);
                    None
                }
            },
        };
        let phone = f.get("phone");
        if phone.chars().count() > 40
            || !phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-()./x".contains(c))
        {
            errors.add("phone", "Use digits, spaces and + - ( ) only (at most 40).");
        }
        let job_title = f.get("job_title");
        if job_title.chars().count() > 100 {
            errors.add("job_title", "Use at most 100 characters.");
        }
        let mut roles: Vec<String> = Vec::new();
        for raw in f
            .get("roles")
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match ContactRole::parse(raw) {
                Some(r) => roles.push(r.as_str().to_owned()),
                None => errors.add(
                    "roles",
                    format!(
                        "\"{raw}\" is not a role (billing, accounts_payable, signer, technical)."
                    ),
                ),
            }
        }
        for r in ContactRole::ALL {
            if f.flag(&format!("role_{}", r.as_str())) {
                roles.push(r.as_str().to_owned());
            }
        }
        roles.sort_unstable();
        roles.dedup();
        let receives_invoices = f.flag("receives_invoices");
        let receives_reminders = f.flag("receives_reminders");
        if (receives_invoices || receives_reminders)
            && email.is_none()
            && errors.get("email").is_none()
        {
            errors.add(
                "email",
                "An email address is needed to receive invoices or reminders.",
            );
        }
        let status = match f.get("status") {
            "" | "active" => "active",
            "archived" => "archived",
            _ => {
                errors.add("status", "Choose active or archived.");
                "active"
            }
        };
        if errors.0.len() > before {
            return None;
        }
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Some(Self {
            name: name.to_owned(),
            email,
            phone: opt(phone),
            job_title: opt(job_title),
            roles,
            receives_invoices,
            receives_reminders,
            status: status.to_owned(),
        })
    }

    pub fn audit_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

pub fn list(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Contact>> {
    Ok(contacts::table
        .filter(contacts::account_id.eq(account_id))
        .order((contacts::status.asc(), contacts::name.asc(), contacts::id))
        .select(Contact::as_select())
        .load(conn)?)
}

pub fn get(conn: &mut PgConnection, id: i64) -> AppResult<Option<Contact>> {
    Ok(contacts::table
        .find(id)
        .select(Contact::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut PgConnection, account_id: i64, d: &ContactData) -> AppResult<i64> {
    Ok(diesel::insert_into(contacts::table)
        .values((
            contacts::account_id.eq(account_id),
            contacts::name.eq(&d.name),
            contacts::email.eq(&d.email),
            contacts::phone.eq(&d.phone),
            contacts::job_title.eq(&d.job_title),
            contacts::roles.eq(&d.roles),
            contacts::receives_invoices.eq(d.receives_invoices),
            contacts::receives_reminders.eq(d.receives_reminders),
            contacts::status.eq(&d.status),
        ))
        .returning(contacts::id)
        .get_result(conn)?)
}

/// Writes `d` if the contact is still at `version`.
pub fn update(conn: &mut PgConnection, id: i64, version: i32, d: &ContactData) -> AppResult<bool> {
    let n = diesel::update(
        contacts::table
            .filter(contacts::id.eq(id))
            .filter(contacts::version.eq(version)),
    )
    .set((
        contacts::name.eq(&d.name),
        contacts::email.eq(&d.email),
        contacts::phone.eq(&d.phone),
        contacts::job_title.eq(&d.job_title),
        contacts::roles.eq(&d.roles),
        contacts::receives_invoices.eq(d.receives_invoices),
        contacts::receives_reminders.eq(d.receives_reminders),
        contacts::status.eq(&d.status),
        contacts::version.eq(version + 1),
        contacts::updated_at.eq(Utc::now()),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn set_account(conn: &mut PgConnection, id: i64, account_id: i64) -> AppResult<()> {
    diesel::update(contacts::table.find(id))
        .set((
            contacts::account_id.eq(account_id),
            contacts::version.eq(contacts::version + 1),
            contacts::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Contacts of the given accounts, for export.
pub fn for_accounts(conn: &mut PgConnection, ids: &[i64]) -> AppResult<Vec<Contact>> {
    Ok(contacts::table
        .filter(contacts::account_id.eq_any(ids))
        .order((contacts::account_id, contacts::id))
        .select(Contact::as_select())
        .load(conn)?)
}
