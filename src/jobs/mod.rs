//! Background work: one queue (`control.jobs`) drained by workers inside the binary.
//!
//! Rules: a job is claimed with `FOR UPDATE SKIP LOCKED`, so any number of workers and
//! instances can drain the queue and each job runs once at a time. A failed job is retried
//! with exponential backoff until `max_attempts`, then marked dead (visible to admins). A
//! worker that dies mid-job leaves it `running`; after the lease expires another worker
//! requeues it, so handlers must be idempotent (they check what was already done).
//! Side effects that leave the system go through the tenant's outbox ([`outbox`]).

pub mod outbox;
pub mod queue;
pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

/// Wakes idle workers when this process enqueues work, so they need not wait a poll period.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn notify(&self) {
        self.0.notify_waiters();
    }
    pub async fn wait(&self) {
        self.0.notified().await;
    }
}

/// How a job handler failed.
#[derive(Debug)]
pub struct JobFailure {
    pub message: String,
    /// False for failures another attempt cannot fix (unknown kind, malformed payload).
    pub retryable: bool,
}

impl JobFailure {
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self {
            message: e.to_string(),
            retryable: true,
        }
    }
    pub fn permanent(e: impl std::fmt::Display) -> Self {
        Self {
            message: e.to_string(),
            retryable: false,
        }
    }
}

impl From<crate::error::AppError> for JobFailure {
    fn from(e: crate::error::AppError) -> Self {
        // A database that is down or a pool that is exhausted will come back: retry.
        Self::retry(format!("{e:?}"))
    }
}

/// Job kinds this binary handles.
pub mod kinds {
    pub const OUTBOX_DELIVER: &str = "outbox.deliver";
    /// An email not owned by a tenant (password reset); payload `{"email": OutgoingEmail}`.
    pub const SYSTEM_EMAIL: &str = "email.system";
    /// Does nothing; used to check the queue end to end.
    pub const NOOP: &str = "system.noop";
    /// Validates or commits a CSV import; payload `{"import_id": i64}`.
    pub const ACCOUNTS_IMPORT: &str = "accounts.import";
    /// Runs a bill run; payload `{"bill_run_id": i64}`.
    pub const BILL_RUN: &str = "billing.run";
    /// Charges a stored payment method; payload `{"attempt_id": i64}`.
    pub const PAYMENT_CHARGE: &str = "payments.charge";
    /// Runs the dunning engine for a date; payload `{"date": "YYYY-MM-DD"}`.
    pub const DUNNING_RUN: &str = "dunning.run";
    /// Recognizes ratable revenue through the month before a date; payload `{"date": "YYYY-MM-DD"}`.
    pub const LEDGER_RECOGNIZE: &str = "ledger.recognize";
    /// Processes one received CRM event; payload `{"inbox_id": i64}`.
    pub const CRM_PROCESS: &str = "crm.process";
}
