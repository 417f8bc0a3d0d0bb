//! The catalog: products and their prices.
//!
//! Rules: a product carries what accounting and tax need on every line it produces (GL revenue
//! account, tax category, revenue recognition). A price belongs to one product and one
//! currency; its terms (model, amounts, interval, minimum commit) live in numbered versions.
//! Changing a price adds a version and makes it current for new subscriptions; subscription
//! items keep the version they were sold at until someone amends them. Nothing is deleted:
//! products and prices are archived.

pub mod domain;
pub mod handlers;
pub mod pricing;
pub mod repo;
