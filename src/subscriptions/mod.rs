//! Subscriptions: what an account buys on a cycle, and how that changes over time.
//!
//! Rules: a subscription bills one account in one currency on a schedule (start date,
//! anchor day, every N months), in advance or in arrears, with an optional trial, term and
//! end date. Items point at a price *version*, so catalog price changes never touch existing
//! contracts. An amendment (quantity, price, plan change, cancellation) ends the current item
//! row and starts a new one on the effective date, and is recorded with what it credited and
//! charged: for in-advance plans the already-invoiced part of the period is settled at once
//! with day-exact proration (an invoice for a net charge, a credit note for a net credit).
//! `billed_through` is the bill run's cursor: every period starting before it is invoiced.

pub mod amend;
pub mod charges;
pub mod domain;
pub mod handlers;
pub mod periods;
pub mod proration;
pub mod repo;
pub mod service;
pub mod usage_import;
