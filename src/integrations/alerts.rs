//! The integration alert check: one alert per failing connector, admins emailed when it opens.

use chrono::{DateTime, Duration, Utc};
use diesel::{prelude::*, PgConnection};

use super::{health, CONNECTORS};
use crate::{
    db::schema::tenant::integration_alerts as ia, email::message::OutgoingEmail, error::AppResult,
    jobs::outbox,
};

/// A delivery still failing this long after it was written raises an alert.
pub const FAILING_AFTER: Duration = Duration::minutes(5);
/// A delivery not even attempted this long (no worker draining the queue) raises one too.
pub const STUCK_AFTER: Duration = Duration::minutes(10);

/// What is wrong with a connector now, if anything (pure, so the thresholds are tested alone).
pub fn problem(c: &health::Counts, now: DateTime<Utc>) -> Option<String> {
    let last = c
        .last_error
        .as_deref()
        .map(|e| format!(" Last error: {e}"))
        .unwrap_or_default();
    if c.dead > 0 {
        return Some(format!(
            "{} deliver{} failed for good and need{} a person.{last}",
            c.dead,
            if c.dead == 1 { "y" } else { "ies" },
            if c.dead == 1 { "s" } else { "" },
        ));
    }
    if let Some(since) = c.failing_since.filter(|s| now - *s >= FAILING_AFTER) {
        return Some(format!(
            "{} deliver{} failing since {} UTC; retries continue.{last}",
            c.retrying,
            if c.retrying == 1 { "y is" } else { "ies are" },
            since.format("%Y-%m-%d %H:%M"),
        ));
    }
    if let Some(since) = c.pending_since.filter(|s| now - *s >= STUCK_AFTER) {
        return Some(format!(
            "{} deliver{} waiting since {} UTC without an attempt: are the job workers running?",
            c.pending,
            if c.pending == 1 { "y" } else { "ies" },
            since.format("%Y-%m-%d %H:%M"),
        ));
    }
    None
}

/// What is wrong with a CRM connector's incoming side: events that failed to apply, or events
/// nobody processed for 15 minutes. Held events wait for a person by design and are not
/// failures.
pub fn crm_problem(c: &crate::crm::repo::InboxCounts, now: DateTime<Utc>) -> Option<String> {
    if c.failed > 0 {
        return Some(format!(
            "{} received event{} failed to apply; open the CRM page, fix the cause and replay.",
            c.failed,
            if c.failed == 1 { "" } else { "s" }
        ));
    }
    match c.oldest_waiting {
        Some(since) if c.received > 0 && now - since >= Duration::minutes(15) => Some(format!(
            "{} received event{} not processed since {} UTC: are the job workers running?",
            c.received,
            if c.received == 1 { "" } else { "s" },
            since.format("%Y-%m-%d %H:%M")
        )),
        _ => None,
    }
}

/// Checks every connector of the tenant whose schema the transaction is in: opens an alert
/// (and queues an email to `admins`) for a new problem, closes alerts that cleared. Returns the
/// connectors whose alert opened now. Safe to run from several instances at once: the open
/// alert is unique per connector, and only the insert that wins sends the email.
pub fn check(
    conn: &mut PgConnection,
    tenant_id: i64,
    admins: &[String],
    health_url: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    let mut opened = Vec::new();
    let mut checks: Vec<(String, String, Option<String>)> = Vec::new();
    for c in CONNECTORS {
        let counts = health::counts(conn, c.outbox_kind)?;
        checks.push((c.code.to_owned(), c.label.to_owned(), problem(&counts, now)));
    }
    for crm in crate::crm::repo::connectors(conn)? {
        let counts = crate::crm::repo::inbox_counts(conn, crm.id)?;
        checks.push((
            format!("crm.{}", crm.id),
            format!("CRM connector {}", crm.name),
            crm_problem(&counts, now),
        ));
    }
    for (code, label, found) in checks {
        match found {
            Some(summary) => {
                let id: Option<i64> = diesel::insert_into(ia::table)
                    .values((
                        ia::connector.eq(&code),
                        ia::summary.eq(&summary),
                        ia::opened_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .returning(ia::id)
                    .get_result(conn)
                    .optional()?;
                let Some(id) = id else { continue };
                if !admins.is_empty() {
                    let mail = OutgoingEmail {
                        to: admins.to_vec(),
                        subject: format!("Arbor: {label} is failing"),
                        text: format!(
                            "{label} is failing.\n\n{summary}\n\nSee the integration health page: {health_url}\n\nThis alert closes by itself once the connector works again.\n"
                        ),
                        ..OutgoingEmail::default()
                    };
                    let payload =
                        serde_json::to_value(&mail).map_err(crate::error::AppError::internal)?;
                    outbox::enqueue(
                        conn,
                        tenant_id,
                        outbox::KIND_EMAIL,
                        &payload,
                        Some(&format!("integration-alert:{id}")),
                    )?;
                }
                diesel::update(ia::table.find(id))
                    .set(ia::notified_at.eq(now))
                    .execute(conn)?;
                opened.push(code);
            }
            None => {
                diesel::update(
                    ia::table
                        .filter(ia::connector.eq(&code))
                        .filter(ia::resolved_at.is_null()),
                )
                .set(ia::resolved_at.eq(now))
                .execute(conn)?;
            }
        }
    }
    Ok(opened)
}

/// Runs [`check`] for every tenant (the reaper calls this every minute).
pub async fn check_all(state: &crate::web::AppState) -> AppResult<usize> {
    use crate::db::{self, schema::control::tenants, scope::TenantSchema};
    let list: Vec<(i64, String, String)> = db::run(&state.pool, |c| {
        Ok(tenants::table
            .select((tenants::id, tenants::slug, tenants::schema_name))
            .load(c)?)
    })
    .await?;
    let mut opened = 0;
    for (tenant_id, slug, schema) in list {
        let Ok(schema) = TenantSchema::parse(&schema) else {
            continue;
        };
        let url = format!(
            "{}/t/{slug}/integrations",
            state.config.base_url.trim_end_matches('/')
        );
        let n = db::run(&state.pool, move |c| {
            let admins = admin_emails(c, tenant_id)?;
            db::scope::in_tenant(c, &schema, |c| {
                check(c, tenant_id, &admins, &url, Utc::now())
            })
        })
        .await?;
        opened += n.len();
    }
    if opened > 0 {
        state.wakeup.notify();
    }
    Ok(opened)
}

/// The active owners' and admins' addresses: they can fix a connector.
pub fn admin_emails(conn: &mut PgConnection, tenant_id: i64) -> AppResult<Vec<String>> {
    Ok(crate::tenants::repo::members(conn, tenant_id)?
        .into_iter()
        .filter(|m| m.status == "active" && matches!(m.role.as_str(), "owner" | "admin"))
        .map(|m| m.email)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap()
    }

    #[test]
    fn a_failure_alerts_after_five_minutes_and_a_dead_delivery_at_once() {
        let failing = health::Counts {
            retrying: 2,
            failing_since: Some(at(0)),
            last_error: Some("HTTP 503: down".into()),
            ..Default::default()
        };
        assert_eq!(problem(&failing, at(4)), None);
        let p = problem(&failing, at(5)).unwrap();
        assert!(
            p.contains("2 deliveries are failing since") && p.contains("HTTP 503"),
            "{p}"
        );
        let dead = health::Counts {
            dead: 1,
            ..Default::default()
        };
        assert!(problem(&dead, at(0))
            .unwrap()
            .starts_with("1 delivery failed for good"));
    }

    #[test]
    fn crm_events_alert_when_one_failed_or_none_was_processed_for_fifteen_minutes() {
        use crate::crm::repo::InboxCounts;
        let held = InboxCounts {
            held: 4,
            ..Default::default()
        };
        assert_eq!(
            crm_problem(&held, at(0)),
            None,
            "held events wait for a person"
        );
        let failed = InboxCounts {
            failed: 2,
            ..Default::default()
        };
        assert!(crm_problem(&failed, at(0))
            .unwrap()
            .starts_with("2 received events failed"));
        let backlog = InboxCounts {
            received: 3,
            oldest_waiting: Some(at(0)),
            ..Default::default()
        };
        assert_eq!(crm_problem(&backlog, at(14)), None);
        assert!(crm_problem(&backlog, at(15))
            .unwrap()
            .contains("job workers"));
    }

    #[test]
    fn undelivered_rows_alert_after_ten_minutes_without_an_attempt() {
        let waiting = health::Counts {
            pending: 3,
            pending_since: Some(at(0)),
            ..Default::default()
        };
        assert_eq!(problem(&waiting, at(9)), None);
        assert!(problem(&waiting, at(10)).unwrap().contains("job workers"));
        assert_eq!(problem(&health::Counts::default(), at(60)), None);
    }
}
