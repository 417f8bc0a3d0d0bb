//! CRM tables: connectors, the inbox of received events, and links from CRM records to what
//! they became in Arbor.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_query, sql_types::BigInt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::vendors::InboundEvent;
use crate::{
    db::schema::tenant::{crm_connectors as cc, crm_inbox as inbox, crm_links as links},
    error::{AppError, AppResult},
};

/// Inbox rows per page.
pub const PAGE_SIZE: i64 = 50;

/// Non-secret connector settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    /// HubSpot: older signature versions accepted besides v3 ("v1", "v2").
    #[serde(default)]
    pub hubspot_legacy: Vec<String>,
    /// HubSpot: the CRM API the deal, company, contact and line items are read from.
    #[serde(default)]
    pub hubspot_api_base: String,
    /// Salesforce: the organization id outbound messages must carry.
    #[serde(default)]
    pub salesforce_org_id: String,
    /// Salesforce: the instance the REST write-back goes to (https://…my.salesforce.com).
    #[serde(default)]
    pub salesforce_instance_url: String,
    /// Write invoice and payment status back to the CRM.
    #[serde(default)]
    pub writeback: bool,
    /// Generic: where status events go back (signed like outbound webhooks).
    #[serde(default)]
    pub writeback_url: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = cc)]
pub struct Connector {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub token: String,
    pub status: String,
    pub settings: Value,
    pub secret_sealed: Option<String>,
    pub api_token_sealed: Option<String>,
    pub mapping: Value,
    pub mapping_version: i32,
    pub sample_payload: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Connector {
    pub fn settings(&self) -> Settings {
        serde_json::from_value(self.settings.clone()).unwrap_or_default()
    }

    pub fn spec(&self) -> super::mapping::Spec {
        serde_json::from_value(self.mapping.clone())
            .unwrap_or_else(|_| super::mapping::default_spec(&self.kind))
    }

    pub fn label(&self) -> &'static str {
        super::kind_label(&self.kind)
    }
}

pub fn connectors(conn: &mut PgConnection) -> AppResult<Vec<Connector>> {
    Ok(cc::table
        .order(cc::id)
        .select(Connector::as_select())
        .load(conn)?)
}

pub fn connector(conn: &mut PgConnection, id: i64) -> AppResult<Connector> {
    cc::table
        .find(id)
        .select(Connector::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn by_token(conn: &mut PgConnection, token: &str) -> AppResult<Option<Connector>> {
    Ok(cc::table
        .filter(cc::token.eq(token))
        .select(Connector::as_select())
        .first(conn)
        .optional()?)
}

pub fn create(
    conn: &mut PgConnection,
    kind: &str,
    name: &str,
    token: &str,
    mapping: &Value,
    settings: &Value,
) -> AppResult<i64> {
    Ok(diesel::insert_into(cc::table)
        .values((
            cc::kind.eq(kind),
            cc::name.eq(name),
            cc::token.eq(token),
            cc::mapping.eq(mapping),
            cc::settings.eq(settings),
        ))
        .returning(cc::id)
        .get_result(conn)?)
}

pub fn name_taken(conn: &mut PgConnection, name: &str, except: Option<i64>) -> AppResult<bool> {
    let mut q = cc::table.filter(cc::name.eq(name)).into_boxed();
    if let Some(id) = except {
        q = q.filter(cc::id.ne(id));
    }
    Ok(q.count().get_result::<i64>(conn)? > 0)
}

pub fn save_settings(
    conn: &mut PgConnection,
    id: i64,
    name: &str,
    status: &str,
    settings: &Settings,
) -> AppResult<()> {
    let v = serde_json::to_value(settings).map_err(AppError::internal)?;
    diesel::update(cc::table.find(id))
        .set((
            cc::name.eq(name),
            cc::status.eq(status),
            cc::settings.eq(v),
            cc::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_secret(conn: &mut PgConnection, id: i64, sealed: &str) -> AppResult<()> {
    diesel::update(cc::table.find(id))
        .set(cc::secret_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

pub fn set_api_token(conn: &mut PgConnection, id: i64, sealed: &str) -> AppResult<()> {
    diesel::update(cc::table.find(id))
        .set(cc::api_token_sealed.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// Saves a new mapping when `version` is still current (another admin may have saved since
/// the form was loaded). Returns false when it was not.
pub fn save_mapping(
    conn: &mut PgConnection,
    id: i64,
    version: i32,
    mapping: &Value,
    sample: &str,
) -> AppResult<bool> {
    let n = diesel::update(cc::table.find(id).filter(cc::mapping_version.eq(version)))
        .set((
            cc::mapping.eq(mapping),
            cc::mapping_version.eq(version + 1),
            cc::sample_payload.eq(sample),
            cc::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn save_sample(conn: &mut PgConnection, id: i64, sample: &str) -> AppResult<()> {
    diesel::update(cc::table.find(id))
        .set(cc::sample_payload.eq(sample))
        .execute(conn)?;
    Ok(())
}

// ---- inbox ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = inbox)]
pub struct InboxRow {
    pub id: i64,
    pub connector_id: i64,
    pub event_id: String,
    pub object_type: String,
    pub object_id: String,
    pub change: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub sequence: Option<i64>,
    pub raw_body: String,
    pub event: Value,
    pub status: String,
    pub reason: Option<String>,
    pub problems: Option<Value>,
    pub attempts: i32,
    pub duplicates: i32,
    pub effect: Option<Value>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

impl InboxRow {
    pub fn inbound(&self) -> Option<InboundEvent> {
        serde_json::from_value(self.event.clone()).ok()
    }
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    inserted: bool,
}

/// Stores an event raw; a repeat of the same event id only counts a duplicate. Returns the
/// row id and whether it is new.
pub fn store(
    conn: &mut PgConnection,
    connector_id: i64,
    e: &InboundEvent,
    raw: &str,
) -> AppResult<(i64, bool)> {
    let event = serde_json::to_value(e).map_err(AppError::internal)?;
    let row: Stored = sql_query(
        "INSERT INTO crm_inbox (connector_id, event_id, object_type, object_id, change, \
                                occurred_at, sequence, raw_body, event) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (connector_id, event_id) DO UPDATE SET duplicates = crm_inbox.duplicates + 1 \
         RETURNING id, (xmax = 0) AS inserted",
    )
    .bind::<BigInt, _>(connector_id)
    .bind::<diesel::sql_types::Text, _>(e.event_id.chars().take(200).collect::<String>())
    .bind::<diesel::sql_types::Text, _>(&e.object_type)
    .bind::<diesel::sql_types::Text, _>(&e.object_id)
    .bind::<diesel::sql_types::Text, _>(&e.change)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(e.occurred_at)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(e.sequence)
    .bind::<diesel::sql_types::Text, _>(raw)
    .bind::<diesel::sql_types::Jsonb, _>(event)
    .get_result(conn)?;
    Ok((row.id, row.inserted))
}

pub fn inbox_row(conn: &mut PgConnection, id: i64) -> AppResult<InboxRow> {
    inbox::table
        .find(id)
        .select(InboxRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

/// Locks an inbox row for processing (one worker at a time per event).
pub fn lock_inbox_row(conn: &mut PgConnection, id: i64) -> AppResult<InboxRow> {
    inbox::table
        .find(id)
        .for_update()
        .select(InboxRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound)
}

pub fn finish(
    conn: &mut PgConnection,
    id: i64,
    status: &str,
    reason: Option<&str>,
    problems: Option<&Value>,
    effect: Option<&Value>,
) -> AppResult<()> {
    diesel::update(inbox::table.find(id))
        .set((
            inbox::status.eq(status),
            inbox::reason.eq(reason),
            inbox::problems.eq(problems),
            inbox::effect.eq(effect),
            inbox::attempts.eq(inbox::attempts + 1),
            inbox::processed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn count_attempt(conn: &mut PgConnection, id: i64, reason: &str) -> AppResult<i32> {
    Ok(diesel::update(inbox::table.find(id))
        .set((
            inbox::attempts.eq(inbox::attempts + 1),
            inbox::reason.eq(reason),
        ))
        .returning(inbox::attempts)
        .get_result(conn)?)
}

/// Puts a held or failed event back for processing (after the mapping or the CRM was fixed).
pub fn reopen(conn: &mut PgConnection, id: i64) -> AppResult<bool> {
    let n = diesel::update(
        inbox::table
            .find(id)
            .filter(inbox::status.eq_any(["held", "failed"])),
    )
    .set((inbox::status.eq("received"), inbox::attempts.eq(0)))
    .execute(conn)?;
    Ok(n == 1)
}

#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub connector_id: Option<i64>,
    pub status: Option<String>,
    pub page: i64,
}

pub fn inbox_page(conn: &mut PgConnection, f: &InboxFilter) -> AppResult<(Vec<InboxRow>, i64)> {
    let filtered = || {
        let mut q = inbox::table.into_boxed();
        if let Some(c) = f.connector_id {
            q = q.filter(inbox::connector_id.eq(c));
        }
        if let Some(s) = &f.status {
            q = q.filter(inbox::status.eq(s.clone()));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let rows = filtered()
        .order(inbox::id.desc())
        .limit(PAGE_SIZE)
        .offset((f.page.max(1) - 1) * PAGE_SIZE)
        .select(InboxRow::as_select())
        .load(conn)?;
    Ok((rows, total))
}

#[derive(Debug, Clone, Default, QueryableByName)]
pub struct InboxCounts {
    #[diesel(sql_type = BigInt)]
    pub received: i64,
    #[diesel(sql_type = BigInt)]
    pub applied: i64,
    #[diesel(sql_type = BigInt)]
    pub held: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub ignored: i64,
    #[diesel(sql_type = BigInt)]
    pub last_day: i64,
    #[diesel(sql_type = BigInt)]
    pub last_day_bad: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub last_applied: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub oldest_waiting: Option<DateTime<Utc>>,
}

/// Per connector: backlog, outcomes, and the failure rate over the last 24 hours.
pub fn inbox_counts(conn: &mut PgConnection, connector_id: i64) -> AppResult<InboxCounts> {
    Ok(sql_query(
        "SELECT count(*) FILTER (WHERE status = 'received') AS received, \
                count(*) FILTER (WHERE status = 'applied') AS applied, \
                count(*) FILTER (WHERE status = 'held') AS held, \
                count(*) FILTER (WHERE status = 'failed') AS failed, \
                count(*) FILTER (WHERE status = 'ignored') AS ignored, \
                count(*) FILTER (WHERE received_at > now() - interval '1 day') AS last_day, \
                count(*) FILTER (WHERE received_at > now() - interval '1 day' AND status IN ('held', 'failed')) AS last_day_bad, \
                max(processed_at) FILTER (WHERE status = 'applied') AS last_applied, \
                min(received_at) FILTER (WHERE status IN ('received', 'held', 'failed')) AS oldest_waiting \
         FROM crm_inbox WHERE connector_id = $1",
    )
    .bind::<BigInt, _>(connector_id)
    .get_result(conn)?)
}

// ---- links ----------------------------------------------------------------------------------

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = links)]
pub struct Link {
    pub id: i64,
    pub connector_id: i64,
    pub object_type: String,
    pub crm_id: String,
    pub account_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub subscription_id: Option<i64>,
    pub invoice_id: Option<i64>,
    pub last_sequence: Option<i64>,
    pub last_occurred_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

pub fn link(
    conn: &mut PgConnection,
    connector_id: i64,
    object_type: &str,
    crm_id: &str,
) -> AppResult<Option<Link>> {
    Ok(links::table
        .filter(links::connector_id.eq(connector_id))
        .filter(links::object_type.eq(object_type))
        .filter(links::crm_id.eq(crm_id))
        .select(Link::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Clone, Default)]
pub struct NewLink<'a> {
    pub connector_id: i64,
    pub object_type: &'a str,
    pub crm_id: &'a str,
    pub account_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub subscription_id: Option<i64>,
    pub invoice_id: Option<i64>,
    pub sequence: Option<i64>,
    pub occurred_at: Option<DateTime<Utc>>,
}

/// Creates or updates a link, keeping what it already points at when the new one is silent.
pub fn put_link(conn: &mut PgConnection, l: &NewLink<'_>) -> AppResult<()> {
    sql_query(
        "INSERT INTO crm_links (connector_id, object_type, crm_id, account_id, contact_id, \
                                subscription_id, invoice_id, last_sequence, last_occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (connector_id, object_type, crm_id) DO UPDATE SET \
            account_id = COALESCE(EXCLUDED.account_id, crm_links.account_id), \
            contact_id = COALESCE(EXCLUDED.contact_id, crm_links.contact_id), \
            subscription_id = COALESCE(EXCLUDED.subscription_id, crm_links.subscription_id), \
            invoice_id = COALESCE(EXCLUDED.invoice_id, crm_links.invoice_id), \
            last_sequence = GREATEST(EXCLUDED.last_sequence, crm_links.last_sequence), \
            last_occurred_at = GREATEST(EXCLUDED.last_occurred_at, crm_links.last_occurred_at)",
    )
    .bind::<BigInt, _>(l.connector_id)
    .bind::<diesel::sql_types::Text, _>(l.object_type)
    .bind::<diesel::sql_types::Text, _>(l.crm_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(l.account_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(l.contact_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(l.subscription_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(l.invoice_id)
    .bind::<diesel::sql_types::Nullable<BigInt>, _>(l.sequence)
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>, _>(l.occurred_at)
    .execute(conn)?;
    Ok(())
}

/// Deals linked to an account's subscriptions or invoices, for the write-back.
pub fn deals_for_account(conn: &mut PgConnection, account_id: i64) -> AppResult<Vec<Link>> {
    Ok(links::table
        .filter(links::object_type.eq("deal"))
        .filter(links::account_id.eq(account_id))
        .select(Link::as_select())
        .load(conn)?)
}
