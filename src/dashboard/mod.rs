//! The tenant dashboard: the first page after sign-in. It shows what needs attention now;
//! each feature adds its own figures here as it lands.
//!
//! Rules: receivable totals are per currency, never summed across currencies, and follow
//! the collections report's definitions (AR as the aging report reconstructs it today,
//! overdue = AR past its due date, DSO standard over the last 90 days, MRR as the MRR report
//! computes it today). Each block appears only for roles allowed to open what it summarises;
//! sales see only their own accounts' figures.

pub mod handlers;
pub mod repo;
