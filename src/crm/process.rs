//! Processing one inbox event (job `crm.process`, run in bursts by `batch`): ordering,
//! mapping, and the effects.
//!
//! Each event is applied in its own savepoint under a row lock on its inbox row. The effects of
//! a won deal run inside a savepoint: a hold (a missing field, an ambiguous account, a price
//! that does not fit) rolls back whatever the deal had already written, so a held deal
//! changes nothing until it is replayed.

use chrono::NaiveDate;
use diesel::{Connection, PgConnection};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use super::{
    mapping::{self, DealKind, MappedDeal, Problem},
    repo::{self, Connector, InboxRow, NewLink},
    vendors::InboundEvent,
};
use crate::{
    accounts::{
        contacts_repo::{self as contacts, ContactData},
        dedupe::Reason,
        domain::Fields,
        handlers::default_currency,
        repo as accounts,
        service::{self, Policy, Saved},
    },
    audit::{self, Actor, Entry},
    catalog::repo as catalog,
    db::{self, scope::TenantSchema},
    error::{AppError, AppResult, FieldErrors},
    invoicing::email::Links,
    subscriptions::domain::SubscriptionInput,
    web::AppState,
};

/// How often a change to a deal that is not in Arbor yet is retried before it is held.
pub const MAX_WAITS: i32 = 6;

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied(Value),
    Held(String, Option<Value>),
    Ignored(String),
    /// Not yet: retried later (an amendment before its deal).
    Wait(String),
}

/// Why a deal's effects stopped: a hold rolls the savepoint back like an error does.
enum Stop {
    Held(String, Option<Value>),
    App(AppError),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Self {
        Stop::App(e.into())
    }
}

impl From<AppError> for Stop {
    fn from(e: AppError) -> Self {
        Stop::App(e)
    }
}

fn held(reason: impl Into<String>) -> Stop {
    Stop::Held(reason.into(), None)
}

fn problems_json(p: &[Problem]) -> Value {
    Value::Array(
        p.iter()
            .map(|x| json!({ "target": x.target, "message": x.message }))
            .collect(),
    )
}

pub(super) fn errors_text(e: &FieldErrors) -> String {
    e.0.iter()
        .map(|(f, m)| format!("{f}: {m}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn actor_for(c: &Connector) -> Actor {
    Actor {
        user_id: None,
        email: Some(format!("crm:{}", c.name)),
        ip: None,
    }
}

/// The document the mapping reads. One mapping covers deals, companies and contacts, so a
/// record arrives under the name its paths use: a deal as the vendor sends it (the generic
/// webhook nests its company and contact), a company or contact under `company`/`contact`
/// (`Account`/`Contact` at Salesforce) unless the sender nested it already.
pub fn document(c: &Connector, e: &InboundEvent) -> Value {
    let fields = Value::Object(e.fields.clone());
    let key = match (c.kind.as_str(), e.object_type.as_str()) {
        ("generic", "deal") => return fields,
        ("salesforce", "deal") => "Opportunity",
        ("salesforce", "company") => "Account",
        ("salesforce", "contact") => "Contact",
        (_, "deal") => "deal",
        (_, other) => other,
    };
    if c.kind == "generic" && e.fields.contains_key(key) {
        return fields;
    }
    json!({ key: fields })
}

/// Applies one event in the caller's transaction.
pub fn apply(
    c: &mut PgConnection,
    connector: &Connector,
    row: &InboxRow,
    doc: &Value,
    today: NaiveDate,
    links: Option<&Links>,
) -> AppResult<Outcome> {
    let Some(ev) = row.inbound() else {
        return Ok(Outcome::Held(
            "The stored event cannot be read.".into(),
            None,
        ));
    };
    let link = repo::link(c, connector.id, &ev.object_type, &ev.object_id)?;
    if let (Some(l), Some(seq)) = (&link, ev.sequence) {
        if l.last_sequence.is_some_and(|last| seq < last) {
            return Ok(Outcome::Ignored(format!(
                "Older than the change already applied to {} {} (sequence {seq} < {}).",
                ev.object_type,
                ev.object_id,
                l.last_sequence.unwrap_or_default()
            )));
        }
    }
    let actor = actor_for(connector);
    match (ev.object_type.as_str(), ev.change.as_str()) {
        (_, "gap") => Ok(Outcome::Held(
            "The CRM reported a gap in its change events; compare the record with Arbor and replay or ignore.".into(),
            None,
        )),
        ("deal", "won") => {
            if let Some(l) = link.as_ref().filter(|l| l.subscription_id.is_some() || l.invoice_id.is_some()) {
                return Ok(Outcome::Ignored(format!(
                    "Deal {} is already billed ({}).",
                    ev.object_id,
                    l.subscription_id
                        .map(|s| format!("subscription {s}"))
                        .or(l.invoice_id.map(|i| format!("invoice {i}")))
                        .unwrap_or_default()
                )));
            }
            let result = c.transaction::<Value, Stop, _>(|c| {
                deal_won(c, connector, &ev, doc, &actor, today)
            });
            match result {
                Ok(effect) => Ok(Outcome::Applied(effect)),
                Err(Stop::Held(reason, problems)) => Ok(Outcome::Held(reason, problems)),
                Err(Stop::App(e)) => Err(e),
            }
        }
        ("deal", "amended") => match (link.and_then(|l| l.subscription_id), links) {
            (None, _) => Ok(Outcome::Wait(format!(
                "Deal {} is not in Arbor yet; the amendment waits for its won event.",
                ev.object_id
            ))),
            (Some(sub), None) => Ok(Outcome::Held(
                format!("Deal {} was amended; replay it to amend subscription {sub}.", ev.object_id),
                None,
            )),
            (Some(sub), Some(links)) => {
                let result = c.transaction::<Value, Stop, _>(|c| {
                    deal_amended(c, connector, &ev, doc, &actor, links, sub, today)
                });
                match result {
                    Ok(effect) if effect["amendments"].as_array().is_some_and(|a| a.is_empty()) => {
                        Ok(Outcome::Ignored("The amendment changes no quantity.".into()))
                    }
                    Ok(effect) => Ok(Outcome::Applied(effect)),
                    Err(Stop::Held(reason, problems)) => Ok(Outcome::Held(reason, problems)),
                    Err(Stop::App(e)) => Err(e),
                }
            }
        },
        ("deal", "deleted") => match link {
            Some(l) => Ok(Outcome::Held(
                format!(
                    "Deal {} was deleted in the CRM; its billing ({}) stays until a person cancels it.",
                    ev.object_id,
                    l.subscription_id
                        .map(|s| format!("subscription {s}"))
                        .unwrap_or_else(|| "nothing billed".into())
                ),
                None,
            )),
            None => Ok(Outcome::Ignored("Deleted before it was won.".into())),
        },
        ("deal", _) => Ok(Outcome::Ignored(format!(
            "Deal {} is not won; nothing to bill yet.",
            ev.object_id
        ))),
        ("company", _) => match link.and_then(|l| l.account_id) {
            None => Ok(Outcome::Ignored(format!(
                "Company {} has no account in Arbor yet (it gets one with its first won deal).",
                ev.object_id
            ))),
            Some(account_id) => {
                super::updates::account(c, connector, &ev, doc, &actor, account_id)
            }
        },
        ("contact", "deleted") => Ok(Outcome::Ignored(format!(
            "Contact {} was deleted in the CRM; the contact stays in Arbor (it may be on invoices).",
            ev.object_id
        ))),
        ("contact", _) => match link.and_then(|l| l.contact_id) {
            None => Ok(Outcome::Ignored(format!(
                "Contact {} is not in Arbor (contacts arrive with a won deal).",
                ev.object_id
            ))),
            Some(contact_id) => {
                super::updates::contact(c, connector, &ev, doc, &actor, contact_id)
            }
        },
        (t, ch) => Ok(Outcome::Ignored(format!("Nothing to do for {t} {ch}."))),
    }
}

fn deal_won(
    c: &mut PgConnection,
    connector: &Connector,
    ev: &InboundEvent,
    doc: &Value,
    actor: &Actor,
    today: NaiveDate,
) -> Result<Value, Stop> {
    let m = mapping::apply(&connector.spec(), doc).map_err(|p| {
        Stop::Held(
            format!(
                "Missing or invalid billing fields: {}",
                p.iter()
                    .map(|x| x.message.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Some(problems_json(&p)),
        )
    })?;
    let (account, account_created) = resolve_account(c, connector, &m, actor)?;
    let contact_id = ensure_contact(c, account.id, &m, actor)?;
    let items = if m.kind == DealKind::Subscription {
        resolve_lines(c, &m, &account.currency)?
    } else {
        Vec::new()
    };
    let mut effect = json!({
        "account_id": account.id,
        "account_created": account_created,
        "contact_id": contact_id,
    });
    let deal_id = if m.deal_id.is_empty() {
        ev.object_id.clone()
    } else {
        m.deal_id.clone()
    };
    let mut link = NewLink {
        connector_id: connector.id,
        object_type: "deal",
        crm_id: &deal_id,
        account_id: Some(account.id),
        sequence: ev.sequence,
        occurred_at: ev.occurred_at,
        ..NewLink::default()
    };
    match m.kind {
        DealKind::Subscription => {
            let mut pairs: Vec<(String, String)> = m.subscription.clone();
            if !pairs.iter().any(|(k, _)| k == "timing") {
                pairs.push(("timing".into(), "advance".into()));
            }
            if !pairs.iter().any(|(k, _)| k == "term_months") {
                // Without a term on the deal: a year, or one cycle when that is longer.
                let cycle: u32 = pairs
                    .iter()
                    .find(|(k, _)| k == "cycle")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(1);
                pairs.push(("term_months".into(), cycle.max(12).to_string()));
            }
            if !pairs.iter().any(|(k, _)| k == "auto_renew") {
                pairs.push(("auto_renew".into(), "on".into()));
            }
            for (i, (price, quantity, discount)) in items.iter().enumerate() {
                pairs.push((format!("item{i}_price"), price.to_string()));
                pairs.push((format!("item{i}_quantity"), quantity.to_string()));
                if let Some(d) = discount {
                    pairs.push((format!("item{i}_discount"), d.clone()));
                }
            }
            let f = Fields::from_pairs(pairs);
            let mut input = SubscriptionInput::parse(&f, today).map_err(|e| {
                held(format!(
                    "The subscription is not valid: {}",
                    errors_text(&e)
                ))
            })?;
            input.apply_term_end();
            let sub = crate::subscriptions::service::create(c, actor, &account, &input)?.map_err(
                |e| {
                    held(format!(
                        "The subscription is not valid: {}",
                        errors_text(&e)
                    ))
                },
            )?;
            link.subscription_id = Some(sub);
            if let Some(o) = effect.as_object_mut() {
                o.insert("subscription_id".into(), json!(sub));
            }
        }
        DealKind::OneOff => {
            let inv = one_off_invoice(c, &m, &account, actor, today)?;
            link.invoice_id = Some(inv);
            if let Some(o) = effect.as_object_mut() {
                o.insert("invoice_id".into(), json!(inv));
            }
        }
    }
    repo::put_link(c, &link)?;
    if let Some(company) = m.account_crm_id.as_deref().filter(|s| !s.is_empty()) {
        repo::put_link(
            c,
            &NewLink {
                connector_id: connector.id,
                object_type: "company",
                crm_id: company,
                account_id: Some(account.id),
                ..NewLink::default()
            },
        )?;
    }
    if let (Some(person), Some(cid)) = (
        m.contact_crm_id.as_deref().filter(|s| !s.is_empty()),
        contact_id,
    ) {
        repo::put_link(
            c,
            &NewLink {
                connector_id: connector.id,
                object_type: "contact",
                crm_id: person,
                account_id: Some(account.id),
                contact_id: Some(cid),
                ..NewLink::default()
            },
        )?;
    }
    audit::record(
        c,
        actor,
        &Entry::new("crm.deal_won", "account", account.id).after(json!({
            "connector": connector.name, "deal": deal_id, "effect": effect,
        })),
    )?;
    Ok(effect)
}

/// The system name CRM ids are kept under on accounts.
fn system_of(c: &Connector) -> String {
    match c.kind.as_str() {
        "hubspot" | "salesforce" => c.kind.clone(),
        _ => "crm".into(),
    }
}

fn resolve_account(
    c: &mut PgConnection,
    connector: &Connector,
    m: &MappedDeal,
    actor: &Actor,
) -> Result<(accounts::Account, bool), Stop> {
    let crm_id = m.account_crm_id.clone().filter(|s| !s.is_empty());
    if let Some(id) = &crm_id {
        if let Some(l) = repo::link(c, connector.id, "company", id)? {
            if let Some(aid) = l.account_id {
                let a = accounts::get(c, aid)?.ok_or(AppError::NotFound)?;
                return Ok((a, false));
            }
        }
        if let Some(aid) = accounts::by_external_id(c, &system_of(connector), id)? {
            let a = accounts::get(c, aid)?.ok_or(AppError::NotFound)?;
            return Ok((a, false));
        }
    }
    let mut pairs = m.account.clone();
    if let Some(id) = &crm_id {
        pairs.push(("crm_ids".into(), format!("{}:{id}", system_of(connector))));
    }
    let f = Fields::from_pairs(pairs);
    let mut errors = FieldErrors::default();
    let policy = Policy {
        terms: true,
        owner_only: None,
    };
    let currency = default_currency(c)?;
    let d = service::data_from_fields(c, &f, &currency, &[], policy, &mut errors)?;
    if !errors.is_empty() {
        return Err(held(format!(
            "The account is not valid: {}",
            errors_text(&errors)
        )));
    }
    match service::create(c, actor, d, false, Some("Won deal from the CRM".into()))? {
        Saved::Done(id) => {
            let a = accounts::get(c, id)?.ok_or(AppError::NotFound)?;
            Ok((a, true))
        }
        Saved::Duplicates(found) => {
            // One existing account that shares a hard key (name, tax id, domain, CRM id) is
            // the same customer; anything vaguer, or several, needs a person.
            let strong: Vec<&(i64, Vec<Reason>)> = found
                .iter()
                .filter(|(_, r)| {
                    r.iter().any(|x| {
                        matches!(
                            x,
                            Reason::SameName
                                | Reason::SameTaxId
                                | Reason::SameDomain
                                | Reason::SameCrmId { .. }
                        )
                    })
                })
                .collect();
            if let ([(aid, _)], 1) = (strong.as_slice(), found.len()) {
                let a = accounts::get(c, *aid)?.ok_or(AppError::NotFound)?;
                if let Some(id) = &crm_id {
                    accounts::add_external_id(c, a.id, &system_of(connector), id)?;
                }
                return Ok((a, false));
            }
            let mut names = Vec::new();
            for (aid, reasons) in &found {
                let label = accounts::get(c, *aid)?
                    .map(|a| format!("{} {}", a.account_number, a.display_name))
                    .unwrap_or_else(|| aid.to_string());
                let why: Vec<String> = reasons.iter().map(Reason::label).collect();
                names.push(format!("{label} ({})", why.join(", ")));
            }
            Err(Stop::Held(
                format!(
                    "The customer may already exist: {}. Link the right account by adding the CRM id \"{}\" to it (or merge the duplicates), then replay.",
                    names.join("; "),
                    crm_id
                        .map(|id| format!("{}:{id}", system_of(connector)))
                        .unwrap_or_default()
                ),
                None,
            ))
        }
        Saved::Stale => Err(Stop::App(AppError::Conflict("Please try again.".into()))),
    }
}

fn ensure_contact(
    c: &mut PgConnection,
    account_id: i64,
    m: &MappedDeal,
    actor: &Actor,
) -> Result<Option<i64>, Stop> {
    let get = |k: &str| {
        m.contact
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let email = get("email");
    if email.is_empty() {
        return Ok(None);
    }
    let existing = contacts::list(c, account_id)?;
    if let Some(found) = existing.iter().find(|x| {
        x.email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&email))
    }) {
        return Ok(Some(found.id));
    }
    let name = Some(get("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| email.clone());
    let phone = Some(get("phone")).filter(|p| !p.is_empty());
    let mut pairs = vec![
        ("name".to_owned(), name),
        ("email".to_owned(), email),
        ("roles".to_owned(), "billing".to_owned()),
        ("receives_invoices".to_owned(), "on".to_owned()),
        ("receives_reminders".to_owned(), "on".to_owned()),
    ];
    if let Some(p) = phone {
        pairs.push(("phone".into(), p));
    }
    let f = Fields::from_pairs(pairs);
    let mut errors = FieldErrors::default();
    let Some(d): Option<ContactData> = ContactData::parse(&f, &mut errors) else {
        return Err(held(format!(
            "The billing contact is not valid: {}",
            errors_text(&errors)
        )));
    };
    let id = contacts::insert(c, account_id, &d)?;
    let mut after = d.audit_json();
    if let Some(o) = after.as_object_mut() {
        o.insert("account_id".into(), json!(account_id));
    }
    audit::record(
        c,
        actor,
        &Entry::new("contact.created", "contact", id).after(after),
    )?;
    Ok(Some(id))
}

/// Each deal line as (price id, quantity, discount): the product by SKU, its active price in
/// the account's currency for the deal's billing frequency, and the negotiated price as a
/// discount off the list price.
fn resolve_lines(
    c: &mut PgConnection,
    m: &MappedDeal,
    currency: &str,
) -> Result<Vec<(i64, Decimal, Option<String>)>, Stop> {
    let cycle: i32 = m
        .subscription
        .iter()
        .find(|(k, _)| k == "cycle")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1);
    let products = catalog::list_products(c, false)?;
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for line in &m.lines {
        let Some(product) = products
            .iter()
            .find(|p| p.sku.eq_ignore_ascii_case(&line.sku))
        else {
            problems.push(format!("No active product has the SKU \"{}\"; add it to the catalog or map the CRM product code to an existing SKU.", line.sku));
            continue;
        };
        if !m.revenue_recognition.is_empty() && product.revenue_recognition != m.revenue_recognition
        {
            problems.push(format!(
                "The deal recognizes revenue {} but {} is set up as {}; fix the deal or the product.",
                m.revenue_recognition.replace('_', " "),
                product.sku,
                product.revenue_recognition.replace('_', " ")
            ));
            continue;
        }
        let prices = catalog::prices_with_current(c, Some(product.id), Some(currency), true)?;
        let Some((price, version)) = prices.iter().find_map(|p| {
            p.current
                .as_ref()
                .filter(|v| v.terms.interval_months == cycle)
                .map(|v| (p.price.id, v))
        }) else {
            problems.push(format!(
                "{} has no active {currency} price billed every {cycle} month(s).",
                product.sku
            ));
            continue;
        };
        let list = version.terms.model.amount(line.quantity);
        let discount = match (&line.discount, line.unit_price) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(unit)) => {
                let negotiated = (unit * line.quantity).round_dp(4);
                if negotiated > list {
                    problems.push(format!(
                        "{}: the negotiated {negotiated} is above the list price {list}; add a price version or fix the deal.",
                        product.sku
                    ));
                    continue;
                }
                let off = (list - negotiated).round_dp(4);
                (!off.is_zero()).then(|| off.normalize().to_string())
            }
            (None, None) => None,
        };
        out.push((price, line.quantity, discount));
    }
    if !problems.is_empty() {
        return Err(held(format!("Products: {}", problems.join(" "))));
    }
    Ok(out)
}

/// A won deal's new quantities become quantity amendments of its subscription (prorated by
/// the subscription rules), effective the day the CRM changed the deal.
#[allow(clippy::too_many_arguments)]
fn deal_amended(
    c: &mut PgConnection,
    connector: &Connector,
    ev: &InboundEvent,
    doc: &Value,
    actor: &Actor,
    links: &Links,
    sub_id: i64,
    today: NaiveDate,
) -> Result<Value, Stop> {
    use crate::subscriptions::{
        amend::{self, AmendInput, AmendKind},
        repo as subs,
    };
    let m = mapping::apply(&connector.spec(), doc).map_err(|p| {
        Stop::Held(
            format!(
                "The amended deal has missing or invalid fields: {}",
                p.iter()
                    .map(|x| x.message.clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Some(problems_json(&p)),
        )
    })?;
    let sub = subs::get(c, sub_id)?;
    let effective = ev
        .occurred_at
        .map(|t| t.date_naive())
        .unwrap_or(today)
        .max(sub.start_date);
    let products = catalog::list_products(c, true)?;
    let items: Vec<_> = subs::items_of(c, sub_id)?
        .into_iter()
        .filter(|i| i.end_date.is_none_or(|e| e >= effective))
        .collect();
    let mut done = Vec::new();
    for line in &m.lines {
        let item = items.iter().find(|i| {
            products
                .iter()
                .any(|p| p.id == i.product_id && p.sku.eq_ignore_ascii_case(&line.sku))
        });
        let Some(item) = item else {
            return Err(held(format!(
                "The amended deal adds {}, which subscription {} does not have; add it by hand (Subscriptions → Amend), then replay.",
                line.sku, sub.number
            )));
        };
        if item.quantity == line.quantity {
            continue;
        }
        let input = AmendInput {
            kind: AmendKind::Quantity,
            item_id: Some(item.id),
            quantity: Some(line.quantity),
            price_id: None,
            effective,
            reason: format!("CRM {} amended deal {}", connector.name, ev.object_id),
        };
        let outcome = match amend::apply(c, actor, links, sub_id, &input, today) {
            Ok(o) => o,
            Err(AppError::Validation(e)) => {
                return Err(held(format!(
                    "The amendment cannot apply: {}",
                    errors_text(&e)
                )))
            }
            Err(e) => return Err(Stop::App(e)),
        };
        done.push(
            json!({ "sku": line.sku, "from": item.quantity, "to": line.quantity,
                          "summary": outcome.summary, "document": outcome.document }),
        );
    }
    repo::put_link(
        c,
        &NewLink {
            connector_id: connector.id,
            object_type: "deal",
            crm_id: &ev.object_id,
            sequence: ev.sequence,
            occurred_at: ev.occurred_at,
            ..NewLink::default()
        },
    )?;
    Ok(json!({ "subscription_id": sub_id, "effective": effective, "amendments": done }))
}

/// A one-off deal: a draft invoice with one line per deal line (list price, the negotiated
/// price or discount as the line's discount), left for review like any draft.
fn one_off_invoice(
    c: &mut PgConnection,
    m: &MappedDeal,
    account: &accounts::Account,
    actor: &Actor,
    today: NaiveDate,
) -> Result<i64, Stop> {
    use crate::{
        invoicing::{
            build::{self, Header, Payer},
            domain::TaxCategory,
            repo as invoices,
        },
        money::Currency,
        subscriptions::charges::{DraftLine, LineKind},
    };
    let currency = Currency::parse(&account.currency).map_err(|e| held(e.to_string()))?;
    let products = catalog::list_products(c, false)?;
    let mut drafts = Vec::new();
    let mut problems = Vec::new();
    for line in &m.lines {
        let Some(product) = products
            .iter()
            .find(|p| p.sku.eq_ignore_ascii_case(&line.sku))
        else {
            problems.push(format!("No active product has the SKU \"{}\".", line.sku));
            continue;
        };
        let prices =
            catalog::prices_with_current(c, Some(product.id), Some(&account.currency), true)?;
        let Some((version_id, list)) = prices.iter().find_map(|p| {
            p.current
                .as_ref()
                .map(|v| (v.id, v.terms.model.amount(line.quantity)))
        }) else {
            problems.push(format!(
                "{} has no active {} price.",
                product.sku, account.currency
            ));
            continue;
        };
        let discount = match (&line.discount, line.unit_price) {
            (Some(d), _) => match d.strip_suffix('%').map(str::trim) {
                Some(p) => p
                    .parse::<Decimal>()
                    .map(|p| (list * p / Decimal::ONE_HUNDRED).round_dp(2))
                    .unwrap_or_default(),
                None => d.parse::<Decimal>().unwrap_or_default(),
            },
            (None, Some(unit)) => (list - unit * line.quantity).max(Decimal::ZERO),
            (None, None) => Decimal::ZERO,
        };
        drafts.push(DraftLine {
            kind: LineKind::OneOff,
            description: if line.description.is_empty() {
                product.name.clone()
            } else {
                line.description.clone()
            },
            product_id: Some(product.id),
            item_id: None,
            price_version_id: Some(version_id),
            period: None,
            quantity: line.quantity,
            amount: list,
            discount: discount.min(list),
            tax_category: TaxCategory::parse(&product.tax_category)
                .unwrap_or(TaxCategory::Standard),
            gl_account: None,
        });
    }
    if !problems.is_empty() {
        return Err(held(format!("Products: {}", problems.join(" "))));
    }
    let payer = Payer::of(&accounts::bill_to(c, account.id)?);
    let po = m
        .subscription
        .iter()
        .find(|(k, _)| k == "po_number")
        .map(|(_, v)| v.clone())
        .or_else(|| account.po_number.clone());
    let built = build::build(
        Header {
            kind: "invoice",
            source: "manual",
            account_id: account.id,
            subscription_id: None,
            period: None,
            bill_run_id: None,
            related_invoice_id: None,
            currency,
            issue_date: today,
            terms: payer.terms,
            po_number: po,
            notes: String::new(),
        },
        &payer,
        invoices::tax_rates(c)?,
        &drafts,
    );
    let id = invoices::insert_one(c, &built.invoice)?;
    let mut lines = built.lines;
    for l in &mut lines {
        l.invoice_id = id;
    }
    invoices::insert_lines(c, &lines)?;
    audit::record(
        c,
        actor,
        &Entry::new("invoice.created", "invoice", id)
            .after(json!({ "source": "crm", "account_id": account.id, "deal": m.deal_id })),
    )?;
    Ok(id)
}

/// The document of a won deal read from the CRM's API when the connector has an access token:
/// HubSpot's webhook carries only the changed property, a Salesforce message only Opportunity
/// fields. `None` for everything else.
pub(super) async fn fetch_document(
    state: &AppState,
    schema: &TenantSchema,
    inbox_id: i64,
) -> Result<Option<Value>, super::hubspot_api::FetchError> {
    use super::hubspot_api::FetchError;
    let key = state.config.secret_key.clone();
    let s = schema.clone();
    let loaded = db::run(&state.pool, move |c| {
        db::scope::in_tenant(c, &s, |c| {
            let row = repo::inbox_row(c, inbox_id)?;
            let conn = repo::connector(c, row.connector_id)?;
            let token = super::handlers::open_optional(&key, conn.api_token_sealed.as_deref())?;
            Ok((row, conn, token))
        })
    })
    .await
    .map_err(|e| FetchError::Retry(format!("{e:?}")))?;
    let (row, connector, token) = loaded;
    let won_deal = row.status == "received" && row.object_type == "deal" && row.change == "won";
    let (true, Some(token)) = (won_deal, token) else {
        return Ok(None);
    };
    let settings = connector.settings();
    match connector.kind.as_str() {
        "hubspot" => {
            let base = if settings.hubspot_api_base.is_empty() {
                "https://api.hubapi.com".to_owned()
            } else {
                settings.hubspot_api_base
            };
            super::hubspot_api::deal_document(
                &state.http,
                &base,
                &token,
                &connector.spec(),
                &row.object_id,
            )
            .await
            .map(Some)
        }
        // The write-back's instance; without one there is nothing to read from.
        "salesforce" if !settings.salesforce_instance_url.is_empty() => {
            let message = row.inbound().map(|e| e.fields).unwrap_or_default();
            super::salesforce_api::opportunity_document(
                &state.http,
                &settings.salesforce_instance_url,
                &token,
                &connector.spec(),
                &row.object_id,
                &message,
            )
            .await
            .map(Some)
        }
        _ => Ok(None),
    }
}

/// Processes one inbox row in the caller's tenant transaction, with the document already read
/// from the CRM's API when there is one; `None` when it was already processed (a second job
/// for the same row).
pub fn process_with(
    c: &mut PgConnection,
    inbox_id: i64,
    today: NaiveDate,
    fetched: Option<Value>,
    links: Option<&Links>,
) -> AppResult<Option<Outcome>> {
    let row = repo::lock_inbox_row(c, inbox_id)?;
    if row.status != "received" {
        return Ok(None);
    }
    let connector = repo::connector(c, row.connector_id)?;
    let Some(ev) = row.inbound() else {
        repo::finish(
            c,
            inbox_id,
            "held",
            Some("The stored event cannot be read."),
            None,
            None,
        )?;
        return Ok(Some(Outcome::Held("unreadable".into(), None)));
    };
    let doc = fetched.unwrap_or_else(|| document(&connector, &ev));
    let outcome = apply(c, &connector, &row, &doc, today, links)?;
    match &outcome {
        Outcome::Applied(effect) => {
            repo::finish(c, inbox_id, "applied", None, None, Some(effect))?;
        }
        Outcome::Held(reason, problems) => {
            repo::finish(c, inbox_id, "held", Some(reason), problems.as_ref(), None)?;
        }
        Outcome::Ignored(reason) => {
            repo::finish(c, inbox_id, "ignored", Some(reason), None, None)?;
        }
        Outcome::Wait(reason) => {
            let n = repo::count_attempt(c, inbox_id, reason)?;
            if n >= MAX_WAITS {
                let why =
                    format!("{reason} It waited {n} times; replay it once the deal is in Arbor.");
                repo::finish(c, inbox_id, "held", Some(&why), None, None)?;
                return Ok(Some(Outcome::Held(why, None)));
            }
        }
    }
    Ok(Some(outcome))
}
