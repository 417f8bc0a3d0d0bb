//! Dunning: what happens, and when, after an invoice is not paid on time.
//!
//! Rules: a tenant's policies are versioned; an account follows its assigned policy, the
//! default one, or none when excluded; an invoice keeps the version its dunning started
//! with. Steps are day offsets from the due date with actions (reminder with the overdue
//! invoices and a statement attached, payment retry, late fee at most once per step, task
//! for a person, hold, stop). The engine runs daily per tenant, catches up after downtime
//! and records every action once in a timeline. Payment, a credit note, a dispute or a
//! promise to pay stop or pause it; a paused account's due steps are skipped, not queued.

pub mod actions;
pub mod collections;
pub mod demo_data;
pub mod domain;
pub mod engine;
pub mod policies;
pub mod policy_repo;
pub mod repo;
pub mod timeline;
pub mod workspace_repo;
