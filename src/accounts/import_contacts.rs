//! CSV import of contacts, with the columns of the contacts export. A row with an `id`
//! updates that contact (a different account moves it); a row without one creates a contact
//! under the account named by `account_number` (or `account_id`).

use diesel::PgConnection;
use serde_json::json;

use super::{
    contacts::fields_of,
    contacts_repo::{self, ContactData},
    csv_io::CONTACT_COLUMNS,
    domain::ContactRole,
    import_rows::{each_row, Context, FileSpec, OnDuplicate, Report, RowOutcome},
    repo,
};
use crate::{
    audit::{self, Entry},
    error::{AppResult, FieldErrors},
};

pub fn apply(
    conn: &mut PgConnection,
    cx: &Context<'_>,
    content: &str,
    progress: &mut dyn FnMut(usize),
) -> AppResult<Report> {
    let spec = FileSpec {
        known: &|h: &str| CONTACT_COLUMNS.contains(&h),
        required: &["name", "id"],
        what: "contact",
        name_column: "name",
    };
    each_row(content, &spec, OnDuplicate::Create, progress, |given| {
        row(conn, cx, given)
    })
}

fn invalid(field: &str, message: String) -> AppResult<RowOutcome> {
    let mut e = FieldErrors::default();
    e.add(field, message);
    Ok(RowOutcome::Invalid(e))
}

fn row(
    conn: &mut PgConnection,
    cx: &Context<'_>,
    given: &[(String, String)],
) -> AppResult<RowOutcome> {
    let get = |k: &str| {
        given
            .iter()
            .find(|(h, _)| h == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let existing = match get("id") {
        "" => None,
        raw => match raw
            .parse::<i64>()
            .ok()
            .map(|id| contacts_repo::get(conn, id))
            .transpose()?
            .flatten()
        {
            Some(c) => Some(c),
            None => return invalid("id", format!("No contact has id {raw}.")),
        },
    };
    let account_id = match (get("account_number"), get("account_id")) {
        ("", "") => match &existing {
            Some(c) => c.account_id,
            None => {
                return invalid(
                    "account_number",
                    "Give the account_number of the contact's account.".into(),
                )
            }
        },
        ("", raw) => match raw.parse::<i64>() {
            Ok(id) => id,
            Err(_) => return invalid("account_id", format!("{raw} is not an account id.")),
        },
        (number, _) => match repo::id_by_number(conn, number)? {
            Some(id) => id,
            None => {
                return invalid(
                    "account_number",
                    format!("No account has the number {number}."),
                )
            }
        },
    };
    let account = match repo::get(conn, account_id)? {
        Some(a) if cx.policy.owner_only.is_none() || a.owner_user_id == cx.policy.owner_only => a,
        _ => {
            return invalid(
                "account_number",
                "No account you can see has this number or id.".into(),
            )
        }
    };
    if account.status == "merged" {
        return invalid(
            "account_number",
            format!(
                "{} was merged into another account.",
                account.account_number
            ),
        );
    }
    // Columns left out keep the stored values; a roles column replaces the roles.
    let mut f = existing
        .as_ref()
        .map(|c| fields_of(&c.data()))
        .unwrap_or_default();
    if given.iter().any(|(h, _)| h == "roles") {
        for r in ContactRole::ALL {
            f.set(&format!("role_{}", r.as_str()), "");
        }
    }
    for (h, v) in given {
        f.set(h, v.clone());
    }
    let mut errors = FieldErrors::default();
    let Some(d) = ContactData::parse(&f, &mut errors) else {
        return Ok(RowOutcome::Invalid(errors));
    };
    let reason = Some(format!("CSV import #{}", cx.import_id));
    let Some(c) = existing else {
        let id = contacts_repo::insert(conn, account.id, &d)?;
        let mut after = d.audit_json();
        if let Some(o) = after.as_object_mut() {
            o.insert("account_id".into(), json!(account.id));
        }
        audit::record(
            conn,
            cx.actor,
            &Entry::new("contact.created", "contact", id)
                .after(after)
                .reason(reason),
        )?;
        return Ok(RowOutcome::Created);
    };
    let before = c.data();
    if before == d && c.account_id == account.id {
        return Ok(RowOutcome::Unchanged);
    }
    if before != d {
        contacts_repo::update(conn, c.id, c.version, &d)?;
        audit::record(
            conn,
            cx.actor,
            &Entry::new("contact.updated", "contact", c.id)
                .before(before.audit_json())
                .after(d.audit_json())
                .reason(reason.clone()),
        )?;
    }
    if c.account_id != account.id {
        contacts_repo::set_account(conn, c.id, account.id)?;
        audit::record(
            conn,
            cx.actor,
            &Entry::new("contact.moved", "contact", c.id)
                .before(json!({ "account_id": c.account_id }))
                .after(json!({ "account_id": account.id, "account": account.account_number }))
                .reason(reason),
        )?;
    }
    Ok(RowOutcome::Updated)
}
