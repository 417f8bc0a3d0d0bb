//! CRM changes to records Arbor already links: a company's mapped fields go to its account,
//! a contact's name, email and phone to its contact. Both go through the same validation and
//! audit as the forms; a value the mapping refuses holds the event with the reason.

use diesel::PgConnection;
use serde_json::{json, Value};

use super::{
    mapping,
    process::{errors_text, Outcome},
    repo::{self, Connector, NewLink},
    vendors::InboundEvent,
};
use crate::{
    accounts::{
        contacts_repo::{self as contacts, ContactData},
        domain::Fields,
        repo as accounts,
        service::{self, Saved},
    },
    audit::{self, Actor, Entry},
    error::{AppError, AppResult, FieldErrors},
};

pub(super) fn account(
    c: &mut PgConnection,
    connector: &Connector,
    ev: &InboundEvent,
    doc: &Value,
    actor: &Actor,
    account_id: i64,
) -> AppResult<Outcome> {
    // The mapping's account fields, read leniently: a company change carries only some.
    let mapped = mapping::preview(&connector.spec(), doc);
    let changes: Vec<(String, String)> = mapped
        .into_iter()
        .filter(|r| r.code.starts_with("account.") && r.problem.is_none())
        .filter_map(|r| {
            r.mapped
                .map(|v| (r.code.trim_start_matches("account.").to_owned(), v))
        })
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "legal_name" | "display_name" | "domain" | "tax_id"
            )
        })
        .collect();
    if changes.is_empty() {
        return Ok(Outcome::Ignored("No mapped account field changed.".into()));
    }
    let account = accounts::get(c, account_id)?.ok_or(AppError::NotFound)?;
    let before = account.data(accounts::external_ids(c, account_id)?);
    let mut after = before.clone();
    for (k, v) in &changes {
        match k.as_str() {
            "legal_name" => after.legal_name = v.clone(),
            "display_name" => after.display_name = v.clone(),
            "domain" => after.domain = Some(v.clone()),
            _ => after.tax_id = Some(v.clone()),
        }
    }
    let n = changes.len();
    match service::update(c, actor, account_id, account.version, &before, &after, true)? {
        Saved::Done(_) => {}
        Saved::Duplicates(_) | Saved::Stale => {
            return Ok(Outcome::Wait(
                "The account changed at the same time; trying again.".into(),
            ));
        }
    }
    repo::put_link(
        c,
        &NewLink {
            connector_id: connector.id,
            object_type: "company",
            crm_id: &ev.object_id,
            account_id: Some(account_id),
            sequence: ev.sequence,
            occurred_at: ev.occurred_at,
            ..NewLink::default()
        },
    )?;
    Ok(Outcome::Applied(
        json!({ "account_id": account_id, "fields_changed": n }),
    ))
}

/// A CRM contact change: the mapped name, email and phone are written to the linked contact
/// (validated like the form; an invalid value holds the event with the reason).
pub(super) fn contact(
    c: &mut PgConnection,
    connector: &Connector,
    ev: &InboundEvent,
    doc: &Value,
    actor: &Actor,
    contact_id: i64,
) -> AppResult<Outcome> {
    let rows: Vec<mapping::PreviewRow> = mapping::preview(&connector.spec(), doc)
        .into_iter()
        .filter(|r| {
            matches!(
                r.code.as_str(),
                "contact.name" | "contact.email" | "contact.phone"
            )
        })
        .collect();
    // A value the CRM sent that the mapping refuses holds the event: dropping it silently
    // would leave the two systems disagreeing without anyone knowing.
    let refused: Vec<String> = rows
        .iter()
        .filter(|r| r.raw.as_deref().is_some_and(|v| !v.is_empty()))
        .filter_map(|r| r.problem.as_ref().map(|p| format!("{}: {p}", r.label)))
        .collect();
    if !refused.is_empty() {
        return Ok(Outcome::Held(
            format!("The contact change is not valid: {}", refused.join(" ")),
            None,
        ));
    }
    let changes: Vec<(String, String)> = rows
        .into_iter()
        .filter(|r| r.problem.is_none())
        .filter_map(|r| {
            r.mapped
                .map(|v| (r.code.trim_start_matches("contact.").to_owned(), v))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let Some(contact) = contacts::get(c, contact_id)? else {
        return Ok(Outcome::Ignored(
            "The linked contact no longer exists.".into(),
        ));
    };
    let before = contact.data();
    let mut pairs = vec![
        ("name".to_owned(), before.name.clone()),
        ("email".to_owned(), before.email.clone().unwrap_or_default()),
        ("phone".to_owned(), before.phone.clone().unwrap_or_default()),
        (
            "job_title".to_owned(),
            before.job_title.clone().unwrap_or_default(),
        ),
        ("roles".to_owned(), before.roles.join(";")),
        ("status".to_owned(), before.status.clone()),
    ];
    for (flag, on) in [
        ("receives_invoices", before.receives_invoices),
        ("receives_reminders", before.receives_reminders),
    ] {
        if on {
            pairs.push((flag.to_owned(), "on".to_owned()));
        }
    }
    for (k, v) in &changes {
        if let Some(p) = pairs.iter_mut().find(|(n, _)| n == k) {
            p.1 = v.clone();
        }
    }
    let mut errors = FieldErrors::default();
    let Some(after) = ContactData::parse(&Fields::from_pairs(pairs), &mut errors) else {
        return Ok(Outcome::Held(
            format!("The contact change is not valid: {}", errors_text(&errors)),
            None,
        ));
    };
    if after == before {
        return Ok(Outcome::Ignored("No mapped contact field changed.".into()));
    }
    if !contacts::update(c, contact_id, contact.version, &after)? {
        return Ok(Outcome::Wait(
            "The contact changed at the same time; trying again.".into(),
        ));
    }
    audit::record(
        c,
        actor,
        &Entry::new("contact.updated", "contact", contact_id)
            .before(before.audit_json())
            .after(after.audit_json()),
    )?;
    repo::put_link(
        c,
        &NewLink {
            connector_id: connector.id,
            object_type: "contact",
            crm_id: &ev.object_id,
            contact_id: Some(contact_id),
            sequence: ev.sequence,
            occurred_at: ev.occurred_at,
            ..NewLink::default()
        },
    )?;
    Ok(Outcome::Applied(
        json!({ "contact_id": contact_id, "fields_changed": changes.len() }),
    ))
}
