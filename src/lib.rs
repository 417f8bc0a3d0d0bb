//! Arbor: multi-tenant B2B billing and receivables.
//!
//! Organised by feature; each feature module owns its domain types, queries and handlers.
//! See ARCHITECTURE.md in the shared folder and README.md for the rules every module follows.

#[macro_use]
mod macros;

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod bench_http;
pub mod bench_load;
pub mod bench_tenants;
pub mod bench_webhooks;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod crm;
pub mod crypto;
pub mod dashboard;
pub mod dates;
pub mod db;
pub mod demo;
pub mod dunning;
pub mod email;
pub mod error;
pub mod health;
pub mod integrations;
pub mod invoicing;
pub mod jobs;
pub mod ledger;
pub mod money;
pub mod payments;
pub mod reports;
pub mod startup;
pub mod subscriptions;
pub mod tenants;
pub mod web;

pub use config::Config;
pub use startup::Application;
