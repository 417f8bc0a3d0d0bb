//! Writing accounts: resolving references, enforcing the rules, checking for duplicates and
//! recording the audit entry, in the caller's tenant transaction. Forms, imports and (later)
//! the CRM connector all go through here.

use diesel::PgConnection;
use serde_json::json;

use super::{
    dedupe::Reason,
    domain::{Addresses, CustomFieldDef, Fields, General, MemberRef, Terms},
    repo::{self, AccountData},
};
use crate::{
    audit::{self, Actor, Entry},
    error::{AppResult, FieldErrors},
    tenants::repo::Member,
};

/// Who is writing, and what they may touch.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// May set tax profile, currency, payment terms, delivery and bill-to-parent.
    pub terms: bool,
    /// Sales: accounts must stay owned by this user.
    pub owner_only: Option<i64>,
}

fn resolve_member(members: &[Member], r: &MemberRef) -> Result<i64, String> {
    let found = members.iter().find(|m| match r {
        MemberRef::Id(id) => m.user_id == *id,
        MemberRef::Email(e) => m.email.eq_ignore_ascii_case(e),
    });
    match found {
        Some(m) if m.status == "active" => Ok(m.user_id),
        Some(m) => Err(format!("{} is no longer an active member.", m.name)),
        None => Err("Choose a member of this workspace.".into()),
    }
}

/// Applies the general section to `d`. `self_id` is the account being edited.
pub fn apply_general(
    conn: &mut PgConnection,
    d: &mut AccountData,
    g: General,
    members: &[Member],
    policy: Policy,
    self_id: Option<i64>,
    errors: &mut FieldErrors,
) -> AppResult<()> {
    d.legal_name = g.legal_name;
    d.display_name = g.display_name;
    d.tax_id = g.tax_id;
    d.domain = g.domain;
    d.po_number = g.po_number;
    d.status = g.status.as_str().to_owned();
    d.notes = g.notes;
    d.crm_ids = g.crm_ids;
    match g.account_number {
        Some(n) => {
            if repo::id_by_number(conn, &n)?.is_some_and(|other| Some(other) != self_id) {
                errors.add(
                    "account_number",
                    format!("{n} is already used by another account."),
                );
            }
            d.account_number = n;
        }
        None if self_id.is_some() => {
            errors.add("account_number", "An account keeps its number; enter one.");
        }
        None => d.account_number = String::new(),
    }
    let owner = match g.owner.as_ref().map(|r| resolve_member(members, r)) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            errors.add("owner", e);
            None
        }
        None => None,
    };
    d.owner_user_id = match policy.owner_only {
        Some(me) if owner.is_some_and(|o| o != me) => {
            errors.add("owner", "Sales can only own accounts themselves.");
            Some(me)
        }
        Some(me) => Some(me),
        None => owner,
    };
    d.csm_user_id = match g.csm.as_ref().map(|r| resolve_member(members, r)) {
        Some(Ok(id)) => Some(id),
        Some(Err(e)) => {
            errors.add("csm", e);
            None
        }
        None => None,
    };
    d.parent_id = match g.parent {
        None => None,
        Some(number) => match repo::id_by_number(conn, &number)? {
            None => {
                errors.add("parent", format!("No account has the number {number}."));
                None
            }
            Some(pid) if Some(pid) == self_id => {
                errors.add("parent", "An account cannot be its own parent.");
                None
            }
            Some(pid) => {
                let parent = repo::get(conn, pid)?;
                if parent.as_ref().is_some_and(|p| p.status == "merged") {
                    errors.add(
                        "parent",
                        format!("{number} was merged into another account."),
                    );
                } else if let Some(me) = self_id {
                    if repo::would_cycle(conn, me, pid)? {
                        errors.add(
                            "parent",
                            format!("{number} is below this account; that would make a loop."),
                        );
                    }
                }
                Some(pid)
            }
        },
    };
    for (system, id) in &d.crm_ids {
        if let Some(holder) = repo::holder_of_external_id(conn, system, id, self_id)? {
            errors.add(
                "crm_ids",
                format!("{system}:{id} already belongs to account {holder}."),
            );
        }
    }
    if d.parent_id.is_none() && d.bill_to_parent {
        d.bill_to_parent = false;
    }
    Ok(())
}

pub fn apply_terms(d: &mut AccountData, t: Terms, errors: &mut FieldErrors) {
    d.tax_mode = t.tax_mode.as_str().to_owned();
    d.tax_rate = t.tax_rate;
    d.tax_exempt_certificate = t.tax_exempt_certificate;
    d.currency = t.currency.code().to_owned();
    d.terms_kind = t.terms.kind.as_str().to_owned();
    d.terms_days = i32::from(t.terms.days);
    d.invoice_delivery = t.delivery.as_str().to_owned();
    d.bill_to_parent = t.bill_to_parent;
    if t.bill_to_parent && d.parent_id.is_none() {
        errors.add(
            "bill_to_parent",
            "Set a parent account before billing to it.",
        );
    }
}

pub fn apply_addresses(d: &mut AccountData, a: Addresses) {
    d.billing_address = a.billing;
    d.shipping_address = a.shipping;
}

/// Replaces the values of the defined fields; values of archived fields are kept.
pub fn apply_custom(
    d: &mut AccountData,
    defs: &[CustomFieldDef],
    values: std::collections::BTreeMap<String, String>,
) {
    for def in defs {
        d.custom_fields.remove(&def.key);
    }
    d.custom_fields.extend(values);
}

/// A new account from form-like fields (an API body, a CRM deal's mapped fields): the general,
/// terms and address sections applied onto a blank account in `currency`, every problem
/// collected in `errors` by field.
pub fn data_from_fields(
    conn: &mut PgConnection,
    f: &Fields,
    currency: &str,
    members: &[Member],
    policy: Policy,
    errors: &mut FieldErrors,
) -> AppResult<AccountData> {
    let mut d = blank(currency);
    let general = General::parse(f, errors);
    let terms = Terms::parse(f, currency, errors);
    let addresses = Addresses::parse(f, errors);
    if let Some(t) = terms {
        if let Some(g) = general {
            apply_general(conn, &mut d, g, members, policy, None, errors)?;
        }
        apply_terms(&mut d, t, errors);
    }
    if let Some(a) = addresses {
        apply_addresses(&mut d, a);
    }
    Ok(d)
}

/// An empty account with the tenant's defaults, to apply sections onto.
pub fn blank(currency: &str) -> AccountData {
    AccountData {
        account_number: String::new(),
        legal_name: String::new(),
        display_name: String::new(),
        tax_id: None,
        domain: None,
        tax_mode: "standard".into(),
        tax_rate: None,
        tax_exempt_certificate: None,
        currency: currency.to_owned(),
        terms_kind: "net".into(),
        terms_days: 30,
        invoice_delivery: "email".into(),
        billing_address: Default::default(),
        shipping_address: Default::default(),
        po_number: None,
        owner_user_id: None,
        csm_user_id: None,
        status: "active".into(),
        parent_id: None,
        bill_to_parent: false,
        notes: String::new(),
        custom_fields: Default::default(),
        crm_ids: Vec::new(),
    }
}

/// Result of a write that may stop to show likely duplicates.
#[derive(Debug)]
pub enum Saved {
    Done(i64),
    Duplicates(Vec<(i64, Vec<Reason>)>),
    /// Someone else saved the account since the form was loaded.
    Stale,
}

/// Creates an account; unless `confirmed`, stops when it looks like an existing one.
pub fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    mut d: AccountData,
    confirmed: bool,
    reason: Option<String>,
) -> AppResult<Saved> {
    if !confirmed {
        let matches = repo::duplicates_of(conn, &d.probe(), d.parent_id)?;
        if !matches.is_empty() {
            return Ok(Saved::Duplicates(matches));
        }
    }
    if d.account_number.is_empty() {
        d.account_number = repo::next_number(conn)?;
    }
    let id = repo::insert(conn, &d)?;
    audit::record(
        conn,
        actor,
        &Entry::new("account.created", "account", id)
            .after(d.audit_json())
            .reason(reason),
    )?;
    Ok(Saved::Done(id))
}

/// Saves a changed account at `version`; stops for duplicates when identifying keys changed.
pub fn update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    version: i32,
    before: &AccountData,
    after: &AccountData,
    confirmed: bool,
) -> AppResult<Saved> {
    if before == after {
        return Ok(Saved::Done(id));
    }
    let (old, new) = (before.probe(), after.probe());
    let keys_changed = old.name_key != new.name_key
        || old.tax_id_key != new.tax_id_key
        || old.domain != new.domain
        || old.crm_ids != new.crm_ids;
    if keys_changed && !confirmed {
        let matches = repo::duplicates_of(conn, &new, Some(id))?;
        if !matches.is_empty() {
            return Ok(Saved::Duplicates(matches));
        }
    }
    if !repo::update(conn, id, version, after)? {
        return Ok(Saved::Stale);
    }
    audit::record(
        conn,
        actor,
        &Entry::new("account.updated", "account", id)
            .before(before.audit_json())
            .after(after.audit_json()),
    )?;
    Ok(Saved::Done(id))
}

/// Records a hierarchy change on the parent as well, so its history shows its children.
pub fn note_hierarchy_change(
    conn: &mut PgConnection,
    actor: &Actor,
    child: i64,
    old_parent: Option<i64>,
    new_parent: Option<i64>,
) -> AppResult<()> {
    if old_parent == new_parent {
        return Ok(());
    }
    if let Some(p) = old_parent {
        audit::record(
            conn,
            actor,
            &Entry::new("account.child_removed", "account", p).before(json!({ "child": child })),
        )?;
    }
    if let Some(p) = new_parent {
        audit::record(
            conn,
            actor,
            &Entry::new("account.child_added", "account", p).after(json!({ "child": child })),
        )?;
    }
    Ok(())
}
