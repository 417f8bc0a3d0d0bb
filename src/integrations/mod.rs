//! Integrations: what leaves Arbor for another system (email, the accounting push, later the
//! CRM write-back and outbound webhooks), watched in one place.
//!
//! Rules:
//! - Every delivery goes through the tenant's outbox, written in the transaction of the change,
//!   and is retried with backoff by the job queue; a delivery that cannot succeed without a
//!   person (rejected by the receiver, retries exhausted) ends `dead` and can be sent again
//!   from the health page once the cause is fixed.
//! - HTTP deliveries carry an `Idempotency-Key` that never changes between attempts, so a
//!   receiver that already took a message recognizes the repeat; each attempt is logged in
//!   `connector_deliveries` with its HTTP status, error and the receiver's reference.
//! - Health (`/integrations`): per connector the undelivered, retrying and dead counts, the
//!   oldest undelivered age, the last success and the last failure.
//! - Alerts: a check every minute opens one alert per failing connector (a dead delivery, one
//!   still failing after [`alerts::FAILING_AFTER`], or one undelivered for
//!   [`alerts::STUCK_AFTER`]) and emails the tenant's owners and admins at once, so a silent
//!   failure is known within 15 minutes; the alert closes when the connector is healthy again.

pub mod alerts;
pub mod handlers;
pub mod health;
pub mod http;

/// A connector: the outbox kind it delivers and how it is named on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connector {
    pub code: &'static str,
    pub outbox_kind: &'static str,
    pub label: &'static str,
}

pub const EMAIL: Connector = Connector {
    code: "email",
    outbox_kind: crate::jobs::outbox::KIND_EMAIL,
    label: "Email (SMTP)",
};

pub const ACCOUNTING: Connector = Connector {
    code: "accounting",
    outbox_kind: crate::ledger::push::KIND,
    label: "Accounting push",
};

pub const CRM_WRITEBACK: Connector = Connector {
    code: "crm_writeback",
    outbox_kind: crate::crm::outbound::KIND_WRITEBACK,
    label: "CRM write-back",
};

pub const WEBHOOKS: Connector = Connector {
    code: "webhooks",
    outbox_kind: crate::crm::outbound::KIND_WEBHOOK,
    label: "Outbound webhooks",
};

pub const CONNECTORS: [Connector; 4] = [ACCOUNTING, CRM_WRITEBACK, WEBHOOKS, EMAIL];

pub fn by_code(code: &str) -> Option<Connector> {
    CONNECTORS.iter().copied().find(|c| c.code == code)
}

pub fn by_kind(kind: &str) -> Option<Connector> {
    CONNECTORS.iter().copied().find(|c| c.outbox_kind == kind)
}
