//! Accounts: the paying legal entity, its contacts and its place in a hierarchy.
//!
//! Rules: invoices follow the account, not a person; a contact can move to another account
//! without taking invoice history along. Hierarchies have any depth and never a cycle (checked
//! here and by a trigger). "Bill to parent" sends a child's invoices to the nearest ancestor
//! that pays for itself. Every way an account is entered is checked for likely duplicates
//! before saving; merging moves everything to the survivor and leaves the merged account as a
//! redirect. Sales see and edit only accounts they own and never touch terms (tax profile,
//! currency, payment terms, delivery, bill-to-parent). Every write is audited in its
//! transaction; edits use optimistic locking (`version`).

pub mod contacts;
pub mod contacts_repo;
pub mod csv_io;
pub mod custom_fields;
pub mod dedupe;
pub mod demo_data;
pub mod domain;
pub mod edit;
pub mod handlers;
pub mod hierarchy;
pub mod import;
pub mod import_contacts;
pub mod import_job;
pub mod import_rows;
pub mod merge;
pub mod repo;
pub mod repo_dedupe;
pub mod service;
pub mod values;
pub mod views;
