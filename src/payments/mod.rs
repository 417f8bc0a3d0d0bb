//! Payments and their application to invoices.
//!
//! Rules: a payment is cash received from an account (method, date, amount, reference) in
//! one currency. It is applied to open invoices of the account it paid for (oldest due
//! first unless chosen); what is left stays unapplied on the payment until applied later or
//! refunded. An invoice's `amount_paid` is always the sum of its applications and its status
//! follows from its balance. Unapplying and reversing a bounced payment add negative
//! applications, so every match stays in the history. Each change appends a business event
//! (`events`) for the CRM and accounting connectors, in the same transaction.

pub mod cash;
pub mod charge;
pub mod domain;
pub mod gateway;
pub mod handlers;
pub mod matching;
pub mod methods;
mod remittance_csv;
pub mod repo;
pub mod settings;
pub mod webhook;
