//! The one integration test binary: the real app on port 0 against real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod account_csv;
mod account_dedupe;
mod accounts;
mod api;
mod audit;
mod auth;
mod billing;
mod collections;
mod crm;
mod csrf;
mod dunning;
mod email;
mod faults;
mod health;
mod helpers;
mod invoices;
mod jobs;
mod ledger;
mod members;
mod mfa;
mod migrations;
mod payments;
mod reports;
mod reports_aging_open;
mod reports_collections;
mod reports_mrr;
mod robustness;
mod statements;
mod stripe;
mod tenancy;
